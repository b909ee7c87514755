"""The upload settings: defaults, ONAIR_* parsing, every bad value named, passed to `serve`."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.ops.stack import server_environ
from server.settings import Settings, SettingsError, load_settings


def test_defaults() -> None:
    settings = Settings()
    assert settings.upload_max_bytes == 5 * 1024**3
    assert settings.upload_expiry_s == 86400.0


def test_environment_overrides_and_hand_off_to_serve(tmp_path: Path) -> None:
    env = {"ONAIR_UPLOAD_MAX_BYTES": "1000000", "ONAIR_UPLOAD_EXPIRY_S": "3600"}
    settings = load_settings(None, env, data_dir=str(tmp_path))
    assert (settings.upload_max_bytes, settings.upload_expiry_s) == (1_000_000, 3600.0)
    child = server_environ(settings)
    assert load_settings(None, child).upload_max_bytes == 1_000_000
    assert load_settings(None, child).upload_expiry_s == 3600.0


def test_bad_values_are_all_named() -> None:
    env = {"ONAIR_UPLOAD_MAX_BYTES": "0", "ONAIR_UPLOAD_EXPIRY_S": "forever"}
    with pytest.raises(SettingsError) as err:
        load_settings(None, env)
    problems = "\n".join(err.value.problems)
    assert "ONAIR_UPLOAD_MAX_BYTES: got '0', expected a byte count >= 1" in problems
    assert "ONAIR_UPLOAD_EXPIRY_S: got 'forever', expected seconds between 1" in problems
