"""Redraw docs/performance/*.png from the results JSON in bench/results/ (matplotlib, Agg).

    .venv/bin/python bench/plots.py

Every figure names the machine, the date of the run it shows and the load average, and
shows ratios against the baseline measured in the same run (x264 veryfast for ladders, nginx
serving the same bytes for playlists, the smallest room for chat).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
OUT = ROOT / "docs" / "performance"
BBB_LOG = re.compile(r"^\s*bbb\s+(\S+)@1\s+speed\s+([\d.]+)x cpu ([\d.]+) core-s/s", re.M)
DECODE_LOG = re.compile(r"^\s*bbb\s+decode-only\s+speed\s+[\d.]+x cpu ([\d.]+) core-s/s", re.M)
# Short names for the trials' scatter labels.
ABBREVIATIONS = (
    ("ultrafast", "uf"), ("superfast", "sf"), ("veryfast", "vf"), ("aq-mode=2", "aq"),
    ("aq-strength=1.0", "s1"), ("rc-lookahead", "la"), ("frame-threads", "ft"),
    ("signhide", "sh"), ("weightp", "wp"), ("limit-refs", "lr"), (":", " "),
)  # fmt: skip


def read(path: Path) -> dict[str, Any]:
    """One results file."""
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def newest(pattern: str, exclude: str = "") -> tuple[Path, dict[str, Any]] | None:
    """The newest results file matching pattern (by its recorded date)."""
    found = [
        (str(read(p).get("date", "")), p)
        for p in RESULTS.glob(pattern)
        if not exclude or exclude not in p.name
    ]
    if not found:
        return None
    _, path = max(found)
    return path, read(path)


def machine_line(m: dict[str, Any], date: str, load: Sequence[Any] | None = None) -> str:
    """The footer every figure carries."""
    text = f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('ram_gib', '?')} GiB"
    text += f" — run {str(date)[:16]}"
    if load:
        text += f" — load average {load[0]} at start"
    return text


def footer(fig: Figure, text: str) -> None:
    """Machine and date under the plot."""
    fig.text(0.01, 0.01, text, fontsize=7, color="0.35", ha="left", va="bottom")


def save(fig: Figure, name: str) -> Path:
    """Write docs/performance/<name>.png."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path.relative_to(ROOT)}")
    return path


# --- ladders --------------------------------------------------------------------------------


def ladder_points() -> tuple[list[tuple[str, float, float | None]], str, dict[str, Any]]:
    """(ladder, core-s/s, mean BD saving) for the 720p clip, final run and trials."""
    points: list[tuple[str, float, float | None]] = []
    final = newest("transcode-*-final.json")
    machine: dict[str, Any] = final[1]["machine"] if final else {}
    when = final[1]["date"] if final else ""
    for log in sorted(RESULTS.glob("transcode-*-final-bbb.log")):
        text = log.read_text()
        decode = DECODE_LOG.search(text)
        if decode:
            points.append(("decode-only", float(decode.group(1)), None))
        for label, _speed, cores in BBB_LOG.findall(text):
            name = "superfast (default)" if label == "default" else label
            points.append((name, float(cores), None))
    for path in sorted(RESULTS.glob("transcode-*-trials*.json")):
        report = read(path)
        for label, figures in report["results"].get("bbb", {}).items():
            if label in ("runs", "decode-only", "x264-veryfast"):
                continue
            spec = report["ladders"].get(label, {})
            name = f"{spec.get('preset', label)} {spec.get('x265_params', '')}".strip()
            for long, short in ABBREVIATIONS:
                name = name.replace(long, short)
            points.append((name, figures["core_s_per_s"], figures.get("mean_bd_saving")))
    return points, when, machine


