"""The media playlists players see: each rung's live window across FFmpeg runs, and when to list it.

Each FFmpeg run writes its own playlist per rung (`run.m3u8`), segments named after the run
(`<run>-<n>.m4s`) and its own init segment (`init-<run>.mp4`). This module keeps the public
`index.m3u8` from it: the media sequence continues across runs, a run's first segment is
preceded by `EXT-X-DISCONTINUITY` and a new `EXT-X-MAP` naming that run's init,
`EXT-X-DISCONTINUITY-SEQUENCE` counts the boundaries that scrolled off, and files of earlier
runs are deleted once they are no longer listed. (hlsenc's own append_list writes one MAP at
the top: after a restart it named the new init above the old run's segments, and players
that do not re-read the init at a discontinuity -- GStreamer, FFmpeg's HLS demuxer -- failed.)

The master is written only once every rung it lists has two segments, so a variant the master
names never answers 404; a shed rung leaves the master at once, its playlist ends with
`EXT-X-ENDLIST` and stays served for a minute so players on it move on cleanly; a restored
rung starts a fresh folder and joins the master once it has two segments.
"""

from __future__ import annotations

import math
import os
import shutil
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from transcoder.ffmpeg.probe import SourceInfo
from transcoder.layout import atomic_write
from transcoder.live.ladder import Rendition
from transcoder.live.playlist import write_master

RUN_PLAYLIST = "run.m3u8"  # FFmpeg's, per run; never served (the routes name index.m3u8 only)
PUBLIC_PLAYLIST = "index.m3u8"
KEEP_UNLISTED = 3  # segments kept on disk after leaving the window, for slow players
RETIRED_SERVED_S = 60.0  # a shed rung's ended playlist stays this long
MASTER_AFTER_SEGMENTS = 2


def init_name(run: str) -> str:
    """The init segment file of one FFmpeg run."""
    return f"init-{run}.mp4"


@dataclass(frozen=True)
class Segment:
    """One listed media segment and what a player needs to decode it."""

    uri: str
    duration: str  # the EXTINF value as FFmpeg wrote it
    init: str  # the init segment it decodes with
    cc: int  # its discontinuity number
    date: str | None = None  # EXT-X-PROGRAM-DATE-TIME


@dataclass
class MediaPlaylist:
    """What a media playlist (FFmpeg's or ours) says."""

    sequence: int = 0
    target: int = 0
    segments: list[Segment] = field(default_factory=list)
    ended: bool = False


def parse_media(text: str) -> MediaPlaylist:
    """Read a media playlist: segments with their init, discontinuity number and date."""
    out = MediaPlaylist()
    first_cc, init, date, duration, discontinuity = 0, "", None, "0", False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            out.sequence = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-DISCONTINUITY-SEQUENCE:"):
            first_cc = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-TARGETDURATION:"):
            out.target = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-MAP:"):
            uri = line.split('URI="', 1)[1].split('"', 1)[0] if 'URI="' in line else ""
            init = uri.rsplit("/", 1)[-1]
        elif line == "#EXT-X-DISCONTINUITY":
            discontinuity = True
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            date = line.split(":", 1)[1]
        elif line.startswith("#EXTINF:"):
            duration = line[len("#EXTINF:") :].split(",", 1)[0]
        elif line == "#EXT-X-ENDLIST":
            out.ended = True
        elif line and not line.startswith("#"):
            previous = out.segments[-1].cc if out.segments else first_cc
            cc = previous + 1 if discontinuity and out.segments else previous
            out.segments.append(Segment(line, duration, init, cc, date))
            date, duration, discontinuity = None, "0", False
    return out


def render_media(playlist: MediaPlaylist) -> str:
    """Our media playlist text: a MAP at the top and after every DISCONTINUITY."""
    first_cc = playlist.segments[0].cc if playlist.segments else 0
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        f"#EXT-X-TARGETDURATION:{playlist.target}",
        f"#EXT-X-MEDIA-SEQUENCE:{playlist.sequence}",
        f"#EXT-X-DISCONTINUITY-SEQUENCE:{first_cc}",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    previous: Segment | None = None
    for segment in playlist.segments:
        if previous is None or segment.cc != previous.cc or segment.init != previous.init:
            if previous is not None:
                lines.append("#EXT-X-DISCONTINUITY")
            lines.append(f'#EXT-X-MAP:URI="{segment.init}"')
        if segment.date:
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{segment.date}")
        lines += [f"#EXTINF:{segment.duration},", segment.uri]
        previous = segment
    if playlist.ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


