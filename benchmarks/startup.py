"""Start-up: wall time of `retr --help`, `retr index info` and `retr query missing.jpg` against a bare
`python -c pass`, side by side in one run. Goal: each within 0.5 s of `python -c pass`.

    .venv/bin/python benchmarks/startup.py [--repeats 5] [--model test_efficientnet]

It first builds a small index (three sample photos, random weights of --model) in a temporary folder.
The commands run interleaved (one of each per round), so a busy moment hits all of them alike; the table
shows the median and the best of the rounds.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "tests" / "data" / "photos"


def retr() -> list[str]:
    """The installed `retr` script next to this interpreter, else the module."""
    script = Path(sys.executable).with_name("retr")
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli.main"]


def wall(cmd: list[str], expect: int) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != expect:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}, expected {expect}:\n{proc.stderr[-2000:]}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--model", default="test_efficientnet", help="model of the small index (random weights)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "photos"
        photos.mkdir()
        for name in ("coffee", "chelsea", "rocket"):
            shutil.copy(PHOTOS / f"{name}.jpg", photos / f"{name}.jpg")
        index = str(Path(tmp) / "ix")
        wall([*retr(), "index", "build", str(photos), "--index", index, "--model", args.model, "--random-weights",
              "--workers", "0", "--quiet"], 0)
        commands = {
            "python -c pass": ([sys.executable, "-c", "pass"], 0),
            "retr --help": ([*retr(), "--help"], 0),
            "retr index info --index DIR": ([*retr(), "index", "info", "--index", index], 0),
            "retr query missing.jpg": ([*retr(), "query", str(Path(tmp) / "missing.jpg"), "--index", index], 1),
        }
        for cmd, expect in commands.values():  # warm the file cache and .pyc files
            wall(cmd, expect)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeats):
            for name, (cmd, expect) in commands.items():
                times[name].append(wall(cmd, expect))
    base = statistics.median(times["python -c pass"])
    print(f"{'command':30} {'median s':>9} {'best s':>8} {'- python':>9}  goal: within 0.5 s of python -c pass "
          f"({args.repeats} interleaved rounds)")
    for name, seconds in times.items():
        median = statistics.median(seconds)
        over = median - base
        verdict = "" if name == "python -c pass" else ("  ok" if over <= 0.5 else "  over")
        print(f"{name:30} {median:>9.3f} {min(seconds):>8.3f} {over:>+9.3f}{verdict}")


if __name__ == "__main__":
    from _common import record_result
    with record_result(__file__):
        main()
