"""Settings: one frozen tree built from an optional TOML file plus ONAIR_* variables."""

from __future__ import annotations

import dataclasses
import os
import re
import socket
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from aiohttp import web

from server.ladder_settings import LADDER_FIELDS, check_hevc_preset, ladder_toml_entries
from transcoder.layout import SLUG_PATTERN
from transcoder.live.encoders import PRESETS
from transcoder.live.ladder import Rung
from transcoder.recordings.media import COMPRESS_CODECS
from transcoder.schedule import Window

__all__ = ["SETTINGS", "SLUG_PATTERN", "Settings", "SettingsError", "load_settings"]

# x265's presets, fastest first, as people list them.
X265_PRESETS = tuple(reversed(PRESETS["libx265"]))


class SettingsError(Exception):
    """Every bad field at once: each line names the field, the value and what was expected."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid settings:\n  " + "\n  ".join(problems))
        self.problems = problems


def default_data_dir() -> Path:
    """Where `onair` keeps its state when no directory is given."""
    if os.geteuid() == 0:
        # Root's home is not reachable by the unprivileged users PostgreSQL and nginx run as.
        return Path("/var/lib/onair")
    xdg = os.environ.get("XDG_DATA_HOME")
    return Path(xdg) / "onair" if xdg else Path.home() / ".local/share/onair"


@dataclass(frozen=True)
class Settings:
    """Everything the server reads from its environment; secrets are kept out of repr."""

    data_dir: Path = field(default_factory=default_data_dir)
    media_dir: Path | None = None  # defaults to data_dir / "media"
    http_host: str = "0.0.0.0"  # where nginx listens (HTTP and RTMP)
    http_port: int = 8080  # the public port nginx listens on
    server_port: int = 8081  # the aiohttp server behind nginx, loopback only
    # Server processes on this host (`onair up --workers`; Ansible's onair@ instances): one
    # at a time owns hooks, ladders and jobs (server/owner.py), all serve HTTP and chat.
    workers: int = 1
    rtmp_port: int = 1935
    database_url: str | None = None  # None: `onair up` runs a private cluster
    redis_url: str | None = None
    admin_token: str = field(default="", repr=False)
    hook_secret: str = field(default="", repr=False)
    secret_key: str = field(default="", repr=False)  # keys IP hashes and similar
    public_url: str | None = None
    hook_allow: tuple[str, ...] = ("127.0.0.1", "::1")
    min_free_bytes: int = 1_000_000_000
    log_level: str = "INFO"
    ffmpeg: str = "ffmpeg"
    ffprobe: str = "ffprobe"
    viewer_session_seconds: float = 10.0  # a player silent this long is no longer watching
    viewer_sessions_per_address: int = 20  # counted per address and channel (a household)
    cors_origins: tuple[str, ...] = ()  # browser origins allowed on /socket.io; () = same origin
    embed_origins: tuple[str, ...] = ("*",)  # sites that may frame /embed/ pages; * = any
    chat_rate_messages: int = 5  # per connection, per chat_rate_seconds (token bucket)
    chat_rate_ip_messages: int = 20  # per client address: several people can share one NAT
    chat_rate_joins: int = 10  # joins per connection, per chat_rate_seconds
    chat_rate_ip_joins: int = 100  # joins per client address (a NAT of many people)
    chat_rate_seconds: float = 5.0
    chat_viewers_seconds: float = 2.0  # how often the viewer count is pushed while it changes
    recording_retention_days: int = 30  # recordings older than this are deleted; 0 keeps all
    recording_reserve_bytes: int = 2_000_000_000  # recording stops below this much free space
    media_high_water: float = 0.90  # media volume this full: delete oldest recordings...
    media_low_water: float = 0.80  # ...until it is no fuller than this
    compression_window: str = "02:00-07:00"  # local off-peak hours; "" = only when none is live
    compress_codec: str = "hevc"  # the archive copy's efficient codec (an H.264 one goes beside)
    compress_preset: str = "medium"  # x265 preset for the archive copy
    compress_crf: int = 26  # x265 constant quality: higher is smaller
    compress_live_margin: float = 1.2  # pause compression unless live work fits this many times
    # The live ladder (and the VOD ladders of uploads): TOML table [ladder], see the README.
    ladder_codecs: tuple[str, ...] = ("hevc",)  # efficient families; the H.264 rung is added
    ladder_rungs: tuple[Rung, ...] = (Rung(720, 2500), Rung(480, 1200), Rung(360, 700))
    av1_rungs: tuple[Rung, ...] | None = None  # None: ladder_rungs
    hevc_encoder: str = "libx265"
    hevc_preset: str = "auto"  # auto: start at superfast, the speed feedback steps it
    av1_preset: str = "auto"  # auto: start at 12; else an SVT-AV1 preset 0-13, kept
    ladder_rate_control: str = "capped"  # capped CRF under the VBV cap, or average bitrate
    segment_seconds: int = 2
    upload_max_bytes: int = 5 * 1024**3  # the largest video upload (tus Upload-Length)
    upload_expiry_s: float = 86400.0  # an upload that received nothing for this long is deleted
    # Simulcast relays: the CAs an rtmps:// platform's certificate must chain to, and whether
    # a destination may be a private, loopback or link-local address (a platform inside your
    # network; off, a streamer cannot aim the server's relay at its neighbours).
    relay_ca_file: Path = Path("/etc/ssl/certs/ca-certificates.crt")
    relay_allow_private: bool = False
    # Webhooks: whether a receiver may be on a private, loopback or link-local address (off, an
    # admin's typo or a stolen token cannot aim the server at its neighbours), and the retry
    # backoff: the first retry after webhook_retry_first_s, doubling up to webhook_retry_max_s,
    # for 24 h after the event.
    webhook_allow_private: bool = False
    webhook_retry_first_s: float = 10.0
    webhook_retry_max_s: float = 3600.0
    # This host's name in the shared database: recordings, uploads and videos it holds the
    # files of carry it, and only their own host's background work touches them.
    node_name: str = field(default_factory=socket.gethostname)

    @property
    def media_root(self) -> Path:
        """The media volume: live HLS, recordings and uploads."""
        return self.media_dir or self.data_dir / "media"

    @property
    def base_url(self) -> str:
        """What viewers type: the configured public URL or the local nginx."""
        host = "localhost" if self.http_host in ("0.0.0.0", "::") else self.http_host
        return (self.public_url or f"http://{host}:{self.http_port}").rstrip("/")

    def with_changes(self, **changes: Any) -> Settings:
        """A copy with some fields replaced (settings stay frozen)."""
        return dataclasses.replace(self, **changes)


SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)

N = TypeVar("N", int, float)


def _number(kind: Callable[[Any], N], accepts: Callable[[N], bool]) -> Callable[[Any], N]:
    """A parser for an int or float setting that `accepts` the value of."""

    def parse(raw: Any) -> N:
        value = kind(raw)
        if not accepts(value):
            raise ValueError
        return value

    return parse


_parse_port = _number(int, lambda v: 1 <= v <= 65535)
_parse_bytes = _number(int, lambda v: v >= 0)
_parse_count = _number(int, lambda v: v >= 1)
_parse_seconds = _number(float, lambda v: 0 < v <= 3600)
_parse_fraction = _number(float, lambda v: 0 < v < 1)
_parse_days = _number(int, lambda v: 0 <= v <= 36500)
_parse_crf = _number(int, lambda v: 0 <= v <= 51)
_parse_margin = _number(float, lambda v: 1 <= v <= 10)
_parse_expiry = _number(float, lambda v: 1 <= v <= 30 * 86400)


def _parse_path(raw: Any) -> Path:
    if not isinstance(raw, str | Path) or not str(raw):
        raise ValueError
    return Path(raw).expanduser().absolute()


def _parse_url(*schemes: str) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        if not isinstance(raw, str):
            raise ValueError
        parts = urlsplit(raw)
        if parts.scheme not in schemes or not (parts.hostname or parts.path):
            raise ValueError
        return raw

    return parse


def _parse_nonempty(raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError
    return raw


def _parse_token(raw: Any) -> str:
    if not isinstance(raw, str) or len(raw) < 16:
        raise ValueError
    return raw


def _parse_hosts(raw: Any) -> tuple[str, ...]:
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise ValueError
    hosts = tuple(i.strip() for i in items if i.strip())
    if not hosts:
        raise ValueError
    return hosts


# scheme://host[:port], the host may start with "*." (CSP sources); nothing that could end a
# header's directive or add another
_ORIGIN = re.compile(
    r"^https?://(\*\.)?[A-Za-z0-9.-]+(:\d{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](:\d{1,5})?$"
)


def _parse_origins(raw: Any) -> tuple[str, ...]:
    origins = tuple(o.rstrip("/") for o in _parse_hosts(raw))
    if not all(o == "*" or _ORIGIN.match(o) for o in origins):
        raise ValueError
    return origins


def _parse_window(raw: Any) -> str:
    if not isinstance(raw, str):
        raise ValueError
    if raw.strip():
        Window.parse(raw)
    return raw.strip()


def _parse_compress_codec(raw: Any) -> str:
    if raw not in COMPRESS_CODECS:
        raise ValueError
    return str(raw)


def _parse_preset(raw: Any) -> str:
    if raw not in X265_PRESETS:
        raise ValueError
    return str(raw)


def _parse_workers(raw: Any) -> int:
    value = int(raw)
    if isinstance(raw, float) or not 1 <= value <= 64:
        raise ValueError
    return value


def _parse_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError
    return text in ("true", "1", "yes")


def _parse_level(raw: Any) -> str:
    level = str(raw).upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError
    return level


# field -> (parser, what we expected, is it a secret)
_FIELDS: dict[str, tuple[Callable[[Any], Any], str, bool]] = {
    "data_dir": (_parse_path, "a directory path", False),
    "media_dir": (_parse_path, "a directory path", False),
    "http_host": (_parse_nonempty, "a host name or address", False),
    "http_port": (_parse_port, "a port number 1-65535", False),
    "server_port": (_parse_port, "a port number 1-65535", False),
    "rtmp_port": (_parse_port, "a port number 1-65535", False),
    "workers": (_parse_workers, "a whole number of server processes, 1-64", False),
    "database_url": (_parse_url("postgres", "postgresql"), "a postgresql:// URL", True),
    "redis_url": (_parse_url("redis", "rediss", "unix"), "a redis:// URL", True),
    "admin_token": (_parse_token, "a token of at least 16 characters", True),
    "hook_secret": (_parse_token, "a secret of at least 16 characters", True),
    "secret_key": (_parse_token, "a secret of at least 16 characters", True),
    "public_url": (_parse_url("http", "https"), "an http(s):// URL", False),
    "hook_allow": (_parse_hosts, "a comma-separated list of addresses", False),
    "min_free_bytes": (_parse_bytes, "a byte count >= 0", False),
    "log_level": (_parse_level, "one of DEBUG, INFO, WARNING, ERROR", False),
    "ffmpeg": (_parse_nonempty, "a program name or path", False),
    "ffprobe": (_parse_nonempty, "a program name or path", False),
    "viewer_session_seconds": (_parse_seconds, "seconds between 0 and 3600", False),
    "viewer_sessions_per_address": (_parse_count, "a whole number >= 1", False),
    "cors_origins": (_parse_origins, "a comma-separated list of http(s):// origins or *", False),
    "embed_origins": (
        _parse_origins,
        "a comma-separated list of http(s):// origins (https://*.example.com too) or *",
        False,
    ),
    "chat_rate_messages": (_parse_count, "a whole number >= 1", False),
    "chat_rate_ip_messages": (_parse_count, "a whole number >= 1", False),
    "chat_rate_joins": (_parse_count, "a whole number >= 1", False),
    "chat_rate_ip_joins": (_parse_count, "a whole number >= 1", False),
    "chat_rate_seconds": (_parse_seconds, "seconds, more than 0 and at most 3600", False),
    "chat_viewers_seconds": (_parse_seconds, "seconds, more than 0 and at most 3600", False),
    "recording_retention_days": (
        _parse_days,
        "whole days >= 0 (0 keeps recordings forever)",
        False,
    ),
    "recording_reserve_bytes": (_parse_bytes, "a byte count >= 0", False),
    "media_high_water": (_parse_fraction, "a fraction of the volume between 0 and 1", False),
    "media_low_water": (_parse_fraction, "a fraction of the volume between 0 and 1", False),
    "compression_window": (_parse_window, 'HH:MM-HH:MM local time, or "" for none', False),
    "compress_codec": (_parse_compress_codec, "hevc or av1", False),
    "compress_preset": (_parse_preset, "an x265 preset: " + ", ".join(X265_PRESETS), False),
    "compress_crf": (_parse_crf, "a whole number 0-51", False),
    "compress_live_margin": (_parse_margin, "a factor between 1 and 10", False),
    "upload_max_bytes": (_parse_count, "a byte count >= 1", False),
    "upload_expiry_s": (_parse_expiry, "seconds between 1 and 2592000 (30 days)", False),
    "node_name": (_parse_nonempty, "a name for this host, unique among the servers", False),
    "relay_ca_file": (_parse_path, "a file of PEM certificates", False),
    "relay_allow_private": (_parse_bool, "true or false", False),
    "webhook_allow_private": (_parse_bool, "true or false", False),
    "webhook_retry_first_s": (_parse_seconds, "seconds, more than 0 and at most 3600", False),
    "webhook_retry_max_s": (_parse_seconds, "seconds, more than 0 and at most 3600", False),
    **LADDER_FIELDS,
}


def _toml_entries(table: dict[str, Any], where: str, problems: list[str]) -> dict[str, Any]:
    """setting name -> (where it came from, value) for a TOML file's keys."""
    out: dict[str, tuple[str, Any]] = {}
    for key, value in table.items():
        if key == "ladder" and isinstance(value, dict):
            out.update(ladder_toml_entries(value, where, problems))
        elif key not in _FIELDS or key in LADDER_FIELDS:
            problems.append(f"{key} {where}: unknown setting")
        else:
            out[key] = (f"{key} {where}", value)
    return out