def plot_ladders() -> Path | None:
    """CPU per second of 720p media by ladder, and bits saved vs CPU for the trials."""
    points, when, machine = ladder_points()
    final = [(n, c) for n, c, bd in points if bd is None]
    trials = [(n, c, bd) for n, c, bd in points if bd is not None]
    if not final and not trials:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    x264 = next((c for n, c in final if n == "x264-veryfast"), None)
    final.sort(key=lambda p: p[1])
    names = [n for n, _ in final]
    cores = [c for _, c in final]
    colors = ["0.6" if n in ("decode-only", "x264-veryfast") else "tab:blue" for n in names]
    bars = left.barh(names, cores, color=colors)
    for bar, c in zip(bars, cores, strict=True):
        ratio = f"  {c:.2f}" + (f" ({c / x264:.1f}x x264)" if x264 else "")
        left.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, ratio, va="center")
    left.axvline(2.0, color="tab:red", ls="--", lw=1)
    left.text(2.02, -0.4, "2 cores", color="tab:red", fontsize=8)
    left.set_xlabel("CPU core-seconds per second of media (lower is cheaper)")
    left.set_title("720p source → 720/480/360 ladder (Big Buck Bunny, 10 s)")
    left.set_xlim(0, max(cores) * 1.45)
    for name, c, bd in trials:
        right.scatter(c, bd * 100, color="tab:blue")
        right.annotate(name, (c, bd * 100), fontsize=6, xytext=(3, 2),
                       textcoords="offset points")  # fmt: skip
    right.set_xlabel("CPU core-seconds per second of media")
    right.set_ylabel("bits saved vs x264 veryfast at equal SSIM (BD, %)")
    right.set_title("x265 tuning trials, 720p (5 s; uf/sf/vf = ultra/super/veryfast)")
    right.grid(alpha=0.3)
    fig.suptitle("Live ladder cost by x265 preset")
    footer(fig, machine_line(machine, when) + " — speed factors under load; core-s/s ±15 %")
    fig.tight_layout(rect=(0, 0.03, 1, 0.97))
    return save(fig, "ladder-cpu")


# --- chat -----------------------------------------------------------------------------------


def plot_chat() -> Path | None:
    """Fan-out latency and server CPU against room size, one line per configuration."""
    runs = [
        (label, found)
        for label, found in (
            ("1 process", newest("chat-*-quick.json", exclude="-r")),
            ("2 processes + Redis", newest("chat-*redis*.json")),
            ("1 process, 1 msg/s", newest("chat-*rate1*.json")),
        )
        if found
    ]
    if not runs:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    colors = ("tab:blue", "tab:orange", "tab:green")
    for (label, (_path, report)), color in zip(runs, colors, strict=False):
        rows = [r for r in report["rows"] if r["p50_ms"] is not None]
        n = [r["clients"] for r in rows]
        left.plot(n, [r["p50_ms"] for r in rows], "o-", color=color, label=f"{label} p50")
        left.plot(n, [r["p99_ms"] for r in rows], "s--", color=color, label=f"{label} p99")
        right.plot(n, [r["cpu_us_per_delivery"] for r in rows], "o-", color=color, label=label)
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("clients in the room")
    left.set_ylabel("send → receive at every other client (ms)")
    first = runs[0][1][1]
    left.set_title(f"{first['rate']:g} messages/s into one room (unless marked)")
    left.legend(fontsize=8)
    left.grid(alpha=0.3, which="both")
    right.set_xscale("log")
    right.set_xlabel("clients in the room")
    right.set_ylabel("server CPU µs per delivered message")
    right.set_title("Server CPU per delivery (1 / deliveries per CPU-second)")
    right.legend(fontsize=8)
    right.grid(alpha=0.3, which="both")
    fig.suptitle("Chat fan-out (python-socketio clients on the same 2 cores as the server)")
    footer(fig, machine_line(first["machine"], first["date"], first["load_before"]))
    fig.tight_layout(rect=(0, 0.03, 1, 0.97))
    return save(fig, "chat-latency")


# --- HTTP -----------------------------------------------------------------------------------


