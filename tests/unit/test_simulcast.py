"""Destination checks, sealed keys and the relay's command line, without a network."""

from __future__ import annotations

import pytest

from server.simulcast.sealed import KeyUnreadable, hint, masked, seal, unseal
from server.simulcast.store import check_key, check_name, parse_server
from server.web.errors import ApiError
from transcoder.relay import relay_args, relay_options

SECRET = "a-secret-key-of-the-server-0123"


def test_a_sealed_key_opens_only_with_its_secret_and_channel() -> None:
    sealed = seal(SECRET, "live_123_abc?bandwidthtest=true", channel="show")
    assert b"live_123" not in sealed
    assert unseal(SECRET, sealed, channel="show") == "live_123_abc?bandwidthtest=true"
    assert seal(SECRET, "k", channel="show") != seal(SECRET, "k", channel="show")  # fresh nonce
    with pytest.raises(KeyUnreadable):
        unseal("another-secret-key-entirely-456", sealed, channel="show")
    with pytest.raises(KeyUnreadable):
        unseal(SECRET, sealed, channel="other")
    with pytest.raises(KeyUnreadable):
        unseal(SECRET, b"\x01short", channel="show")


def test_keys_are_shown_masked() -> None:
    assert masked(hint("abcd-efgh-ijkl-mnop")) == "****mnop"
    assert masked(hint("short1")) == "****t1"  # a short key keeps most of itself hidden


@pytest.mark.parametrize(
    ("url", "address", "app"),
    [
        ("rtmp://a.rtmp.youtube.com/live2", "rtmp://a.rtmp.youtube.com:1935/live2", "live2"),
        ("rtmps://a.rtmps.youtube.com:443/live2", "rtmps://a.rtmps.youtube.com:443/live2", "live2"),
        ("rtmp://live.twitch.tv/app/", "rtmp://live.twitch.tv:1935/app", "app"),
        ("rtmps://live-api-s.facebook.com/rtmp/", "rtmps://live-api-s.facebook.com:443/rtmp",
         "rtmp"),
        ("RTMP://Ingest.Example.com/wowza/instance", "rtmp://ingest.example.com:1935/wowza/instance",
         "wowza/instance"),
        ("rtmp://[2001:db8::1]:1936/live", "rtmp://[2001:db8::1]:1936/live", "live"),
    ],
)  # fmt: skip
def test_platform_server_urls_are_taken_apart(url: str, address: str, app: str) -> None:
    server = parse_server(url)
    assert (server.address, server.app) == (address, app)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://a.rtmp.youtube.com/live2", "rtmp:// or rtmps://"),
        ("srt://host:9000", "rtmp:// or rtmps://"),
        ("rtmp:///live2", "no host"),
        ("rtmp://bad_host!/live2", "not a host name"),
        ("rtmp://a.rtmp.youtube.com", "application path"),
        ("rtmp://a.rtmp.youtube.com/", "application path"),
        ("rtmp://user:pw@host/live2", "user name or password"),
        ("rtmp://host/live2?key=1", "?query"),
        ("rtmp://host:99999/live2", "not a URL"),
        ("rtmp://host/live 2", "letters, digits"),
        ("rtmp://host/" + "a" * 600, "at most 512"),
        ("", "rtmp:// or rtmps://"),
        (42, "rtmp:// or rtmps://"),
    ],
)
def test_bad_server_urls_are_refused_in_words(url: object, says: str) -> None:
    with pytest.raises(ApiError) as refused:
        parse_server(url)
    assert says in str(refused.value)


def test_names_and_keys_are_checked() -> None:
    assert check_name("  YouTube ") == "YouTube"
    assert check_key(" abcd-efgh ") == "abcd-efgh"
    for bad in ("", "   ", "x" * 65, "two\nlines", None):
        with pytest.raises(ApiError):
            check_name(bad)
    for bad in ("", "with space", "new\nline", "ключ", "k" * 513, 7):
        with pytest.raises(ApiError):
            check_key(bad)


def test_the_key_goes_through_the_preset_pipe_never_argv() -> None:
    key = "live_123_abc?bandwidthtest=true"
    args = relay_args(
        "ffmpeg", "rtmp://127.0.0.1:1935/live/show", "rtmps://h.example:443/app",
        options_fd=7, tls_ca_file="/etc/ssl/certs/ca-certificates.crt", tag="onair-relay-show-1",
    )  # fmt: skip
    assert key not in " ".join(args)
    assert args[-1] == "rtmps://h.example:443/app" and args[-3:-1] == ["-fpre", "/dev/fd/7"]
    assert args[args.index("-c") : args.index("-c") + 2] == ["-c", "copy"]
    assert args[args.index("-tls_verify") + 1] == "1"  # rtmps:// checks the certificate
    plain = relay_args("ffmpeg", "rtmp://s", "rtmp://h:1935/app", options_fd=7,
                       tls_ca_file="/ca.pem", tag="t")  # fmt: skip
    assert "-tls_verify" not in plain
    assert relay_options("app", key) == f"rtmp_app=app\nrtmp_playpath={key}\n".encode()
    with pytest.raises(ValueError):
        relay_options("app", "key\nrtmp_app=elsewhere")
