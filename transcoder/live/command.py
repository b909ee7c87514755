"""build_args(job): the one FFmpeg argument list that turns a live source into the HLS ladder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from transcoder.live.encoders import hw_filter, video_args
from transcoder.live.ladder import LadderConfig, Rendition
from transcoder.live.window import KEEP_UNLISTED, PUBLIC_PLAYLIST, RUN_PLAYLIST, init_name


@dataclass(frozen=True)
class TranscodeJob:
    """Everything one channel's ffmpeg needs; build_args turns it into argv."""

    input_url: str  # rtmp://127.0.0.1:PORT/live/<slug> in production
    output_dir: Path  # MEDIA_DIR/live/<slug>
    renditions: tuple[Rendition, ...]
    config: LadderConfig
    fps: float
    has_audio: bool = True
    segment_prefix: str = "seg"  # live: the run's id, so no segment or init name repeats
    input_options: tuple[str, ...] = ()  # extra input flags (tests feed a file with -re)
    ffmpeg: str = "ffmpeg"
    loglevel: str = "warning"
    vod: bool = False  # a file to a finished VOD ladder (uploads), not a live window


@dataclass
class _Graph:
    """Filter graph under construction: chains plus the output label of each rung."""

    chains: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)


def gop_frames(job: TranscodeJob) -> int:
    """Frames per segment: a fixed GOP so every rung's keyframes fall on segment edges."""
    return max(1, round(job.fps * job.config.segment_seconds))


def filter_graph(job: TranscodeJob) -> _Graph:
    """Decode once, then scale each size once, each from the next larger size (cheaper)."""
    encoded = [r for r in job.renditions if not r.copy]
    sizes = sorted({(r.width, r.height) for r in encoded}, key=lambda s: s[1], reverse=True)
    graph = _Graph()
    src = "0:v:0"
    for i, (w, h) in enumerate(sizes):
        users = [r for r in encoded if (r.width, r.height) == (w, h)]
        outs = [f"s{i}_{j}" for j in range(len(users))]
        nxt = f"c{i}" if i + 1 < len(sizes) else None
        if nxt:
            outs.append(nxt)
        # scale is a no-op pass-through when the size already matches
        chain = f"[{src}]scale={w}:{h}"
        chain += f",split={len(outs)}" if len(outs) > 1 else ""
        graph.chains.append(chain + "".join(f"[{o}]" for o in outs))
        for j, r in enumerate(users):
            graph.labels[r.name] = f"v{job.renditions.index(r)}"
            graph.chains.append(f"[s{i}_{j}]{hw_filter(job.config, r)}[{graph.labels[r.name]}]")
        src = nxt or src
    return graph


def _live_window(c: LadderConfig) -> list[str]:
    """This run's sliding window; window.py continues the public playlist across runs."""
    return [
        "-hls_list_size", str(c.list_size),
        "-hls_delete_threshold", str(KEEP_UNLISTED),  # keep just-expired segments a while
        "-hls_flags", "+".join([
            "independent_segments",  # every segment starts on an IDR
            "program_date_time",  # wall clock per segment for latency and sync
            "temp_file",  # write .tmp then rename: no player sees half a segment
            "omit_endlist",  # the supervisor writes ENDLIST only when the stream ends
            "delete_segments",  # bounded disk use for the live window
        ]),
    ]  # fmt: skip


def _vod_window() -> list[str]:
    """Every segment kept, ENDLIST written by ffmpeg itself when the file ends."""
    return [
        "-hls_list_size", "0",  # 0: the playlist lists every segment
        "-hls_playlist_type", "vod",  # EXT-X-PLAYLIST-TYPE:VOD, players may seek anywhere
        "-hls_flags", "+".join([
            "independent_segments",  # every segment starts on an IDR
            "temp_file",  # no half-written segment is ever served while the job runs
        ]),
    ]  # fmt: skip


