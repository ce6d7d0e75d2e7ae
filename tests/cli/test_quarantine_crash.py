"""Quarantine is crash-safe both ways: after a kill -9 at any point of a move or an undo (a child that
kills itself around its Nth file move; a real `retr serve` killed at a random moment), the next writer
completes or rolls back what was cut short, and the catalog, the faiss file and the disk agree: every
catalog row's file is in place, every quarantined file has its record, nothing is lost, ids are kept."""
from __future__ import annotations

import json
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.cli.quarantine_crash import state
from tests.cli.serve_fixtures import build_photo_index
from tests.conftest import PHOTOS

ROOT = Path(__file__).parents[2]
COPIES = 6


@pytest.fixture
def library(tmp_path):
    """An index of three photos, one of them with COPIES exact copies (one group, COPIES duplicates)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("coffee", "brick", "chelsea"):
        shutil.copy(PHOTOS / f"{name}.jpg", folder / f"{name}.jpg")
    for i in range(COPIES):
        shutil.copy(folder / "chelsea.jpg", folder / f"chelsea copy {i}.jpg")
    build_photo_index(folder, tmp_path / "ix", names=[])
    return tmp_path, tmp_path / "ix", tmp_path / "q"


def _agrees(root: Path, index: Path, q: Path, ids_before: dict[str, int], *, settle: bool = True) -> dict:
    got = state(index, [root / "photos", q], settle=settle)
    assert got["consistent"], got  # the faiss file holds exactly the catalog's vectors
    for path in got["rows"]:
        assert Path(path).is_file(), f"stale catalog row: {path}"
    moved = {dest for dest in got["quarantined"]}
    for dest, (src, image_id, record_state) in got["quarantined"].items():
        assert record_state == "moved" and Path(dest).is_file() and not Path(src).exists(), got
        assert ids_before[src] == image_id
    in_quarantine = {f for f in got["files"] if f.startswith(str(q))}
    assert in_quarantine == moved, "a quarantined file without its record, or the reverse"
    originals = set(ids_before)
    present = {f for f in got["files"] if not f.startswith(str(q))} | {got["quarantined"][d][0] for d in moved}
    assert present == originals, "a file was lost or appeared"
    for path, image_id in got["rows"].items():
        assert ids_before[path] == image_id  # every image keeps its id, through a move and its undo
    return got


def _child(*args: str) -> int:
    proc = subprocess.run([sys.executable, "-m", "tests.cli.quarantine_crash", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    return proc.returncode


def _ids(index: Path) -> dict[str, int]:
    from index.catalog.database import Catalog
    catalog = Catalog.for_index(index, mode="read")
    try:
        return {r.path: r.id for r in catalog.image_rows().values()}
    finally:
        catalog.close()


@pytest.mark.parametrize("n, when", [(1, "before"), (1, "after"), (4, "before"), (COPIES, "after")])
def test_a_move_killed_anywhere_then_its_undo_killed_anywhere(library, n, when):
    root, index, q = library
    ids = _ids(index)
    assert _child("move", str(index), str(q), str(n), when) == -signal.SIGKILL
    got = _agrees(root, index, q, ids)
    expected = n if when == "after" else n - 1
    assert len(got["quarantined"]) == expected  # the files that moved stay moved; the rest are back in place
    if not got["quarantined"]:
        return
    (manifest,) = q.glob("*.jsonl")
    k = max(1, expected // 2)
    assert _child("undo", str(index), str(manifest), str(k), when) == -signal.SIGKILL
    got = _agrees(root, index, q, ids)
    assert len(got["quarantined"]) == expected - (k if when == "after" else k - 1)
    if got["quarantined"]:
        assert _child("undo", str(index), str(manifest), "0", "never") == 0  # the rest goes back
        got = _agrees(root, index, q, ids)
    assert got["quarantined"] == {} and got["rows"] == ids


def test_a_forged_manifest_and_a_symlinked_one_move_nothing(library):
    from fastapi.testclient import TestClient

    from cli.server.app import ServeOptions, create_app
    from retrieval.collection.api import Collection
    root, index, q = library
    (root / "outside").mkdir()
    (root / "outside" / "secret.html").write_text("<script>")
    q.mkdir()
    forged = q / "forged.jsonl"
    forged.write_text(json.dumps({"format": "retr-dedupe-manifest", "version": 1, "action": "move",
                                  "dest": str(root / "outside"), "root": str(root / "photos"), "created": 0,
                                  "index": str(index)}) + "\n" + json.dumps(
        {"op": "plan", "src": str(root / "photos" / "secret.html"), "dst": str(root / "outside" / "secret.html"),
         "keep": "x", "sha256": "0" * 64, "row": None}) + "\n")
    (q / "linked.jsonl").symlink_to(root / "outside" / "secret.html")
    app = create_app(lambda: Collection(index), ServeOptions(quarantine_dir=str(q), refresh_every=0))
    with TestClient(app) as c:
        while c.get("/readyz").status_code != 200:
            time.sleep(0.05)
        images = c.get("/api/info").json()["images"]
        got = c.post("/api/duplicates/undo", json={"manifest": str(forged)})
        assert got.status_code == 404 and "by this index's catalog" in got.json()["detail"], got.text
        got = c.post("/api/duplicates/undo", json={"manifest": str(q / "linked.jsonl")})
        assert got.status_code == 400 and "not a quarantine manifest" in got.json()["detail"]
        assert c.get("/api/info").json()["images"] == images
        assert c.get("/api/duplicates/quarantine").json() == {"manifests": []}
    assert (root / "outside" / "secret.html").read_text() == "<script>"
    assert not (root / "photos" / "secret.html").exists()


def test_an_undone_image_keeps_its_id_and_the_manifests_are_listed(library):
    from fastapi.testclient import TestClient

    from cli.server.app import ServeOptions, create_app
    from retrieval.collection.api import Collection
    root, index, q = library
    ids = _ids(index)
    app = create_app(lambda: Collection(index), ServeOptions(quarantine_dir=str(q), refresh_every=0))
    with TestClient(app) as c:
        while c.get("/readyz").status_code != 200:
            time.sleep(0.05)
        keep = c.get("/api/duplicates").json()["groups"][0]["keep"]
        moved = c.post("/api/duplicates/quarantine", json={"keep": keep}).json()
        assert len(moved["done"]) == COPIES
        gone = [d["path"] for d in moved["done"]]
        listed = c.get("/api/duplicates/quarantine").json()["manifests"]
        assert [(m["manifest"], m["files"]) for m in listed] == [(moved["manifest"], COPIES)]
        for path in gone:  # no search, no file route names a moved file
            assert c.get(f"/api/images/{ids[path]}").status_code == 404
        hits = c.get("/api/search", params={"id": ids[keep], "k": 20}).json()["results"]
        assert not set(gone) & {h["path"] for h in hits}
        back = c.post("/api/duplicates/undo", json={"manifest": moved["manifest"]}).json()
        assert len(back["done"]) == COPIES
        assert c.get("/api/duplicates/quarantine").json() == {"manifests": []}
        for path in gone:
            assert c.get(f"/api/images/{ids[path]}").status_code == 200  # permalinks still work
        again = c.post("/api/duplicates/undo", json={"manifest": moved["manifest"]})
        assert again.status_code == 404
    assert _ids(index) == ids
    _agrees(root, index, q, ids)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(index: Path, q: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--index", str(index), "--port", str(port),
                             "--quarantine", str(q)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()[-2000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as got:
                if got.status == 200:
                    return proc
        except OSError:
            time.sleep(0.1)


def _post(port: int, route: str, body: dict) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{route}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as got:
            return json.loads(got.read())
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{route}: {exc.code} {exc.read()[:300]!r}") from None


def test_a_real_server_killed_at_a_random_moment_of_a_quarantine(library):
    import threading
    root, index, q = library
    ids = _ids(index)
    keep = str(root / "photos" / "chelsea.jpg")
    rng = random.Random(7)
    port = _free_port()
    for low, high in ((0.1, 0.6), (0.6, 1.1)):  # early in the moves, and late (the faiss rewrite)
        server = _serve(index, q, port)
        try:
            _post(port, "/api/duplicates/undo", {"manifest": _post(port, "/api/duplicates/quarantine",
                                                                   {"keep": keep})["manifest"]})
            took = time.monotonic()  # a second quarantine: its hashes are stored, as the killed one's are
            manifest = _post(port, "/api/duplicates/quarantine", {"keep": keep})["manifest"]
            took = time.monotonic() - took
            _post(port, "/api/duplicates/undo", {"manifest": manifest})
            request = urllib.request.Request(f"http://127.0.0.1:{port}/api/duplicates/quarantine",
                                             data=json.dumps({"keep": keep}).encode(),
                                             headers={"Content-Type": "application/json"}, method="POST")
            threading.Thread(target=lambda: _swallow(request), daemon=True).start()
            time.sleep(rng.uniform(low, high) * took)
        finally:
            server.send_signal(signal.SIGKILL)
            server.wait(30)
        server = _serve(index, q, port)  # the restart settles what the kill cut short
        try:
            got = _agrees(root, index, q, ids, settle=False)  # as the restarted server left it
            kept = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/search?id={ids[keep]}&k=20").read())
            assert all(Path(h["path"]).is_file() for h in kept["results"]), kept  # none names a moved file
            listed = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/duplicates/quarantine").read())
            assert len(listed["manifests"]) == (1 if got["quarantined"] else 0)
            for m in listed["manifests"]:  # a client that never got its answer can still undo
                _post(port, "/api/duplicates/undo", {"manifest": m["manifest"]})
        finally:
            server.send_signal(signal.SIGKILL)
            server.wait(30)
        got = _agrees(root, index, q, ids)
        assert got["quarantined"] == {} and got["rows"] == ids


def _swallow(request) -> None:
    try:
        urllib.request.urlopen(request, timeout=60).read()
    except OSError:
        pass


def test_quarantine_and_undo_on_a_postgresql_catalog(pg_catalog_url, tmp_path):
    from fastapi.testclient import TestClient

    from cli.server.app import ServeOptions, create_app
    from retrieval.collection.api import Collection
    from retrieval.collection.build import BuildOptions, build_index
    from retrieval.runtimes.settings import InferenceSettings
    from tests.conftest import TINY_MODEL
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("coffee", "chelsea"):
        shutil.copy(PHOTOS / f"{name}.jpg", folder / f"{name}.jpg")
    for i in range(3):
        shutil.copy(folder / "chelsea.jpg", folder / f"chelsea copy {i}.jpg")
    index, q = tmp_path / "ix", tmp_path / "q"
    build_index([folder], index, BuildOptions(model=TINY_MODEL, random_weights=True, db_url=pg_catalog_url,
                                              inference=InferenceSettings(batch_size=4, workers=0)))
    app = create_app(lambda: Collection(index, db_url=pg_catalog_url), ServeOptions(quarantine_dir=str(q),
                                                                                    refresh_every=0))
    with TestClient(app) as c:
        while c.get("/readyz").status_code != 200:
            time.sleep(0.05)
        before = {h["path"]: h["id"] for h in c.get("/api/search", params={"id": 1, "k": 10}).json()["results"]}
        keep = c.get("/api/duplicates").json()["groups"][0]["keep"]
        moved = c.post("/api/duplicates/quarantine", json={"keep": keep}).json()
        assert len(moved["done"]) == 3 and c.get("/api/info").json()["images"] == 2
        assert [m["files"] for m in c.get("/api/duplicates/quarantine").json()["manifests"]] == [3]
        back = c.post("/api/duplicates/undo", json={"manifest": moved["manifest"]}).json()
        assert len(back["done"]) == 3 and c.get("/api/info").json()["images"] == 5
        after = {h["path"]: h["id"] for h in c.get("/api/search", params={"id": 1, "k": 10}).json()["results"]}
    assert after == before  # every image back under its own id


def test_two_quarantines_in_one_second_get_two_manifests(tmp_path):
    from retrieval.dedupe.manifest import default_manifest
    names = {default_manifest(tmp_path).name for _ in range(100)}
    assert len(names) == 100  # one process, one second: still a new name each time
