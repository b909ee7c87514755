"""ffprobe of an uploaded file, with a time limit, in its own process group."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from transcoder import vod

PROBE_TIMEOUT_S = 60.0


async def ffprobe_json(ffprobe: str, path: Path) -> dict[str, object]:
    """ffprobe's JSON for a file; a Rejected when it cannot read it at all."""
    proc = await asyncio.create_subprocess_exec(
        *vod.probe_args(ffprobe, path),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), PROBE_TIMEOUT_S)
    except (TimeoutError, asyncio.CancelledError):
        proc.kill()
        await proc.wait()
        raise
    try:
        data = json.loads(out) if proc.returncode == 0 else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise vod.Rejected("not a video file (ffprobe cannot read it)")
    return data
