"""Fault injection: random kill -9s during `retr index build`, `retr dedupe --move-to` and `--undo`, two
writers at once, and garbled or truncated index files; prints runs, failures, tracebacks and files lost.

Every run uses the real CLI in its own process group (DataLoader workers die with it). After each kill
the script recovers the way a person would (run the same command again, or undo) and then checks:
- files lost: every photo's content is still on disk (in its folder or in the quarantine), none truncated;
- the index answers: `retr index info` counts every photo, a query's top hit is the photo itself and
  every score is a cosine (|score| <= 1);
- no output of any run (other than the killed one) holds a Python traceback.

    .venv/bin/python benchmarks/fault_injection.py [--runs 8] [--seed 0] [--db postgresql+psycopg2://...]

Goal (issue 11): 0 files lost, 0 tracebacks, 0 failures.
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "tests" / "data" / "photos"
RETR = [str(Path(sys.executable).with_name("retr"))]
TIMEOUT = 600  # seconds a recovery command may take before it counts as a hang


@dataclass
class Tally:
    runs: int = 0
    failures: int = 0
    tracebacks: int = 0
    lost: int = 0
    notes: list[str] = field(default_factory=list)

    def fail(self, why: str) -> None:
        self.failures += 1
        if len(self.notes) < 5:
            self.notes.append(why)


def run(args: list[str], tally: Tally, *, check: bool = True) -> subprocess.CompletedProcess:
    """Run a retr command to completion; a traceback or (with ``check``) a non-zero exit is a failure."""
    try:
        proc = subprocess.run(RETR + args, capture_output=True, text=True, timeout=TIMEOUT,
                              errors="backslashreplace", env={**os.environ, "RETR_INDEX": ""})
    except subprocess.TimeoutExpired:
        tally.fail(f"hang: retr {' '.join(args)}")
        return subprocess.CompletedProcess(args, 124, "", "")
    if "Traceback" in proc.stdout + proc.stderr:
        tally.tracebacks += 1
        tally.fail(f"traceback: retr {' '.join(args)}: {proc.stderr.strip().splitlines()[-1][:160]}")
    elif check and proc.returncode != 0:
        tally.fail(f"exit {proc.returncode}: retr {' '.join(args)}: {proc.stderr.strip()[:160]}")
    return proc


def run_killed(args: list[str], after: float) -> None:
    """Start a retr command and kill -9 its whole process group ``after`` seconds later."""
    proc = subprocess.Popen(RETR + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        proc.wait(timeout=after)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def timed(args: list[str], tally: Tally) -> float:
    start = time.perf_counter()
    run(args, tally)
    return time.perf_counter() - start


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def contents(*folders: Path) -> collections.Counter:
    """The multiset of file contents (sha256) under ``folders``, dedupe manifests left out."""
    out: collections.Counter = collections.Counter()
    for folder in folders:
        if folder.exists():
            for p in folder.rglob("*"):
                if p.is_file() and not p.is_symlink() and p.suffix != ".jsonl":
                    out[digest(p)] += 1
    return out


def lost(before: collections.Counter, after: collections.Counter) -> int:
    return sum((before - after).values())


def make_library(folder: Path) -> int:
    """The sample photos, two exact copies of each in sub-folders and a resized re-save: 4 files a photo."""
    photos = sorted(PHOTOS.glob("*.jpg"))
    for p in photos:
        for sub in ("orig", "copy1", "copy2"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, folder / sub / p.name)
        (folder / "small").mkdir(exist_ok=True)
        img = Image.open(p)
        img.resize((img.width * 3 // 4, img.height * 3 // 4)).save(folder / "small" / p.name, quality=80)
    return len(photos)


def check_index(index: Path, photos: int, tally: Tally, db: list[str]) -> None:
    """The index counts every photo and a photo's top hit is itself, with cosine scores."""
    proc = run(["index", "info", "--index", str(index), "--json", *db], tally)
    if proc.returncode == 0:
        info = json.loads(proc.stdout)
        if info["images"] != photos or info["vectors"] != photos:
            tally.fail(f"index holds {info['images']} images / {info['vectors']} vectors, expected {photos}")
    query = sorted(PHOTOS.glob("*.jpg"))[0]
    proc = run(["query", str(query), "--index", str(index), "-k", "3", "--json", *db], tally)
    if proc.returncode == 0:
        hits = json.loads(proc.stdout)[0]["results"]
        if not hits or Path(hits[0]["path"]).name != query.name or any(abs(h["score"]) > 1.001 for h in hits):
            tally.fail(f"query answered {[(Path(h['path']).name, h['score']) for h in hits]}")