def plot_http() -> Path | None:
    """Playlist throughput through the server against nginx serving the same bytes, per run."""
    # Full runs of the standard loads only (an --ab comparison has its own shape).
    runs = sorted(
        (
            (read(p)["date"], p.stem, read(p))
            for p in RESULTS.glob("http-*.json")
            if "playlist-nginx-static" in read(p).get("summary", {}) and not read(p).get("quick")
        ),
        key=lambda r: r[0],
    )
    if not runs:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.5))
    labels = [
        f"{stem.split('-', 4)[4] if stem.count('-') >= 4 else 'first run'}"
        f"\n{r['date'][11:16]}, load {r['load_before'][0]}"
        for _, stem, r in runs
    ]
    width = 0.27
    for i, (name, key) in enumerate(
        (("nginx static (baseline)", "playlist-nginx-static"),
         ("via nginx → server", "playlist-via-nginx"),
         ("server direct", "playlist-server-direct"))
    ):  # fmt: skip
        values = [report["summary"][key]["rps"] for _, _, report in runs]
        xs = [j + (i - 1) * width for j in range(len(runs))]
        bars = left.bar(xs, values, width, label=name)
        for bar, (_, _, report) in zip(bars, runs, strict=True):
            ratio = report["summary"][key]["vs_nginx_static"]
            if ratio is not None and key != "playlist-nginx-static":
                left.text(bar.get_x() + width / 2, bar.get_height(), f"{ratio:.2f}x",
                          ha="center", va="bottom", fontsize=8)  # fmt: skip
        per_cpu = [report["summary"][key].get("per_server_cpu_s") for _, _, report in runs]
        if key != "playlist-nginx-static":
            right.bar(xs, [v or 0 for v in per_cpu], width, label=name)
    nginx_cpu = [r["summary"]["playlist-nginx-static"].get("per_nginx_cpu_s", 0) for *_, r in runs]
    right.bar([j - width for j in range(len(runs))], nginx_cpu, width, color="0.6",
              label="nginx static, per nginx CPU-s")  # fmt: skip
    right.axhline(5000, color="tab:red", ls="--", lw=1)
    right.text(len(runs) - 0.6, 5100, "target 5,000/core", color="tab:red", fontsize=8,
               ha="right", va="bottom")  # fmt: skip
    for ax in (left, right):
        ax.set_xticks(range(len(runs)), labels, fontsize=8)
        ax.legend(fontsize=8, loc="center right")
        ax.grid(alpha=0.3, axis="y")
    left.set_ylabel("playlist requests/s (wall; ratio to nginx static in the same run)")
    left.set_title("Rendition playlist throughput, 64 connections")
    right.set_ylabel("requests per CPU-second of the serving process")
    right.set_title("Per CPU-second (robust when the cores are shared)")
    last = runs[-1][2]
    fig.suptitle("Playlists: onair serve vs nginx serving the same bytes (full 12 s runs)")
    footer(fig, machine_line(last["machine"], last["date"], last["load_before"]))
    fig.tight_layout(rect=(0, 0.03, 1, 0.97))
    return save(fig, "playlists")


# --- latency --------------------------------------------------------------------------------


def plot_latency() -> Path | None:
    """First-frame latency per rung, for each source size measured."""
    runs = []
    for size in ("360p", "720p"):
        found = newest(f"latency-*{size}*.json")
        if found:
            runs.append((size, found[1]))
    if not runs:
        return None
    fig, ax = plt.subplots(figsize=(9, 4.5))
    labels, p50, worst, last = [], [], [], []
    for size, report in runs:
        for rung, r in report["rungs"].items():
            labels.append(f"{size} source\n{rung}")
            p50.append(r["first_frame_p50_s"] or 0)
            worst.append(r["first_frame_max_s"] or 0)
            last.append(r["last_frame_p50_s"] or 0)
    xs = range(len(labels))
    ax.bar([x - 0.27 for x in xs], p50, 0.27, label="first frame p50")
    ax.bar(list(xs), worst, 0.27, label="first frame max")
    ax.bar([x + 0.27 for x in xs], last, 0.27, label="last frame p50")
    ax.axhline(2.0, color="0.5", ls=":", lw=1)
    ax.text(-0.5, 2.05, "one segment (2 s)", fontsize=8, color="0.4")
    ax.set_xticks(list(xs), labels, fontsize=8)
    ax.set_ylabel("frame pushed → its segment listed via nginx (s)")
    ax.set_title("Glass-to-glass: RTMP push → HLS segment fetchable, per rung")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    first = runs[-1][1]
    text = machine_line(first["machine"], first["date"])
    for size, report in runs:
        cores = report.get("transcoder_core_s_per_s")
        text += f"\n{size} source: run {report['date'][:16]}, load {report['load_before'][0]}"
        text += f" → {report['load_after'][0]}; the ladder's ffmpeg used {cores} cores"
    footer(fig, text)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return save(fig, "latency")


