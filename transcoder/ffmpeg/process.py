"""Every FFmpeg and ffprobe the project starts, started one way.

Each runs without a shell, in a new session (its own process group: signals reach FFmpeg
and its helpers, never the server), with an explicit minimal environment (the server's
tokens and database passwords never reach it). Long runs are an FfmpegProcess: progress
from `-progress pipe:1`, stderr classified into the log, pause/resume/stop/kill of the whole
group, and a pidfile the reaper can trust after the server is killed. Short runs (probes,
a thumbnail) go through run_captured, which kills the group on a time-out or a cancel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from transcoder.ffmpeg.progress import Progress, ProgressParser, classify_stderr
from transcoder.layout import atomic_write

log = logging.getLogger("onair.transcoder")

# Recording copies packets: ordinary CPU, but the live ladder's segments go to disk first.
RECORD_PRIORITY = ("ionice", "-c", "2", "-n", "7")
# Background encodes only ever get CPU and disk time nobody else wants.
BACKGROUND_PRIORITY = ("nice", "-n", "19", "ionice", "-c", "3")
# What FFmpeg may see of the server's environment: where programs are, the locale and time
# zone, and what hardware encoders need to find their device. Nothing else.
PASSED_ENVIRONMENT = (
    "PATH", "LANG", "LC_ALL", "TZ", "TMPDIR",
    "LIBVA_DRIVER_NAME", "LIBVA_DRIVERS_PATH",  # hevc_vaapi
    "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES",  # nvenc
)  # fmt: skip


def media_environ(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The environment every FFmpeg and ffprobe starts with."""
    env = {name: environ[name] for name in PASSED_ENVIRONMENT if name in environ}
    env.setdefault("PATH", os.defpath)
    return env


# Demuxers a file someone gave us (an upload) may be opened with: containers only. Not the
# HLS, DASH or concat demuxers, nor image sequences: those open further files or URLs named
# inside the file, and FFmpeg picks a demuxer by content (a playlist hides in any name).
UPLOAD_FORMATS = "mov,mp4,matroska,webm,avi,flv,mpegts,mpeg,asf"
# What our recorder writes (MPEG-TS parts), the concat listing that joins them, and the MP4.
RECORDING_FORMATS = "mpegts,concat,mov,mp4"


def local_input_options(formats: str) -> tuple[str, ...]:
    """Input options for a file on our disk: opened as a file only (no network, no other
    protocol), and only with the `formats` demuxers."""
    return ("-protocol_whitelist", "file", "-format_whitelist", formats)


def local_input(path: str | Path, formats: str) -> list[str]:
    """`-i path` for a file on our disk, with local_input_options."""
    return [*local_input_options(formats), "-i", str(path)]


def base_args(ffmpeg: str, loglevel: str = "error") -> list[str]:
    """Quiet, non-interactive, overwriting, with key=value progress on stdout."""
    return [
        ffmpeg, "-hide_banner", "-nostdin", "-nostats",
        "-loglevel", f"level+{loglevel}",  # "[error]" prefixes let us classify stderr
        "-progress", "pipe:1",
        "-y",
    ]  # fmt: skip


