"""What a benchmark ran on: the part every bench/ script records the same way."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any


def describe_host() -> dict[str, Any]:
    """CPU model, cores, RAM, kernel, Python and FFmpeg; each bench adds what it depends on."""
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")), "")
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    mem_kb = next(int(ln.split()[1]) for ln in meminfo if ln.startswith("MemTotal"))
    try:
        ffmpeg = subprocess.run(
            ["ffmpeg", "-hide_banner", "-version"], capture_output=True, text=True, check=False
        ).stdout.splitlines()[0]
    except (OSError, IndexError):
        ffmpeg = "missing"
    return {
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "ram_gib": round(mem_kb / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "ffmpeg": ffmpeg,
    }


def write_results(
    folder: Path, name: str, tag: str, report: dict[str, Any], markdown: Callable[[Any], str]
) -> None:
    """Write <name>-<date>[-tag].json and .md into `folder` and print the summary."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{name}-{dt.date.today().isoformat()}{'-' + tag if tag else ''}"
    (folder / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (folder / f"{stem}.md").write_text(markdown(report))
    print(markdown(report))
    print(f"wrote {folder / stem}.json and .md in {report['elapsed_s']:.0f} s")