def killed_builds(work: Path, runs: int, rng: random.Random) -> Tally:
    tally = Tally()
    db: list[str] = []
    photos = len(list(PHOTOS.glob("*.jpg")))
    clean = timed(["index", "build", str(PHOTOS), "--index", str(work / "ref"), "--quiet", *db], tally)
    before = contents(PHOTOS)
    for r in range(runs):
        index = work / f"build{r}"
        run_killed(["index", "build", str(PHOTOS), "--index", str(index), "--quiet", *db],
                   rng.uniform(0.2, 1.0) * clean)
        run(["index", "build", str(PHOTOS), "--index", str(index), "--quiet", *db], tally)
        check_index(index, photos, tally, db)
        tally.runs += 1
    tally.lost += lost(before, contents(PHOTOS))
    return tally


def killed_moves(work: Path, runs: int, rng: random.Random, *, kill_undo: bool) -> Tally:
    tally = Tally()
    work.mkdir(parents=True, exist_ok=True)
    library, quarantine = work / "lib-timing", work / "q-timing"
    make_library(library)
    clean = timed(["dedupe", str(library), "--move-to", str(quarantine), "--quiet"], tally)
    manifests = list(quarantine.glob("*.jsonl"))
    clean_undo = timed(["dedupe", "--undo", str(manifests[0])], tally) if manifests else clean
    for r in range(runs):
        library, quarantine = work / f"lib{r}", work / f"q{r}"
        make_library(library)
        before = contents(library)
        if kill_undo:
            proc = run(["dedupe", str(library), "--move-to", str(quarantine), "--quiet"], tally)
            manifests = sorted(quarantine.glob("*.jsonl"))
            if not manifests:
                tally.fail(f"the move wrote no manifest (exit {proc.returncode}): {proc.stderr.strip()[-200:]}")
                continue
            run_killed(["dedupe", "--undo", str(manifests[0])], rng.uniform(0.2, 1.0) * clean_undo)
        else:
            run_killed(["dedupe", str(library), "--move-to", str(quarantine), "--quiet"],
                       rng.uniform(0.2, 1.0) * clean)
        tally.lost += lost(before, contents(library, quarantine))
        extra = contents(library, quarantine) - before
        if extra:
            tally.fail(f"{sum(extra.values())} file(s) with content that was never in the library (truncated?)")
        for manifest in sorted(quarantine.glob("*.jsonl")):  # recover: undo whatever was moved
            run(["dedupe", "--undo", str(manifest)], tally)
        after = contents(library)
        tally.lost += lost(before, after)
        if after != before:
            tally.fail("after undo the library differs from before the move")
        tally.runs += 1
        shutil.rmtree(library)
        shutil.rmtree(quarantine, ignore_errors=True)
    return tally


def concurrent_writers(work: Path, runs: int, db: list[str]) -> Tally:
    tally = Tally()
    photos = len(list(PHOTOS.glob("*.jpg")))
    for r in range(runs):
        index = work / f"conc{r}"
        procs = [subprocess.Popen(RETR + ["index", "build", str(PHOTOS), "--index", str(index), "--quiet", *db],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  errors="backslashreplace") for _ in range(2)]
        outs = [p.communicate(timeout=TIMEOUT) for p in procs]
        for p, (out, err) in zip(procs, outs):
            if "Traceback" in out + err:
                tally.tracebacks += 1
                tally.fail(f"traceback in a concurrent build: {err.strip().splitlines()[-1][:160]}")
            elif p.returncode not in (0, 1) or (p.returncode == 1 and len(err.strip().splitlines()) != 1):
                tally.fail(f"concurrent build exit {p.returncode}: {err.strip()[:160]}")
        if all(p.returncode != 0 for p in procs):
            tally.fail("both concurrent builds failed")
        check_index(index, photos, tally, db)
        tally.runs += 1
    return tally


def garble(path: Path, rng: random.Random) -> str:
    data = bytearray(path.read_bytes())
    if rng.random() < 0.3:
        cut = rng.randrange(len(data))
        path.write_bytes(bytes(data[:cut]))
        return f"truncated {path.name} to {cut} of {len(data)} bytes"
    for _ in range(3):
        start = rng.randrange(max(1, len(data) - 256))
        data[start:start + 256] = rng.randbytes(min(256, len(data) - start))
    path.write_bytes(bytes(data))
    return f"garbled 3 x 256 bytes of {path.name}"


