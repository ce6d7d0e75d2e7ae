"""Fault injection: random kill -9s during `retr index build`, `retr dedupe --move-to` and `--undo`, two
writers at once, garbled or truncated index files, and `retr serve` killed during quarantines and undos
over HTTP and fed hostile uploads under load; prints runs, failures, tracebacks and files lost (and for
the server: stale catalog rows, answers naming a moved file, peak RSS).

Every run uses the real CLI in its own process group (DataLoader workers die with it). After each kill
the script recovers the way a person would (run the same command again, or undo) and then checks:
- files lost: every photo's content is still on disk (in its folder or in the quarantine), none truncated;
- the index answers: `retr index info` counts every photo, a query's top hit is the photo itself and
  every score is a cosine (|score| <= 1);
- no output of any run (other than the killed one) holds a Python traceback.

The server scenarios start `retr serve` on 127.0.0.1 (a free port) over an index of the library, kill -9
its process group at a random moment of a quarantine (or an undo) sent over HTTP, start it again (which
settles what the kill cut short), and check: no catalog row whose file is gone (stale rows), every file
in the quarantine has the catalog's record of its move, no file lost, every image keeps its id through
the undo. Hostile uploads under load: clients search while others send 100-Mpx pictures of 12 KB (with
and without a box), a body far over the limit, NaN boxes, lone surrogates, a second image field and a
request whose headers never end; any 500, traceback or wrong top hit is a failure.

    .venv/bin/python benchmarks/fault_injection.py [--runs 8] [--seed 0] [--db postgresql+psycopg2://...]
        [--only serve]

Goal: 0 files lost, 0 tracebacks, 0 failures, 0 stale catalog rows.
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
    stale: int = 0  # catalog rows whose file is not on disk (server scenarios)
    notes: list[str] = field(default_factory=list)
    extra: str = ""  # a figure of the scenario's own (peak RSS, answers naming a moved file)

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


# -- `retr serve` -----------------------------------------------------------------------------------------

class Server:
    """`retr serve` in its own process group on a free loopback port; stderr kept for tracebacks."""

    def __init__(self, index: Path, quarantine: Path, *extra: str):
        import socket
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(RETR + ["serve", "--index", str(index), "--port", str(self.port),
                                             "--quarantine", str(quarantine), *extra],
                                     stdout=subprocess.DEVNULL, stderr=self.err, start_new_session=True)
        deadline = time.monotonic() + TIMEOUT
        while self.get("/readyz")[0] != 200:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"retr serve did not start: {self.stderr()[-300:]}")
            time.sleep(0.1)

    def request(self, method: str, route: str, body: bytes | None = None, headers: dict | None = None,
                timeout: float = 120) -> tuple[int, bytes]:
        import urllib.error
        import urllib.request
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{route}", data=body, method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as got:
                return got.status, got.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except OSError:
            return 0, b""

    def get(self, route: str, timeout: float = 5) -> tuple[int, bytes]:
        return self.request("GET", route, timeout=timeout)

    def post_json(self, route: str, body: dict) -> tuple[int, dict]:
        status, data = self.request("POST", route, json.dumps(body).encode(), {"Content-Type": "application/json"})
        try:
            return status, json.loads(data) if data else {}
        except ValueError:
            return status, {"detail": data[:200].decode("utf-8", "replace")}

    def rss_mb(self) -> float:
        try:
            with open(f"/proc/{self.proc.pid}/status") as fh:
                return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) / 1024
        except (OSError, StopIteration):
            return 0.0

    def stderr(self) -> str:
        self.err.seek(0)
        return self.err.read().decode("utf-8", "backslashreplace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def _catalog(index: Path) -> tuple[dict[str, int], dict[str, str]]:
    """(path -> id of every image row, quarantine dest -> source of every recorded move), read-only."""
    from index.catalog.database import Catalog
    from index.catalog.quarantine import records
    catalog = Catalog.for_index(index, mode="read")
    try:
        return ({r.path: r.id for r in catalog.image_rows().values()},
                {r.dest: r.path for r in records(catalog)})
    finally:
        catalog.close()


def _agreement(index: Path, quarantine: Path, ids: dict[str, int], tally: Tally) -> dict[str, str]:
    """Stale rows, quarantined files without their record, and ids that changed; the recorded moves."""
    rows, moves = _catalog(index)
    tally.stale += sum(not os.path.isfile(p) for p in rows)
    on_disk = {str(p) for p in quarantine.rglob("*") if p.is_file() and p.suffix != ".jsonl"} \
        if quarantine.exists() else set()
    if on_disk != set(moves):
        tally.fail(f"{len(on_disk ^ set(moves))} quarantined file(s) and catalog records disagree")
    changed = [p for p, i in rows.items() if ids.get(p) != i]
    if changed:
        tally.fail(f"{len(changed)} image(s) changed id, e.g. {changed[0]}")
    return moves


def _traceback(server: Server, tally: Tally) -> None:
    if "Traceback" in server.stderr():
        tally.tracebacks += 1
        tally.fail(f"traceback in retr serve: {server.stderr().strip().splitlines()[-1][:160]}")


def killed_server(work: Path, runs: int, rng: random.Random, *, kill_undo: bool) -> Tally:
    """kill -9 of `retr serve` at a random moment of a quarantine (or an undo) sent over HTTP."""
    import threading
    tally = Tally()
    library, index, quarantine = work / "lib", work / "ix", work / "q"
    make_library(library)
    run(["index", "build", str(library), "--index", str(index), "--quiet"], tally)
    before, ids = contents(library), _catalog(index)[0]
    server = Server(index, quarantine)
    try:
        groups = json.loads(server.get("/api/duplicates", TIMEOUT)[1] or b"{}").get("groups", [])
        keeps = [g["keep"] for g in groups]
        start = time.perf_counter()
        status, moved = server.post_json("/api/duplicates/quarantine", {"keep": keeps[0]})
        clean = time.perf_counter() - start
        start = time.perf_counter()
        server.post_json("/api/duplicates/undo", {"manifest": moved.get("manifest", "")})
        clean_undo = time.perf_counter() - start
        for r in range(runs):
            keep = keeps[r % len(keeps)]
            if kill_undo:
                status, moved = server.post_json("/api/duplicates/quarantine", {"keep": keep})
                if status != 200:
                    tally.fail(f"quarantine answered {status}: {moved.get('detail')}")
                    continue
                call = lambda: server.post_json("/api/duplicates/undo", {"manifest": moved["manifest"]})  # noqa
                after = rng.uniform(0.1, 1.0) * clean_undo
            else:
                call = lambda: server.post_json("/api/duplicates/quarantine", {"keep": keep})  # noqa
                after = rng.uniform(0.1, 1.0) * clean
            threading.Thread(target=call, daemon=True).start()
            time.sleep(after)
            _traceback(server, tally)
            server.kill()
            server = Server(index, quarantine)  # the restart settles what the kill cut short
            _agreement(index, quarantine, ids, tally)
            tally.lost += lost(before, contents(library, quarantine))
            listed = json.loads(server.get("/api/duplicates/quarantine", 60)[1] or b"{}").get("manifests", [])
            for m in listed:  # a client that never got its answer still finds the manifest, and undoes it
                status, body = server.post_json("/api/duplicates/undo", {"manifest": m["manifest"]})
                if status != 200:
                    tally.fail(f"undo of a listed manifest answered {status}: {body.get('detail')}")
            if _agreement(index, quarantine, ids, tally):
                tally.fail("files left in the quarantine after undoing every listed manifest")
            if contents(library) != before or _catalog(index)[0] != ids:
                tally.fail("after undo the library or the catalog differs from before")
            tally.runs += 1
        _traceback(server, tally)
    finally:
        server.kill()
    return tally


def _png_1bit(side: int = 10000) -> bytes:
    import io
    out = io.BytesIO()
    Image.new("1", (side, side)).save(out, "PNG")
    return out.getvalue()


def _multipart(files: list[tuple[str, bytes]]) -> tuple[bytes, dict]:
    parts = b"".join(b'--BB\r\nContent-Disposition: form-data; name="image"; filename="%s"\r\n'
                     b"Content-Type: application/octet-stream\r\n\r\n%s\r\n" % (n.encode(), d) for n, d in files)
    return parts + b"--BB--\r\n", {"Content-Type": "multipart/form-data; boundary=BB"}


def _oversized(port: int) -> int:
    """The status `retr serve` answers to a 1 GiB upload, read while the body is still being sent (as curl
    does); 0 when no answer came."""
    import select
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"POST /api/search HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=BB\r\n"
                     b"Content-Length: %d\r\n\r\n" % (1 << 30))
        block = b"\0" * (1 << 16)
        for _ in range((1 << 30) // len(block)):  # bounded
            if select.select([sock], [], [], 0)[0]:
                break
            try:
                sock.sendall(block)
            except OSError:
                break
        try:
            head = sock.recv(64)
        except OSError:
            return 0
    return int(head.split()[1]) if head.startswith(b"HTTP/1.1 ") else 0


def hostile_uploads(work: Path, runs: int, rng: random.Random) -> Tally:
    """Searches under load while hostile uploads arrive; every answer must be a JSON 2xx/4xx, never a 500."""
    import socket
    from concurrent.futures import ThreadPoolExecutor
    tally = Tally()
    index = work / "ix"
    run(["index", "build", str(PHOTOS), "--index", str(index), "--quiet"], tally)
    server = Server(index, work / "q", "--decode-memory-mb", "400", "--max-upload-mb", "20")
    bomb, photos = _png_1bit(), sorted(PHOTOS.glob("*.jpg"))
    base, peak, statuses = server.rss_mb(), [0.0], collections.Counter()
    wrong = [0]

    def normal(i: int) -> None:
        photo = photos[i % len(photos)]
        body, headers = _multipart([(photo.name, photo.read_bytes())])
        status, data = server.request("POST", "/api/search?k=3", body, headers)
        statuses[status] += 1
        if status == 200 and Path(json.loads(data)["results"][0]["path"]).name != photo.name:
            wrong[0] += 1

    def hostile(i: int) -> None:
        kind = i % 7
        if kind == 0:
            body, headers = _multipart([("b.png", bomb)])
            status, _ = server.request("POST", "/api/search", body, headers)
        elif kind == 1:
            body, headers = _multipart([("b.png", bomb)])
            status, _ = server.request("POST", "/api/search?box=0,0,5000,5000", body, headers)
        elif kind == 2:  # 1 GiB declared, over a 20 MB limit: the answer comes before the body is sent
            status = _oversized(server.port)
        elif kind == 3:
            status, _ = server.request("GET", "/api/search?id=1&box=nan,0,10,10")
        elif kind == 4:
            status, _ = server.request("POST", "/api/duplicates/quarantine", b'{"keep": "\\ud800"}',
                                       {"Content-Type": "application/json"})
        elif kind == 5:
            photo = photos[0].read_bytes()
            body, headers = _multipart([("a.jpg", photo), ("b.jpg", photo)])
            status, _ = server.request("POST", "/api/search", body, headers)
        else:  # headers that never end: the server closes the connection
            with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                status = 408 if sock.recv(100) == b"" else 200
        statuses[status] += 1

    def sample(stop) -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], server.rss_mb())
            time.sleep(0.01)
    import threading
    stop = threading.Event()
    sampler = threading.Thread(target=sample, args=(stop,), daemon=True)
    sampler.start()
    try:
        with ThreadPoolExecutor(12) as pool:
            for r in range(runs):
                jobs = [pool.submit(normal, r * 24 + i) for i in range(24)]
                jobs += [pool.submit(hostile, r * 7 + i) for i in range(7)]
                for job in jobs:
                    job.result()
                tally.runs += 1
    finally:
        stop.set()
        sampler.join()
        after = server.rss_mb()
        _traceback(server, tally)
        server.kill()
    if statuses[500] or statuses[0]:
        tally.fail(f"{statuses[500]} answers were 500, {statuses[0]} got no answer")
    if wrong[0]:
        tally.fail(f"{wrong[0]} searches under load had a wrong top hit")
    tally.extra = (f"RSS {base:.0f} MB before, {peak[0]:.0f} MB at peak, {after:.0f} MB after; answers "
                   + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())))
    return tally


def searches_during_quarantines(work: Path, runs: int) -> Tally:
    """Searches while quarantines and undos cycle: an answer naming a file that had left before the request
    was even sent is a failure (the file's ctime in the quarantine is the moment it moved)."""
    import threading
    tally = Tally()
    library, index, quarantine = work / "lib", work / "ix", work / "q"
    make_library(library)
    run(["index", "build", str(library), "--index", str(index), "--quiet"], tally)
    ids = _catalog(index)[0]
    server = Server(index, quarantine)
    stop, answers, stale, during = threading.Event(), [0], [0], [0]

    def searcher(seed: int) -> None:
        local = random.Random(seed)
        id_list = sorted(ids.values())
        for _ in range(100000):  # bounded
            if stop.is_set():
                return
            sent = time.time()
            status, data = server.request("GET", f"/api/search?id={local.choice(id_list)}&k=20", timeout=30)
            if status != 200:
                continue
            answers[0] += 1
            for hit in json.loads(data)["results"]:
                if not os.path.exists(hit["path"]):
                    moved = next((p for p in quarantine.rglob(Path(hit["path"]).name)
                                  if os.path.relpath(hit["path"], library) == os.path.relpath(p, quarantine)), None)
                    if moved is not None and os.stat(moved).st_ctime < sent - 0.01:
                        stale[0] += 1
                    else:
                        during[0] += 1
    try:
        keeps = [g["keep"] for g in json.loads(server.get("/api/duplicates", TIMEOUT)[1])["groups"]]
        threads = [threading.Thread(target=searcher, args=(i,), daemon=True) for i in range(6)]
        for t in threads:
            t.start()
        for r in range(runs):
            status, moved = server.post_json("/api/duplicates/quarantine", {"keep": keeps[r % len(keeps)]})
            if status != 200:
                tally.fail(f"quarantine answered {status}")
                continue
            time.sleep(0.05)
            if server.post_json("/api/duplicates/undo", {"manifest": moved["manifest"]})[0] != 200:
                tally.fail("undo failed")
            tally.runs += 1
        stop.set()
        for t in threads:
            t.join(60)
        _agreement(index, quarantine, ids, tally)
        _traceback(server, tally)
    finally:
        server.kill()
    if stale[0]:
        tally.fail(f"{stale[0]} answers named a file that had moved before the request was sent")
    tally.extra = (f"{answers[0]} searches during {tally.runs} quarantine/undo cycles: {stale[0]} named a file "
                   f"moved before the request was sent, {during[0]} one moved while it ran")
    return tally


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=8, help="runs per scenario")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--db", help="also run the build scenarios on this PostgreSQL catalog URL")
    ap.add_argument("--only", choices=["serve"], help="run only the server scenarios")
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
        serve = [
            ("kill -9 during serve quarantine", lambda: killed_server(work / "sq", args.runs, rng, kill_undo=False)),
            ("kill -9 during serve undo", lambda: killed_server(work / "su", args.runs, rng, kill_undo=True)),
            ("hostile uploads under load", lambda: hostile_uploads(work / "h", args.runs, rng)),
            ("searches during quarantine/undo", lambda: searches_during_quarantines(work / "sd", args.runs * 4)),
        ]
        scenarios = serve if args.only == "serve" else scenarios + serve
        if args.db and args.only != "serve":
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
                  f"{tally.lost} files lost, {tally.stale} stale rows ({time.perf_counter() - start:.0f} s)",
                  flush=True)
    print()
    print(f"{'scenario':40s} {'runs':>5s} {'failures':>9s} {'tracebacks':>11s} {'files lost':>11s} {'stale rows':>11s}")
    for name, t, _ in rows:
        print(f"{name:40s} {t.runs:5d} {t.failures:9d} {t.tracebacks:11d} {t.lost:11d} {t.stale:11d}")
    total = Tally(sum(t.runs for _, t, _ in rows), sum(t.failures for _, t, _ in rows),
                  sum(t.tracebacks for _, t, _ in rows), sum(t.lost for _, t, _ in rows),
                  sum(t.stale for _, t, _ in rows))
    print(f"{'total':40s} {total.runs:5d} {total.failures:9d} {total.tracebacks:11d} {total.lost:11d} {total.stale:11d}")
    for name, t, _ in rows:
        if t.extra:
            print(f"  {name}: {t.extra}")
        for note in t.notes:
            print(f"  {name}: {note}")


if __name__ == "__main__":
    main()
