"""Run every benchmark, each under its own time bound, then the capacity model and the plots.

Run from the repository root:

    .venv/bin/python bench/run_all.py --quick            # about 10 min on 2 idle cores
    .venv/bin/python bench/run_all.py                    # full: about 40 min
    .venv/bin/python bench/run_all.py --quick --only chat,latency
    .venv/bin/python bench/run_all.py --skip transcode   # reuse the last transcode results
    .venv/bin/python bench/run_all.py --quick --only soak,uploads   # the opt-in ones

Each script runs as a child in its own process group with a wall-clock limit; one that runs
past it is stopped (SIGTERM, which each bench turns into an orderly shutdown of its private
stack, then SIGKILL) and the others still run. Every bench writes its own JSON with the
machine's description to bench/results/; this runner adds run_all-<date>[-quick].json with
what ran, how long, the exit status and the load average around each. Afterwards
bench/capacity.py rebuilds the capacity model from the newest results and bench/plots.py
redraws docs/performance/*.png.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from host import describe_host

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


@dataclass(frozen=True)
class Bench:
    """One script: its arguments in full and quick mode and the time bound of each."""

    name: str
    script: str
    full: tuple[str, ...]
    quick: tuple[str, ...]
    full_limit_s: int
    quick_limit_s: int
    default: bool = True  # False: long or heavy; runs only when named in --only


BENCHES = (
    Bench("transcode", "transcode.py", (), ("--quick",), 1800, 600),
    Bench("recordings", "recordings.py", ("--seconds", "120"), ("--seconds", "30"), 900, 300),
    Bench("http", "http_load.py", (), ("--quick",), 400, 180),
    Bench("chat", "chat.py", (), ("--quick",), 900, 300),
    Bench("chat-redis", "chat.py", ("--redis",), ("--redis", "--quick"), 900, 300),
    Bench("latency", "latency.py", (), ("--quick",), 300, 150),
    # Opt-in (--only): minutes of load, or gigabytes of disk.
    Bench(
        "soak",
        "soak.py",
        ("--minutes", "10", "--players", "500", "--chatters", "200"),
        ("--minutes", "2", "--players", "200", "--chatters", "50", "--tag", "quick"),
        900,
        300,
        default=False,
    ),
    Bench(
        "uploads",
        "uploads.py",
        ("--count", "20", "--size", "512M"),
        ("--count", "4", "--size", "128M", "--tag", "quick"),
        900,
        240,
        default=False,
    ),
    Bench("capacity", "capacity.py", (), (), 60, 60),
    Bench("plots", "plots.py", (), (), 120, 120),
)


def run_one(bench: Bench, quick: bool) -> dict[str, Any]:
    """Run one script under its limit; returns what happened."""
    args = bench.quick if quick else bench.full
    limit = bench.quick_limit_s if quick else bench.full_limit_s
    command = [sys.executable, str(ROOT / "bench" / bench.script), *args]
    # The repository root first, so the benches import server/ and transcoder/ from here.
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    }
    print(f"== {bench.name}: {' '.join(command[1:])} (limit {limit} s)", flush=True)
    load_before = [round(x, 2) for x in os.getloadavg()]
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    timed_out = False
    try:
        process.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    except KeyboardInterrupt:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait()
        raise
    elapsed = time.monotonic() - started
    status = "timed out" if timed_out else f"exit {process.returncode}"
    print(f"== {bench.name}: {status} after {elapsed:.0f} s", flush=True)
    return {
        "name": bench.name,
        "command": command[1:],
        "limit_s": limit,
        "elapsed_s": round(elapsed, 1),
        "returncode": process.returncode,
        "timed_out": timed_out,
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }


def select(names: Sequence[str], only: str, skip: str) -> list[Bench]:
    """The benches to run, in the fixed order, after --only and --skip."""
    wanted = {x for x in only.split(",") if x} or {b.name for b in BENCHES if b.default}
    unwanted = {x for x in skip.split(",") if x}
    unknown = (wanted | unwanted) - set(names)
    if unknown:
        raise SystemExit(f"unknown bench(es): {', '.join(sorted(unknown))}; known: {names}")
    return [b for b in BENCHES if b.name in wanted - unwanted]


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments, run the selection, write bench/results/run_all-<date>[-quick].json."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="each bench's short mode")
    parser.add_argument("--only", default="", help="comma-separated bench names")
    parser.add_argument("--skip", default="", help="comma-separated bench names")
    args = parser.parse_args(argv)
    names = [b.name for b in BENCHES]
    chosen = select(names, args.only, args.skip)
    started = time.monotonic()
    runs = [run_one(bench, args.quick) for bench in chosen]
    report = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": describe_host(),
        "runs": runs,
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    stem = f"run_all-{dt.date.today().isoformat()}{'-quick' if args.quick else ''}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    failed = [r["name"] for r in runs if r["timed_out"] or r["returncode"] != 0]
    print(
        f"ran {len(runs)} in {report['elapsed_s']:.0f} s; failed or timed out: {failed or 'none'}"
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