def garbled_files(work: Path, runs: int, rng: random.Random) -> Tally:
    """A damaged faiss file is rebuilt from the catalog; a damaged manifest or catalog is a one-line error."""
    tally = Tally()
    photos = len(list(PHOTOS.glob("*.jpg")))
    ref = work / "garble-ref"
    run(["index", "build", str(PHOTOS), "--index", str(ref), "--quiet"], tally)
    for r in range(runs):
        index = work / f"garble{r}"
        shutil.copytree(ref, index)
        target = rng.choice(["vectors.faiss", "vectors.faiss", "manifest.json", "catalog.sqlite"])
        what = garble(index / target, rng)
        if target == "vectors.faiss":  # the catalog is intact: the answer must be right
            check_index(index, photos, tally, [])
        else:  # answering right or refusing in one line are both fine; a traceback or nonsense is not
            for args in (["index", "info", "--index", str(index), "--json"],
                         ["query", str(sorted(PHOTOS.glob('*.jpg'))[0]), "--index", str(index), "--json"]):
                proc = run(args, tally, check=False)
                if proc.returncode == 1 and len(proc.stderr.strip().splitlines()) != 1:
                    tally.fail(f"{what}: a multi-line error: {proc.stderr.strip()[:160]}")
                elif proc.returncode not in (0, 1):
                    tally.fail(f"{what}: exit {proc.returncode}")
                elif proc.returncode == 0 and args[0] == "query":
                    hits = json.loads(proc.stdout)[0]["results"]
                    if any(abs(h["score"]) > 1.001 for h in hits):
                        tally.fail(f"{what}: served scores {[h['score'] for h in hits]}")
        tally.runs += 1
    return tally


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=8, help="runs per scenario")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--db", help="also run the build scenarios on this PostgreSQL catalog URL")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    rows = []
    with tempfile.TemporaryDirectory(prefix="retr-faults-") as tmp:
        work = Path(tmp)
        scenarios = [
            ("kill -9 during index build", lambda: killed_builds(work / "b", args.runs, rng)),
            ("kill -9 during dedupe --move-to", lambda: killed_moves(work / "m", args.runs, rng, kill_undo=False)),
            ("kill -9 during dedupe --undo", lambda: killed_moves(work / "u", args.runs, rng, kill_undo=True)),
            ("two writers at once (SQLite)", lambda: concurrent_writers(work / "c", max(2, args.runs // 2), [])),
            ("garbled / truncated index files", lambda: garbled_files(work / "g", args.runs * 2, rng)),
        ]
        if args.db:
            from sqlalchemy import create_engine, text
            def reset_db() -> None:
                engine = create_engine(args.db)
                with engine.begin() as conn:
                    conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
                engine.dispose()
            def pg_writers() -> Tally:
                reset_db()
                return concurrent_writers(work / "pc", max(2, args.runs // 2), ["--db", args.db])
            scenarios.append(("two writers at once (PostgreSQL)", pg_writers))
        for name, fn in scenarios:
            start = time.perf_counter()
            tally = fn()
            rows.append((name, tally, time.perf_counter() - start))
            print(f"  {name}: {tally.runs} runs, {tally.failures} failures, {tally.tracebacks} tracebacks, "
                  f"{tally.lost} files lost ({time.perf_counter() - start:.0f} s)", flush=True)
    print()
    print(f"{'scenario':40s} {'runs':>5s} {'failures':>9s} {'tracebacks':>11s} {'files lost':>11s}")
    for name, t, _ in rows:
        print(f"{name:40s} {t.runs:5d} {t.failures:9d} {t.tracebacks:11d} {t.lost:11d}")
    total = Tally(sum(t.runs for _, t, _ in rows), sum(t.failures for _, t, _ in rows),
                  sum(t.tracebacks for _, t, _ in rows), sum(t.lost for _, t, _ in rows))
    print(f"{'total':40s} {total.runs:5d} {total.failures:9d} {total.tracebacks:11d} {total.lost:11d}")
    for name, t, _ in rows:
        for note in t.notes:
            print(f"  {name}: {note}")


if __name__ == "__main__":
    from _common import record_result
    with record_result(__file__):
        main()