# --- capacity -------------------------------------------------------------------------------


def plot_capacity() -> Path | None:
    """Cores needed per load level (by part) against each plan, and the month's bill."""
    found = newest("capacity-*.json")
    if not found:
        return None
    _path, model = found
    levels = model["levels"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    parts = ("cores_transcode", "cores_playlists", "cores_segments", "cores_chat")
    names = [f"{lv['viewers']:,}" for lv in levels]
    bottoms = [0.0] * len(levels)
    for part in parts:
        values = [
            next(r for r in lv["rows"] if r["preset"] == "superfast")["demand"][part]
            for lv in levels
        ]
        left.bar(names, values, bottom=bottoms, label=part.removeprefix("cores_"))
        bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    headroom = model["assumptions"]["cpu_headroom"]
    for plan in model["plans"]:
        y = plan["vcpu"] * headroom
        left.axhline(y, color="0.5", ls="--", lw=0.8)
        left.text(len(levels) - 0.5, y, f" {plan['vcpu']} vCPU x {headroom:.0%}", fontsize=7,
                  va="bottom", ha="right")  # fmt: skip
    left.set_xlabel("concurrent viewers (1 live 720p channel, superfast)")
    left.set_ylabel("cores")
    left.set_title("CPU needed, by part")
    left.legend(fontsize=8)
    server, bandwidth, block = [], [], []
    for lv in levels:
        best = lv["best"] or {"server_usd": 0, "bandwidth_usd": 0, "block_gb": 0}
        server.append(best["server_usd"])
        bandwidth.append(best["bandwidth_usd"])
        block.append(best["block_gb"] * model["assumptions"]["block_usd_per_gb"])
    right.bar(names, server, label="server (cheapest plan that fits)")
    right.bar(names, block, bottom=server, label="block storage")
    right.bar(names, bandwidth, bottom=[s + b for s, b in zip(server, block, strict=True)],
              label="egress beyond the plan's allowance")  # fmt: skip
    for i, lv in enumerate(levels):
        if lv["best"]:
            right.text(i, server[i] + block[i] + bandwidth[i],
                       f"{lv['best']['plan']} ({lv['best']['preset']})"
                       f"\n${lv['best']['monthly_usd']:,.0f}",
                       ha="center", va="bottom", fontsize=8)  # fmt: skip
    tops = [s + b + w for s, b, w in zip(server, block, bandwidth, strict=True)]
    right.set_ylim(0, max(tops) * 1.2)
    hours = model["assumptions"]["scenario"]["live_hours_per_day"]
    right.set_title(f"Monthly cost (live {hours:g} h/day, every viewer on 720p)")
    right.set_ylabel("USD per month")
    right.set_xlabel("concurrent viewers")
    right.legend(fontsize=8)
    fig.suptitle("Capacity model (unit costs measured on the bench machine)")
    chat = newest("chat-*-quick.json", exclude="-r")
    measured = machine_line(chat[1]["machine"], chat[1]["date"]) if chat else "?"
    footer(
        fig,
        f"model {model['date']}; unit costs measured on {measured} (and the other benches'"
        " runs named in the model's JSON); prices: Vultr Regular Performance list + 20 % backups",
    )
    fig.tight_layout(rect=(0, 0.03, 1, 0.97))
    return save(fig, "capacity")


def main(argv: Sequence[str] | None = None) -> None:
    """Draw every figure whose results exist."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.parse_args(argv)
    drawn = [f() for f in (plot_ladders, plot_chat, plot_http, plot_latency, plot_capacity)]
    missing = sum(1 for p in drawn if p is None)
    if missing:
        print(f"{missing} figure(s) skipped: no results yet", file=sys.stderr)


if __name__ == "__main__":
    main()
