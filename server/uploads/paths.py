"""Where uploads and videos live on the media volume; ids are checked before a path is made."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from server.uploads.store import UPLOAD_ID_RE, VIDEO_ID_RE
from transcoder.layout import MediaLayout, valid_slug

DATA = "data"  # the uploaded bytes, appended as they arrive


@dataclass(frozen=True)
class VideoPaths:
    """MEDIA_DIR/uploads/<id>/data, MEDIA_DIR/videos/<slug>/<id>/ and the jobs' pidfiles."""

    layout: MediaLayout

    @property
    def run_dir(self) -> Path:
        return self.layout.videos_run

    def upload_dir(self, uid: str) -> Path:
        """MEDIA_DIR/uploads/<id>; the id is validated before it reaches a path."""
        if not UPLOAD_ID_RE.match(uid):
            raise ValueError("bad upload id")
        return self.layout.uploads / uid

    def data_path(self, uid: str) -> Path:
        """The file the upload's bytes are appended to."""
        return self.upload_dir(uid) / DATA

    def video_dir(self, channel: str, vid: str) -> Path:
        """MEDIA_DIR/videos/<slug>/<id>; both validated."""
        if not valid_slug(channel) or not VIDEO_ID_RE.match(vid):
            raise ValueError("bad channel or video id")
        return self.layout.videos / channel / vid
