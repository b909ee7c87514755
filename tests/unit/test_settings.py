"""Settings: TOML + environment, every bad field reported at once, secrets never shown."""

from __future__ import annotations

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