def working_dir(job: TranscodeJob) -> Path:
    """The folder to start ffmpeg in: one of its rendition folders.

    hlsenc creates the folder of `-hls_fmp4_init_filename` ("../%v") relative to its working
    directory before it joins the name to the playlist's folder; from inside a rendition
    folder "../<rung>" is a rendition folder again, from anywhere else it is a stray empty
    folder beside the working directory (it made /360p, /480p, … under systemd).
    """
    return job.output_dir / job.renditions[0].name


def build_args(job: TranscodeJob) -> list[str]:
    """The complete ffmpeg argv for a job: pure, no shell, deterministic."""
    c = job.config
    args = [
        job.ffmpeg,
        "-hide_banner",
        "-nostdin",  # never read the terminal; stop comes as SIGINT
        "-nostats",  # progress goes to stdout via -progress instead
        "-loglevel", f"level+{job.loglevel}",  # "[warning]" prefixes let us classify stderr
        "-progress", "pipe:1",  # key=value blocks on stdout for speed and stall detection
    ]  # fmt: skip
    if c.hevc_encoder == "hevc_vaapi" and any(r.codec == "hevc" for r in job.renditions):
        args += ["-vaapi_device", c.vaapi_device]  # hwupload needs a device
    if job.input_url.startswith(("rtmp://", "rtmps://")):
        args += ["-rw_timeout", "10000000"]  # a silent publisher ends the read after 10 s
    if not job.vod:
        # The source's timestamps, not ones starting at 0: every rung (each its own process)
        # and every run of a rung share one timeline, so keyframes, segment edges and tfdt
        # agree across rungs and continue across a restart.
        args += ["-copyts"]
    args += [*job.input_options, "-i", job.input_url]
    graph = filter_graph(job)
    if graph.chains:
        args += ["-filter_complex", ";".join(graph.chains)]
    stream_map: list[str] = []
    for k, r in enumerate(job.renditions):
        args += ["-map", "0:v:0" if r.copy else f"[{graph.labels[r.name]}]"]
        if job.has_audio:
            args += ["-map", "0:a:0"]  # one AAC copy per variant: each variant is self-contained
        stream_map.append(f"v:{k},a:{k},name:{r.name}" if job.has_audio else f"v:{k},name:{r.name}")
    for k, r in enumerate(job.renditions):
        args += video_args(c, k, r, job.fps, gop_frames(job))
    if job.has_audio:
        audio_kbps = max(r.audio_kbps for r in job.renditions)
        args += ["-c:a", "aac", "-b:a", f"{audio_kbps}k", "-ac", "2"]  # AAC-LC stereo: mp4a.40.2
    init = "init.mp4" if job.vod else init_name(job.segment_prefix)
    playlist = PUBLIC_PLAYLIST if job.vod else RUN_PLAYLIST
    if len(job.renditions) == 1:
        # One rung (every live rung runs alone): plain paths; the init lands beside the
        # playlist. (hlsenc leaves %v unexpanded in the init name without several variants.)
        folder = job.output_dir / job.renditions[0].name
        init_path, variants = init, []
    else:
        # The init file lives beside its playlist (hlsenc would otherwise name it
        # init_<n>.mp4).
        folder, init_path = job.output_dir / "%v", f"../%v/{init}"
        variants = ["-var_stream_map", " ".join(stream_map)]
    args += [
        "-max_muxing_queue_size", "1024",  # rungs start at different times; don't abort on it
        "-f", "hls",
        "-hls_time", str(c.segment_seconds),
        "-hls_segment_type", "fmp4",
        # Live, each run names its own init, so a restart never rewrites one a player holds.
        "-hls_fmp4_init_filename", init_path,
        *(_vod_window() if job.vod else _live_window(c)),
        "-hls_segment_filename", str(folder / f"{job.segment_prefix}-%d.m4s"),
        *variants,
        str(folder / playlist),
    ]  # fmt: skip
    return args
