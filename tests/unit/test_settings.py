"""Settings: TOML + environment, every bad field reported at once, secrets never shown."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from server.settings import SettingsError, load_settings


def test_defaults_and_environment(tmp_path: Path) -> None:
    settings = load_settings(
        None,
        {
            "ONAIR_DATA_DIR": str(tmp_path),
            "ONAIR_HTTP_PORT": "9000",
            "ONAIR_DATABASE_URL": "postgresql://u@db/onair",
            "ONAIR_ADMIN_TOKEN": "a" * 20,
        },
    )
    assert settings.data_dir == tmp_path
    assert settings.media_root == tmp_path / "media"
    assert settings.http_port == 9000
    assert settings.rtmp_port == 1935
    assert settings.database_url == "postgresql://u@db/onair"
    assert "a" * 20 not in repr(settings)


def test_toml_then_environment_then_overrides(tmp_path: Path) -> None:
    config = tmp_path / "onair.toml"
    config.write_text('http_port = 7000\nrtmp_port = 7935\nmedia_dir = "/srv/media"\n')
    settings = load_settings(config, {"ONAIR_RTMP_PORT": "8935"}, http_port=7100)
    assert settings.http_port == 7100
    assert settings.rtmp_port == 8935
    assert settings.media_root == Path("/srv/media")
    via_env = load_settings(None, {"ONAIR_CONFIG": str(config)})
    assert via_env.http_port == 7000


def test_every_bad_field_is_named_at_once() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(
            None,
            {
                "ONAIR_HTTP_PORT": "eighty",
                "ONAIR_RTMP_PORT": "70000",
                "ONAIR_DATABASE_URL": "mysql://secret-password@db",
                "ONAIR_ADMIN_TOKEN": "short",
                "ONAIR_PUBLIC_URL": "ftp://example",
            },
        )
    problems = caught.value.problems
    text = str(caught.value)
    assert len(problems) == 5
    assert "ONAIR_HTTP_PORT: got 'eighty', expected a port number 1-65535" in text
    assert "ONAIR_RTMP_PORT: got '70000'" in text
    assert "ONAIR_PUBLIC_URL: got 'ftp://example', expected an http(s):// URL" in text
    assert "ONAIR_DATABASE_URL: got <hidden>" in text
    assert "ONAIR_ADMIN_TOKEN: got <hidden>, expected a token of at least 16 characters" in text
    assert "secret-password" not in text and "short" not in text


def test_unknown_or_broken_toml_is_reported(tmp_path: Path) -> None:
    config = tmp_path / "onair.toml"
    config.write_text("htp_port = 1\nhttp_port = 0\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(config, {})
    assert len(caught.value.problems) == 2
    assert "htp_port" in str(caught.value) and "unknown setting" in str(caught.value)
    config.write_text("http_port = [")
    with pytest.raises(SettingsError, match=r"onair\.toml"):
        load_settings(config, {})


def test_cli_reports_bad_settings(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "server", "migrate"],
        env={"ONAIR_HTTP_PORT": "-1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "ONAIR_HTTP_PORT: got '-1'" in result.stderr


def test_ladder_settings_from_toml_and_environment_reach_the_ladder(tmp_path: Path) -> None:
    from server.live.ladders import ladder_config
    from transcoder.live.ladder import Rung

    config = tmp_path / "onair.toml"
    config.write_text(
        "[ladder]\n"
        'codecs = ["av1", "hevc"]\n'
        'rungs = "720:2400,360:650"\n'
        'hevc_preset = "veryfast"\n'
        "av1_preset = 10\n"
        'rate_control = "average"\n'
        "segment_seconds = 4\n"
        "[ladder.av1]\n"
        'rungs = ["540:1500", "270:400"]\n'
    )
    ladder = ladder_config(load_settings(config, {"ONAIR_HEVC_ENCODER": "hevc_qsv"}))
    assert ladder.codecs == ("av1", "hevc")
    assert ladder.rungs == (Rung(720, 2400), Rung(360, 650))
    assert ladder.av1_rungs == (Rung(540, 1500), Rung(270, 400))
    assert (ladder.hevc_encoder, ladder.preset, ladder.hevc_preset_adapts) == (
        "hevc_qsv",
        "veryfast",
        False,  # a preset the operator named is kept: falling behind sheds rungs instead
    )
    assert (ladder.av1_preset, ladder.av1_preset_adapts, ladder.segment_seconds) == (10, False, 4)
    assert ladder.rate_control == "average"
    env = {"ONAIR_LADDER_RUNGS": "480:1100", "ONAIR_AV1_PRESET": "auto"}
    # `onair up` hands its resolved settings to `onair serve` as ONAIR_* variables
    from server.ops.stack import server_environ

    handed = load_settings(None, server_environ(load_settings(config, {})))
    assert ladder_config(handed) == dataclasses.replace(ladder, hevc_encoder="libx265")
    defaults = ladder_config(load_settings(None, env))
    assert defaults.codecs == ("hevc",) and defaults.rungs == defaults.av1_rungs
    assert defaults.rungs == (Rung(480, 1100),) and defaults.rate_control == "capped"
    assert (defaults.preset, defaults.hevc_preset_adapts, defaults.av1_preset) == (
        "superfast",
        True,
        12,
    )


def test_bad_ladder_settings_are_all_named(tmp_path: Path) -> None:
    env = {
        "ONAIR_LADDER_CODECS": "hevc,vp9",
        "ONAIR_LADDER_RUNGS": "720:fast",
        "ONAIR_HEVC_ENCODER": "x265",
        "ONAIR_AV1_PRESET": "14",
        "ONAIR_SEGMENT_SECONDS": "0",
        "ONAIR_LADDER_RATE_CONTROL": "crf",
    }
    with pytest.raises(SettingsError) as caught:
        load_settings(None, env)
    text = str(caught.value)
    assert len(caught.value.problems) == 6, text
    assert "ONAIR_LADDER_RATE_CONTROL: got 'crf', expected capped or average" in text
    assert "ONAIR_LADDER_CODECS: got 'hevc,vp9', expected a comma-separated list of hevc" in text
    assert "ONAIR_LADDER_RUNGS: got '720:fast', expected HEIGHT:KBPS list" in text
    assert "ONAIR_HEVC_ENCODER: got 'x265'" in text and "ONAIR_AV1_PRESET: got '14'" in text
    assert "ONAIR_SEGMENT_SECONDS: got '0', expected whole seconds 1-10" in text
    with pytest.raises(SettingsError, match=r"hevc_preset: got 'p4', expected auto or a libx265"):
        load_settings(None, {"ONAIR_HEVC_PRESET": "p4"})
    with pytest.raises(SettingsError, match="got 'fast', expected auto or a hevc_vaapi"):
        load_settings(None, {"ONAIR_HEVC_ENCODER": "hevc_vaapi", "ONAIR_HEVC_PRESET": "fast"})
    config = tmp_path / "onair.toml"
    config.write_text('ladder_codecs = "av1"\n[ladder]\ncodec = "av1"\n[ladder.av1]\npreset = 3\n')
    with pytest.raises(SettingsError) as caught:
        load_settings(config, {})
    assert [p.split(" ")[0] for p in caught.value.problems] == [
        "ladder_codecs",  # ladder settings live in [ladder] only
        "ladder.codec",
        "ladder.av1.preset",
    ]
