"""The simulcast relay's FFmpeg: the live source copied from loopback RTMP to a platform.

`-c copy`: no re-encode, so the ladder's shedding and the HLS delay never reach the platform.
The platform's stream key never goes into argv (any local user can read /proc/<pid>/cmdline):
FFmpeg 5.1 reads it from a preset file (`-fpre`), handed over as an inherited pipe
(/dev/fd/N) that holds `rtmp_app` and `rtmp_playpath` — nothing of it lands on disk.
"""

from __future__ import annotations

import os

# FFmpeg gives up on a destination that takes no bytes for this long (then the relay retries).
RW_TIMEOUT_US = 10_000_000


def relay_args(
    ffmpeg: str, source: str, address: str, *, options_fd: int, tls_ca_file: str, tag: str
) -> list[str]:
    """FFmpeg's argv: `source` (loopback RTMP) to `address` (scheme://host:port/app, no key).

    rtmps:// verifies the platform's certificate and host name against tls_ca_file.
    `tag` marks the run for its pidfile (see transcoder.ffmpeg.process.tagged).
    """
    tls = ["-tls_verify", "1", "-ca_file", tls_ca_file] if address.startswith("rtmps:") else []
    return [
        ffmpeg, "-hide_banner", "-nostdin", "-nostats",
        "-loglevel", "level+warning",
        "-progress", "pipe:1",
        "-rw_timeout", str(RW_TIMEOUT_US),
        "-i", source,
        "-map", "0", "-c", "copy",
        "-f", "flv", "-flvflags", "no_duration_filesize",
        "-rw_timeout", str(RW_TIMEOUT_US),
        *tls,
        "-metadata", f"comment={tag}",
        "-fpre", f"/dev/fd/{options_fd}",
        address,
    ]  # fmt: skip


def relay_options(app: str, key: str) -> bytes:
    """The preset file's lines: the platform's application and its stream key."""
    for value in (app, key):
        if not value or any(c in value for c in "\r\n\0"):
            raise ValueError("an application or key must be one non-empty line")
    return f"rtmp_app={app}\nrtmp_playpath={key}\n".encode()


def options_pipe(options: bytes) -> int:
    """A pipe holding `options`, its write end closed: the read end's fd, for pass_fds.
    The caller closes it once FFmpeg has started (FFmpeg holds its own copy)."""
    read, write = os.pipe()
    try:
        if len(options) > 60_000:  # a pipe's buffer holds 64 KiB: never block here
            raise ValueError("relay options too long")
        os.write(write, options)
    except BaseException:
        os.close(read)
        raise
    finally:
        os.close(write)
    return read
