"""The server's ladder pool: built from settings, started off the hook path by Streams."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import cast

from aiohttp import web

from server.settings import Settings
from transcoder.layout import MediaLayout
from transcoder.live.ladder import Efficient, HevcEncoder, LadderConfig, RateControl
from transcoder.live.pool import LadderPool

LADDERS: web.AppKey[LadderPool] = web.AppKey("ladders", LadderPool)


def ladder_config(settings: Settings) -> LadderConfig:
    """The ladder the settings ask for; live ladders and uploads' VOD ladders both use it."""
    defaults = LadderConfig()
    hevc_auto, av1_auto = settings.hevc_preset == "auto", settings.av1_preset == "auto"
    return dataclasses.replace(
        defaults,
        codecs=cast(tuple[Efficient, ...], settings.ladder_codecs),
        rungs=settings.ladder_rungs,
        av1_rungs=settings.av1_rungs or settings.ladder_rungs,
        hevc_encoder=cast(HevcEncoder, settings.hevc_encoder),
        preset=defaults.preset if hevc_auto else settings.hevc_preset,
        hevc_preset_adapts=hevc_auto,
        av1_preset=defaults.av1_preset if av1_auto else int(settings.av1_preset),
        av1_preset_adapts=av1_auto,
        rate_control=cast(RateControl, settings.ladder_rate_control),
        segment_seconds=settings.segment_seconds,
    )


def new_pool(settings: Settings, on_failed: Callable[[str], None]) -> LadderPool:
    """Every live channel's ladder under MEDIA_DIR/live; on_failed(slug) when one gives up."""
    return LadderPool(
        MediaLayout(settings.media_root),
        ladder_config(settings),
        ffmpeg=settings.ffmpeg,
        ffprobe=settings.ffprobe,
        on_failed=on_failed,
    )
