"""How fast retr starts, side by side in one run, each command a process of its own (as a user runs it):

1. the demo index (the 12 sample photos, the default model, its export cached): `retr query one.jpg`, the
   import floor (numpy, Pillow, faiss, openvino, sqlalchemy: what a query cannot do without), `retr --help`
   and `retr index info`, against `python -c pass`. Goal: `retr query` within 0.5 s of the floor;
2. `retr index build` of --photos full-size photos into a new index, the default runtime against
   `--runtime torch`. Goal: the default at least 4x faster end to end;
3. `retr serve` on the demo index: seconds from start to `/readyz` answering 200. Goal: within 1 s of the floor;
4. the first use of a model (its export and check, an empty export cache): `retr query` on the demo index;
5. the first query of a new process, timed to its first result (the first line it prints) and to its end:
   `retr query` and the Python API (`Collection(...).query`), torch-free (the export cached) against the
   torch path (`--runtime torch`: torch, timm and the weights load, torch embeds).

    .venv/bin/python benchmarks/startup.py [--repeats 3] [--photos 288] [--baseline /other/.venv/bin/retr]
        [--sections 12345]

``--baseline`` runs every command with another installation's `retr` too (another checkout's .venv),
interleaved with this one's, so the two are compared in the same minutes. Commands of a section run
interleaved (one of each per round): a busy moment hits all of them alike. The tables show the median and
the best of the rounds.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

from _common import write_photo_copies  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "tests" / "data" / "photos"
FLOOR = "import numpy, PIL.Image, faiss, openvino, sqlalchemy"


def this_retr() -> str:
    """The installed `retr` script next to this interpreter."""
    script = Path(sys.executable).with_name("retr")
    if not script.exists():
        raise SystemExit(f"no retr next to {sys.executable}: install the package (make install)")
    return str(script)


def wall(cmd: list[str], env: dict[str, str], expect: int = 0) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode != expect:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}, expected {expect}:\n{proc.stderr[-2000:]}")
    return seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_ready(retr: str, index: str, env: dict[str, str], timeout: float = 120.0) -> float:
    """Seconds from starting `retr serve` until /readyz answers 200 (the server is stopped after)."""
    port = free_port()
    start = time.perf_counter()
    proc = subprocess.Popen([retr, "serve", "--index", index, "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while time.perf_counter() - start < timeout:
            if proc.poll() is not None:
                raise SystemExit(f"retr serve exited {proc.returncode}:\n{proc.stderr.read()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        return time.perf_counter() - start
            except OSError:
                pass
            time.sleep(0.05)
        raise SystemExit(f"retr serve was not ready within {timeout} s")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def rounds(commands: dict[str, object], repeats: int) -> dict[str, list[float]]:
    """Each callable of ``commands`` once per round, interleaved; the seconds of each."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, run in commands.items():
            times[name].append(run())  # type: ignore[operator]
    return times


def table(title: str, times: dict[str, list[float]], base: str | None, goal: float | None, checked: set[str],
          note: str) -> None:
    print(f"\n{title}")
    ref = statistics.median(times[base]) if base else None
    head = f"{'':44} {'median s':>9} {'best s':>8}"
    print(head + (f" {'- ' + base[:12]:>15}" if base else "") + f"   {note}")
    for name, seconds in times.items():
        median = statistics.median(seconds)
        line = f"{name:44} {median:>9.3f} {min(seconds):>8.3f}"
        if ref is not None:
            over = median - ref
            verdict = ("  ok" if over <= goal else "  over") if name in checked and goal is not None else ""
            line += f" {over:>+15.3f}{verdict}"
        print(line)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--photos", type=int, default=288, help="full-size photos the build section indexes")
    ap.add_argument("--baseline", help="another installation's retr script, run side by side")
    ap.add_argument("--sections", default="12345", help="which sections to run, e.g. 135")
    args = ap.parse_args()
    retrs = {"": this_retr(), **({" (baseline)": args.baseline} if args.baseline else {})}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "RETR_CACHE": str(Path(tmp) / "cache")}
        demo, one = str(Path(tmp) / "demo"), str(PHOTOS / "coffee.jpg")
        for retr in retrs.values():  # the demo index and its export (built once; warms the cache and .pyc files)
            shutil.rmtree(demo, ignore_errors=True)
            wall([retr, "index", "build", str(PHOTOS), "--index", demo, "--quiet"], env)
            wall([retr, "query", one, "--index", demo], env)

        if "1" in args.sections:
            startup(args, retrs, env, demo, one)
        if "2" in args.sections:
            build(args, retrs, env, Path(tmp))
        if "3" in args.sections:
            serve(args, retrs, env, demo)
        if "4" in args.sections:
            first_use(args, retrs, env, demo, one, Path(tmp))
        if "5" in args.sections:
            first_result(args, retrs, env, demo, one)


def startup(args: argparse.Namespace, retrs: dict[str, str], env: dict[str, str], demo: str, one: str) -> None:
    """1. processes that start, answer and end: the import floor, --help, index info, a query."""
    commands: dict[str, object] = {
        "python -c pass": lambda: wall([sys.executable, "-c", "pass"], env),
        "import floor": lambda: wall([sys.executable, "-c", FLOOR], env)}
    for tag, retr in retrs.items():
        commands[f"retr --help{tag}"] = lambda r=retr: wall([r, "--help"], env)
        commands[f"retr index info{tag}"] = lambda r=retr: wall([r, "index", "info", "--index", demo], env)
        commands[f"retr query one.jpg{tag}"] = lambda r=retr: wall([r, "query", one, "--index", demo], env)
    times = rounds(commands, args.repeats)
    table(f"1. start-up, demo index of {len(list(PHOTOS.glob('*.jpg')))} photos, export cached", times,
          "import floor", 0.5, {f"retr query one.jpg{t}" for t in retrs},
          "goal: retr query within 0.5 s of the import floor")


