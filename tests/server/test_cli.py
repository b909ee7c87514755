"""`onair channel …` against a real database, as an operator would type it."""

from __future__ import annotations

import re
import subprocess
import sys

import asyncpg

from server.channels.store import ChannelStore
from tests.conftest import free_port


def onair(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


KEY = re.compile(r"stream key[^:]*: (\S+)")


async def test_channel_commands(database_url: str, onair_env: dict[str, str]) -> None:
    assert onair(onair_env, "migrate").returncode == 0
    created = onair(onair_env, "channel", "create", "music", "--title", "Live music")
    assert created.returncode == 0, created.stderr
    key = KEY.search(created.stdout)
    assert key is not None
    old_key = key.group(1)

    listed = onair(onair_env, "channel", "list")
    assert listed.returncode == 0
    assert re.search(r"^music\tenabled\t.*\tLive music$", listed.stdout, re.M)

    rotated = onair(onair_env, "channel", "rotate-key", "music")
    assert rotated.returncode == 0
    match = KEY.search(rotated.stdout)
    assert match is not None
    new_key = match.group(1)
    assert new_key != old_key

    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        assert await ChannelStore(pool).for_key(old_key) is None
        assert await ChannelStore(pool).for_key(new_key) is not None
    finally:
        await pool.close()

    duplicate = onair(onair_env, "channel", "create", "music")
    assert duplicate.returncode == 1
    assert "already exists" in duplicate.stderr

    bad = onair(onair_env, "channel", "create", "Not/A/Slug")
    assert bad.returncode == 1
    assert "slug must match" in bad.stderr

    assert onair(onair_env, "channel", "delete", "music").returncode == 0
    assert "music" not in onair(onair_env, "channel", "list").stdout
    gone = onair(onair_env, "channel", "delete", "music")
    assert gone.returncode == 1
    assert "no channel music" in gone.stderr


def test_serve_refuses_to_start_without_a_secret_key(onair_env: dict[str, str]) -> None:
    """Address hashes and guest ids are keyed with it; `onair up` generates one, `serve`
    must be given one (it used to start with a warning in the log)."""
    env = {**onair_env, "ONAIR_SERVER_PORT": str(free_port())}
    try:
        refused = onair(env, "serve")
    except subprocess.TimeoutExpired as err:
        raise AssertionError("onair serve started without a secret key") from err
    assert refused.returncode == 2
    assert "ONAIR_SECRET_KEY is not set" in refused.stderr