class RungWindow:
    """One rung's public playlist, fed from whichever FFmpeg run writes the rung now."""

    def __init__(self, folder: Path, list_size: int, target: int) -> None:
        """Picks up an existing index.m3u8 (a server restart while live) and continues it."""
        self.folder = folder
        self.list_size = list_size
        self.public = MediaPlaylist(target=target)
        self._unlisted: deque[Segment] = deque()
        self._seen: tuple[int, int, int] | None = None  # (inode, mtime, size) last merged
        try:
            kept = parse_media((folder / PUBLIC_PLAYLIST).read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError, IndexError):
            return
        kept.ended = False  # the stream goes on: a new run appends
        kept.target = max(kept.target, target)
        self.public = kept

    @property
    def segments(self) -> list[Segment]:
        """The segments listed now."""
        return self.public.segments

    def sync(self) -> bool:
        """Merge what FFmpeg's run playlist added; True when index.m3u8 was rewritten."""
        path = self.folder / RUN_PLAYLIST
        try:
            st = os.stat(path)
            seen = (st.st_ino, st.st_mtime_ns, st.st_size)
            if seen == self._seen:
                return False
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return False
        self._seen = seen
        return self.merge(parse_media(text))

    def merge(self, run: MediaPlaylist) -> bool:
        """Append the run's segments we have not listed yet; trim and write the window."""
        listed = self.public.segments
        uris = [s.uri for s in run.segments]
        last = listed[-1].uri if listed else None
        # Everything after our newest; a new run (or one whose window moved past it): all.
        new = run.segments[uris.index(last) + 1 :] if last in uris else run.segments
        if not new:
            return False
        for segment in new:
            previous = listed[-1] if listed else None
            cc = 0 if previous is None else previous.cc + (segment.init != previous.init)
            listed.append(Segment(segment.uri, segment.duration, segment.init, cc, segment.date))
            # EXTINF rounded to the nearest second must not exceed the target (RFC 8216 4.3.3.1)
            self.public.target = max(self.public.target, math.floor(float(segment.duration) + 0.5))
        while len(listed) > self.list_size:
            self._unlisted.append(listed.pop(0))
            self.public.sequence += 1
        self._delete_old_runs(current=listed[-1].init)
        self.write()
        return True

    def _delete_old_runs(self, current: str) -> None:
        """Files of earlier runs that left the window a while ago (FFmpeg deletes its own)."""
        while len(self._unlisted) > KEEP_UNLISTED:
            gone = self._unlisted.popleft()
            if gone.init == current:
                continue
            (self.folder / gone.uri).unlink(missing_ok=True)
            still = (s.init for s in (*self.public.segments, *self._unlisted))
            if gone.init not in still:
                (self.folder / gone.init).unlink(missing_ok=True)

    def write(self) -> None:
        """Atomically (re)write index.m3u8; nothing until the first segment exists."""
        if self.public.segments:
            atomic_write(self.folder / PUBLIC_PLAYLIST, render_media(self.public))

    def end(self) -> None:
        """The stream (or this rung) ended: the playlist gets EXT-X-ENDLIST."""
        self.public.ended = True
        self.write()


class ChannelPlaylists:
    """Every rung's window of one channel, and the master once every rung can be played."""

    def __init__(
        self,
        output_dir: Path,
        renditions: Iterable[Rendition],
        source: SourceInfo,
        *,
        list_size: int,
        target: int,
    ) -> None:
        """After a server restart the rungs' playlists carry on, so the master is rewritten
        at the first sync when they already hold segments."""
        self.output_dir = output_dir
        self.source = source
        self.list_size, self.target = list_size, target
        self.renditions = list(renditions)
        self.joining: set[str] = set()  # restored rungs not yet in the master
        self.windows = {
            r.name: RungWindow(output_dir / r.name, list_size, target) for r in self.renditions
        }
        self.master_written = False
        self._retired: list[tuple[float, Path]] = []

    def sync(self, now: float) -> None:
        """Pick up new segments, write the master when it can be, remove retired rungs."""
        for window in self.windows.values():
            window.sync()
        ready = {n for n, w in self.windows.items() if len(w.segments) >= MASTER_AFTER_SEGMENTS}
        if not self.master_written and ready == set(self.windows):
            self.joining.clear()
            self._write_master()
        elif self.master_written and self.joining & ready:
            self.joining -= ready  # a restored rung can be played: it joins the master
            self._write_master()
        while self._retired and self._retired[0][0] <= now:
            shutil.rmtree(self._retired.pop(0)[1], ignore_errors=True)

    def _write_master(self) -> None:
        listed = [r for r in self.renditions if r.name not in self.joining]
        write_master(self.output_dir, listed, self.source)
        self.master_written = True

    def shed(self, keep: Iterable[Rendition], now: float) -> None:
        """Drop rungs: out of the master at once, their playlists ended and served a minute."""
        self.renditions = list(keep)
        names = {r.name for r in self.renditions}
        for name in [n for n in self.windows if n not in names]:
            window = self.windows.pop(name)
            self.joining.discard(name)
            window.end()
            self._retired.append((now + RETIRED_SERVED_S, window.folder))
        if self.master_written:
            self._write_master()

    def restore(self, rendition: Rendition) -> None:
        """A shed rung comes back: a fresh folder and playlist, in the master once playable."""
        folder = self.output_dir / rendition.name
        self._retired = [(t, f) for t, f in self._retired if f != folder]
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        self.renditions.append(rendition)
        self.windows[rendition.name] = RungWindow(folder, self.list_size, self.target)
        self.joining.add(rendition.name)

    def end(self) -> None:
        """The stream ended: the last segments listed, every playlist ended."""
        for window in self.windows.values():
            window.sync()
            window.end()