def build(args: argparse.Namespace, retrs: dict[str, str], env: dict[str, str], tmp: Path) -> None:
    """2. a build of full-size photos into a new index, the default runtime against torch."""
    photos = tmp / "photos"
    count = write_photo_copies(photos, max(1, args.photos // 12))
    builds: dict[str, object] = {}
    for tag, retr in retrs.items():
        for runtime in ("auto", "torch"):
            def one_build(r=retr, rt=runtime) -> float:
                out = tmp / "build-ix"
                shutil.rmtree(out, ignore_errors=True)
                return wall([r, "index", "build", str(photos), "--index", str(out), "--runtime", rt, "--quiet"],
                            env)
            builds[f"index build --runtime {runtime}{tag}"] = one_build
    times = rounds(builds, args.repeats)
    table(f"2. retr index build of {count} full-size photos (a new index each time)", times, None, None, set(),
          "")
    for tag in retrs:
        ratio = statistics.median(times[f"index build --runtime torch{tag}"]) / \
            statistics.median(times[f"index build --runtime auto{tag}"])
        print(f"   default runtime against --runtime torch{tag}: {ratio:.2f}x end to end "
              f"(goal >= 4x){'  ok' if ratio >= 4 else '  under'}")


def serve(args: argparse.Namespace, retrs: dict[str, str], env: dict[str, str], demo: str) -> None:
    """3. `retr serve`: start to /readyz answering 200."""
    serves: dict[str, object] = {"import floor": lambda: wall([sys.executable, "-c", FLOOR], env)}
    for tag, retr in retrs.items():
        serves[f"retr serve -> /readyz 200{tag}"] = lambda r=retr: serve_ready(r, demo, env)
    times = rounds(serves, args.repeats)
    table("3. retr serve on the demo index", times, "import floor", 1.0,
          {f"retr serve -> /readyz 200{t}" for t in retrs}, "goal: within 1 s of the import floor")


def first_use(args: argparse.Namespace, retrs: dict[str, str], env: dict[str, str], demo: str, one: str,
              tmp: Path) -> None:
    """4. the first use of a model: its export and check, from an empty export cache."""
    def cold_query(r: str) -> float:
        cold = {**env, "RETR_CACHE": str(tmp / "cold-cache")}
        shutil.rmtree(cold["RETR_CACHE"], ignore_errors=True)
        return wall([r, "query", one, "--index", demo], cold)
    times = rounds({f"retr query, empty export cache{tag}": (lambda r=retr: cold_query(r))
                    for tag, retr in retrs.items()}, args.repeats)
    table("4. first use of the model (export to OpenVINO and check against torch)", times, None, None, set(),
          "compare with --baseline")


def to_first_line(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(seconds until the process printed its first line, seconds until it ended)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()
    answered = time.perf_counter() - start
    rest, err = proc.communicate()
    ended = time.perf_counter() - start
    if proc.returncode != 0 or not first:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{err[-2000:]}")
    return answered, ended


API = ("import sys; from retrieval import Collection; from retrieval.runtimes.settings import InferenceSettings; "
       "col = Collection(sys.argv[1], inference=InferenceSettings(runtime=sys.argv[3])); "
       "print(col.query(sys.argv[2], k=1)[0].results[0].path, flush=True)")


def first_result(args: argparse.Namespace, retrs: dict[str, str], env: dict[str, str], demo: str, one: str) -> None:
    """5. the first query of a new process, to its first result: torch-free against the torch path."""
    commands: dict[str, object] = {"import floor": lambda: (wall([sys.executable, "-c", FLOOR], env),) * 2}
    for tag, retr in retrs.items():
        python = str(Path(retr).with_name("python"))
        for path, runtime in (("torch-free", "auto"), ("torch path", "torch")):
            commands[f"retr query one.jpg, {path}{tag}"] = \
                lambda r=retr, rt=runtime: to_first_line([r, "query", one, "--index", demo, "--runtime", rt], env)
            commands[f"Collection.query, {path}{tag}"] = \
                lambda p=python, rt=runtime: to_first_line([p, "-c", API, demo, one, rt], env)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(args.repeats):
        for name, run in commands.items():
            times[name].append(run())  # type: ignore[operator]
    floor = statistics.median(t[0] for t in times["import floor"])
    print("\n5. first query of a new process, demo index: seconds to the first result and to the process's end")
    print(f"{'':44} {'result s':>9} {'best s':>8} {'- floor':>9} {'end s':>8}")
    for name, got in times.items():
        first = statistics.median(t[0] for t in got)
        print(f"{name:44} {first:>9.3f} {min(t[0] for t in got):>8.3f} {first - floor:>+9.3f} "
              f"{statistics.median(t[1] for t in got):>8.3f}")
    for tag in retrs:
        for what in ("retr query one.jpg", "Collection.query"):
            free = statistics.median(t[0] for t in times[f"{what}, torch-free{tag}"])
            torch = statistics.median(t[0] for t in times[f"{what}, torch path{tag}"])
            print(f"   {what}{tag}: the torch path takes {torch / free:.1f}x the torch-free one to its first result")


if __name__ == "__main__":
    from _common import record_result
    with record_result(__file__):
        main()