def tagged(args: Sequence[str], tag: str) -> list[str]:
    """args with `-metadata comment=<tag>` before the output: a marker for the pidfile that
    names this run only (the tag also lands in the file's metadata, which does no harm)."""
    return [*args[:-1], "-metadata", f"comment={tag}", args[-1]]


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Send sig to a process group we started; gone already is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class FfmpegProcess:
    """A started FFmpeg: read its progress, pause/resume/stop its group, wait for its end.

    `nice` and `ionice` exec into ffmpeg, so the pid, the pidfile and /proc all name ffmpeg.
    """

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        pidfile: Path | None,
        label: str,
        logger: logging.Logger,
        on_progress: Callable[[Progress], None] | None,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        """Use FfmpegProcess.start(); label is what log lines name (never a stream key)."""
        self.proc = proc
        self.pid = proc.pid
        self.label = label
        self.paused = False
        self.stderr_tail: deque[str] = deque(maxlen=5)
        self._pidfile = pidfile
        self._log = logger
        self._on_progress = on_progress
        self._redact = redact
        self._readers = [
            asyncio.create_task(self._read_stdout()),
            asyncio.create_task(self._read_stderr()),
        ]

    @classmethod
    async def start(
        cls,
        args: Sequence[str],
        *,
        cwd: Path,
        label: str,
        pidfile: Path | None = None,
        marker: str = "",
        priority: Sequence[str] = (),
        logger: logging.Logger = log,
        on_progress: Callable[[Progress], None] | None = None,
        pass_fds: Sequence[int] = (),
        redact: Callable[[str], str] | None = None,
    ) -> FfmpegProcess:
        """Spawn `priority + args` in a new session in `cwd`; OSError when it cannot start.

        The pidfile says "<pid>\\n<marker>\\n", and marker must appear in args: the reaper
        kills a process only while its argv still carries the marker (a reused pid does not).
        pass_fds are inherited by FFmpeg (a pipe it reads options from); `redact` rewrites
        each stderr line before it is logged or kept (a secret FFmpeg might echo).
        """
        if pidfile is not None and marker not in " ".join(args):
            raise ValueError("the pidfile's marker must be in the arguments")
        proc = await asyncio.create_subprocess_exec(
            *priority,
            *args,
            cwd=cwd,
            env=media_environ(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # own process group: signals reach ffmpeg, not us
            pass_fds=tuple(pass_fds),
        )
        if pidfile is not None:
            pidfile.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(pidfile, f"{proc.pid}\n{marker}\n")
        return cls(proc, pidfile, label, logger, on_progress, redact)

    @property
    def returncode(self) -> int | None:
        """None while running."""
        return self.proc.returncode

    def signal(self, sig: signal.Signals) -> None:
        """Send sig to ffmpeg's whole group (x265 worker threads included)."""
        signal_group(self.pid, sig)

    def pause(self) -> None:
        """SIGSTOP: the job keeps its place and costs nothing until resume()."""
        if not self.paused and self.returncode is None:
            self.signal(signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        """SIGCONT after pause()."""
        if self.paused:
            self.signal(signal.SIGCONT)
            self.paused = False

    async def wait(self) -> int:
        """Until ffmpeg exits and its output is read; drops the pidfile; returns the exit code."""
        try:
            rc = await self.proc.wait()
            await asyncio.gather(*self._readers, return_exceptions=True)
            return rc
        finally:
            if self.proc.returncode is not None and self._pidfile is not None:
                self._pidfile.unlink(missing_ok=True)

    async def stop(self, grace: float) -> bool:
        """SIGINT (ffmpeg finishes its segments or trailer), SIGKILL after `grace`.

        True when it ended within the grace period, False when it had to be killed.
        """
        self.resume()
        self.signal(signal.SIGINT)
        try:
            await asyncio.wait_for(asyncio.shield(self.wait()), grace)
            return True
        except TimeoutError:
            await self.kill()
            return False

    async def kill(self) -> int:
        """SIGKILL the group and reap it: a hung ffmpeg, or a cancel that must leave nothing."""
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGKILL)
        return await asyncio.shield(self.wait())

    async def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        parser = ProgressParser()
        async for raw in self.proc.stdout:
            progress = parser.feed(raw.decode(errors="replace"))
            if progress is not None and self._on_progress is not None:
                self._on_progress(progress)

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            if self._redact is not None:
                line = self._redact(line)
            if not line:
                continue
            level = classify_stderr(line)
            if level >= logging.WARNING:
                self.stderr_tail.append(line[:300])
            self._log.log(level, "ffmpeg says %s pid=%d: %s", self.label, self.pid, line)


async def run_to_end(
    args: Sequence[str],
    *,
    cwd: Path,
    label: str,
    pidfile: Path | None = None,
    marker: str = "",
    priority: Sequence[str] = (),
    logger: logging.Logger = log,
    on_start: Callable[[FfmpegProcess], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> tuple[int, str]:
    """Run ffmpeg to completion; cancelling kills its group. Returns (exit code, stderr tail)."""
    run = await FfmpegProcess.start(
        args,
        cwd=cwd,
        label=label,
        pidfile=pidfile,
        marker=marker,
        priority=priority,
        logger=logger,
        on_progress=on_progress,
    )
    if on_start is not None:
        on_start(run)
    try:
        rc = await run.wait()
    except asyncio.CancelledError:
        await run.kill()
        raise
    return rc, " | ".join(run.stderr_tail)


async def run_captured(
    args: Sequence[str], *, timeout: float, stdin: bytes | None = None
) -> tuple[int, bytes, bytes]:
    """A short run (ffprobe, a thumbnail): (exit code, stdout, stderr).

    TimeoutError after `timeout` seconds; on a time-out or a cancel the group is killed and
    reaped first, so nothing outlives the call.
    """
    proc = await asyncio.create_subprocess_exec(
        *args,
        env=media_environ(),
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # a kill takes anything it spawned, too
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except (TimeoutError, asyncio.CancelledError):
        signal_group(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out, err


# -- orphans of a killed server ------------------------------------------------------------


def _alive(pid: int) -> bool:
    """True unless /proc says the process is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _is_orphan_ffmpeg(pid: int, marker: str) -> bool:
    """The pid is still an ffmpeg leading its own group, with the pidfile's marker in argv."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        pgid = os.getpgid(pid)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    name = os.path.basename(argv[0].decode(errors="replace"))
    return (
        bool(marker)
        and name.startswith("ffmpeg")
        and pgid == pid  # we spawned it with start_new_session, so it leads its group
        and any(marker.encode() in a for a in argv[1:])  # not an ffmpeg that reused the pid
    )


def _kill_orphans(run_dir: Path, name: str | None) -> list[int]:
    """SIGKILL the group of every verified orphan named by a pidfile; remove the pidfiles."""
    # A channel's ladder leaves one pidfile per rung (<slug>.<rung>.pid; <slug>.pid before).
    pattern = "*.pid" if name is None else f"{name}.*pid"
    files = sorted(p for p in run_dir.glob(pattern) if name is None or p.name.count(".") <= 2)
    killed: list[int] = []
    for pidfile in files:
        try:
            pid_text, _, marker = pidfile.read_text().partition("\n")
            pid = int(pid_text)
        except (FileNotFoundError, ValueError):
            pidfile.unlink(missing_ok=True)
            continue
        if _is_orphan_ffmpeg(pid, marker.strip()):
            signal_group(pid, signal.SIGKILL)
            killed.append(pid)
            log.warning("ffmpeg orphan reaped name=%s pid=%d", pidfile.stem, pid)
        pidfile.unlink(missing_ok=True)
    return killed


async def reap_orphans(
    run_dir: Path, *, name: str | None = None, timeout: float = 5.0
) -> list[int]:
    """Kill ffmpeg groups a previous server left (pidfiles in run_dir); return their pids."""
    killed = await asyncio.to_thread(_kill_orphans, run_dir, name)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    # Not our children, so there is nothing to wait() on: poll /proc until they are gone.
    while any(_alive(p) for p in killed) and loop.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    return killed
