"""The server's ladder pool: built from settings, started off the hook path by Streams."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from server.settings import Settings
from transcoder.layout import MediaLayout
from transcoder.live.ladder import LadderConfig
from transcoder.live.pool import LadderPool

LADDERS: web.AppKey[LadderPool] = web.AppKey("ladders", LadderPool)


def ladder_config(settings: Settings) -> LadderConfig:
    """The live ladder the settings ask for (today: the built-in ladder)."""
    return LadderConfig()


def new_pool(settings: Settings, on_failed: Callable[[str], None]) -> LadderPool:
    """Every live channel's ladder under MEDIA_DIR/live; on_failed(slug) when one gives up."""
    return LadderPool(
        MediaLayout(settings.media_root),
        ladder_config(settings),
        ffmpeg=settings.ffmpeg,
        ffprobe=settings.ffprobe,
        on_failed=on_failed,
    )
