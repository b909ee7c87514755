"""MEDIA_DIR's folders, the loopback RTMP URL and the slug pattern, each spelled once.

```
MEDIA_DIR/live/<slug>/          master.m3u8, one folder per rendition (served by nginx)
MEDIA_DIR/recordings/<slug>/<id>/
MEDIA_DIR/uploads/<id>/         tus bytes while they arrive
MEDIA_DIR/videos/<slug>/<id>/   uploaded videos' ladders
MEDIA_DIR/run/                  pidfiles of live ladders (<slug>.pid), run/recordings/,
                                run/videos/: outside every served tree, read by the reaper
```
Pidfile places and formats are part of an upgrade in place: a new server must recognise
and reap what an older one left, so neither changes lightly.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,39}$"
SLUG_RE = re.compile(SLUG_PATTERN)


def valid_slug(slug: str) -> bool:
    """True when the slug matches DESIGN's pattern (and so is safe in a path)."""
    return SLUG_RE.fullmatch(slug) is not None


def check_slug(slug: str) -> str:
    """Return slug if it is a valid channel slug, else raise ValueError (never a path)."""
    if not valid_slug(slug):
        raise ValueError(f"invalid channel slug {slug!r}")
    return slug


def loopback_rtmp(rtmp_port: int, slug: str) -> str:
    """Where the server's own FFmpeg pulls a renamed stream from (nginx allows play on
    loopback only); never the stream key, which nginx-rtmp renamed to the slug."""
    return f"rtmp://127.0.0.1:{rtmp_port}/live/{check_slug(slug)}"


class MediaLayout:
    """The folders under one media volume."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.live = root / "live"
        self.recordings = root / "recordings"
        self.uploads = root / "uploads"
        self.videos = root / "videos"
        self.run = root / "run"  # live ladders' pidfiles
        self.recordings_run = self.run / "recordings"  # recorder, finalize, compression, checks
        self.videos_run = self.run / "videos"  # VOD ladder and poster pidfiles
        self.relays_run = self.run / "relays"  # simulcast relays' pidfiles

    def live_channel(self, slug: str) -> Path:
        """MEDIA_DIR/live/<slug>, after validating the slug."""
        return self.live / check_slug(slug)

    def served(self) -> tuple[Path, ...]:
        """The trees nginx and the server serve from, made before anything writes there."""
        return (self.live, self.recordings, self.uploads, self.videos)


def atomic_write(path: Path, text: str) -> None:
    """Write text to path via a temp file in the same directory and os.replace."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; nginx and the server must read it
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