def load_settings(path: Path | None, environ: Mapping[str, str], **overrides: Any) -> Settings:
    """Read TOML (if any), then ONAIR_* variables, then explicit overrides; all errors at once."""
    raw: dict[str, tuple[str, Any]] = {}
    problems: list[str] = []
    config_path = path or (Path(environ["ONAIR_CONFIG"]) if environ.get("ONAIR_CONFIG") else None)
    if config_path is not None:
        try:
            table = tomllib.loads(config_path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise SettingsError([f"config {config_path}: {err}"]) from err
        raw.update(_toml_entries(table, f"(in {config_path})", problems))
    for name in _FIELDS:
        env_name = "ONAIR_" + name.upper()
        if environ.get(env_name, "") != "":
            raw[name] = (env_name, environ[env_name])
    for name, value in overrides.items():
        if value is not None:
            raw[name] = (f"--{name.replace('_', '-')}", value)

    values: dict[str, Any] = {}
    for name, (source, value) in raw.items():
        parse, expected, secret = _FIELDS[name]
        try:
            values[name] = parse(value)
        except (ValueError, TypeError):
            shown = "<hidden>" if secret else repr(value)
            problems.append(f"{source}: got {shown}, expected {expected}")
    low = values.get("media_low_water", Settings.media_low_water)
    high = values.get("media_high_water", Settings.media_high_water)
    if low >= high:
        problems.append(f"media_low_water: got {low!r}, expected less than media_high_water {high}")
    check_hevc_preset(values, problems)
    if problems:
        raise SettingsError(problems)
    return Settings(**values)


def secrets_file_values(data_dir: Path) -> dict[str, str]:
    """Generated secrets kept in DATA_DIR/secrets.toml (mode 0600) by `onair up`."""
    path = data_dir / "secrets.toml"
    if not path.exists():
        return {}
    return {k: str(v) for k, v in tomllib.loads(path.read_text()).items()}
