import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from index.ann.factory import build
from index.ann.searcher import ids_of, load, save
from index.atomic import file_sha256
from index.errors import RetrError
from index.directory import VECTORS_FILE, IndexStore
from retrieval.collection.build import BuildOptions, build_index
from retrieval.runtimes.settings import InferenceSettings
from retrieval.collection.info import index_info
from retrieval.collection.query import query_index
from tests.conftest import ODD, TINY_MODEL


ROOT = Path(__file__).resolve().parents[3]


def _garble(path: Path) -> bytes:
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(1)
    for start in (len(data) // 4, len(data) // 2, 3 * len(data) // 4):
        data[start:start + 256] = rng.integers(0, 256, 256, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return bytes(data)


def _read_only(folder: Path, request) -> None:
    """Make ``folder`` read-only: a read-only bind mount as root (chmod does not stop root), else chmod."""
    if os.geteuid() != 0:
        for p in [folder, *folder.iterdir()]:
            p.chmod(0o555 if p.is_dir() else 0o444)
        request.addfinalizer(lambda: [p.chmod(0o755) for p in [folder, *folder.iterdir()]])
        return
    done = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True)
    if done.returncode == 0:
        request.addfinalizer(lambda: subprocess.run(["umount", str(folder)]))
        done = subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], capture_output=True)
    if done.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"CI must allow a read-only bind mount: {done.stderr.decode().strip()}")
        pytest.skip(f"cannot make a read-only bind mount here: {done.stderr.decode().strip()}")


def _tmpfs(folder: Path, size: str, request) -> None:
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True)
    if done.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"CI runs as root and must mount a tmpfs: {done.stderr.decode().strip()}")
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.decode().strip()}")
    request.addfinalizer(lambda: subprocess.run(["umount", "-l", str(folder)]))


def test_build_indexes_good_files_and_records_bad_ones(tmp_path, photos, tiny_opts):
    shutil.copytree(ODD, photos / "odd")
    report = build_index([photos], tmp_path / "ix", tiny_opts)
    good = 12 + 9  # photos + odd files that decode
    assert report.added == good and report.total == good
    reasons = {Path(p).name: e for p, e in report.skipped}
    assert set(reasons) == {"empty.jpg", "truncated.jpg", "corrupt.jpg", "notes.png", "bomb.png"}
    assert "decompression bomb" in reasons["bomb.png"] and "truncated" in reasons["truncated.jpg"]
    with IndexStore.open(tmp_path / "ix") as store:
        rows = store.catalog.image_rows()
        assert rows[str(photos / "odd" / "rotated.jpg")].width == 64  # EXIF-upright size
        assert rows[str(photos / "odd" / "empty.jpg")].status == "error"
        # faiss ids are exactly the catalog ids of embedded rows
        index = load(tmp_path / "ix" / VECTORS_FILE)
        assert set(ids_of(index)) == {r.id for r in rows.values() if r.status == "ok"}
    info = index_info(tmp_path / "ix")
    assert (info["images"], info["vectors"], info["errors"]) == (good, good, 5)


def test_rebuild_is_incremental_and_idempotent(tmp_path, photos, tiny_opts):
    build_index([photos], tmp_path / "ix", tiny_opts)
    seen = []
    again = build_index([photos], tmp_path / "ix", tiny_opts, on_batch=seen.append)
    assert (again.added, again.updated, again.removed, again.unchanged, seen) == (0, 0, 0, 12, [])
    # a changed file is re-embedded, a deleted one dropped, a new one added
    Image.open(photos / "coffee.jpg").rotate(180).save(photos / "coffee.jpg")
    os.utime(photos / "coffee.jpg", (1, 1))
    (photos / "rocket.jpg").unlink()
    Image.open(photos / "china.jpg").crop((0, 0, 200, 200)).save(photos / "new.png")
    report = build_index([photos], tmp_path / "ix", tiny_opts, on_batch=seen.append)
    assert (report.added, report.updated, report.removed, report.total, sum(seen)) == (1, 1, 1, 12, 2)
    with IndexStore.open(tmp_path / "ix") as store:
        assert str(photos / "rocket.jpg") not in store.catalog.image_rows()
        assert store.consistent()
        hit = store.search(store.vectors_for([store.catalog.image_rows()[str(photos / "new.png")].id]), 1)
        assert hit[0][0].path == str(photos / "new.png")


def test_interrupted_build_keeps_finished_batches_and_resumes(tmp_path, photos, tiny_opts):
    def stop_after_two(n, calls=[]):
        calls.append(n)
        if len(calls) == 2:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        build_index([photos], tmp_path / "ix", tiny_opts, on_batch=stop_after_two)
    with IndexStore.open(tmp_path / "ix") as store:
        assert store.catalog.counts()["images"] == 8  # two batches of 4 committed
        assert not store.consistent()  # the faiss file lags behind...
    seen = []
    report = build_index([photos], tmp_path / "ix", tiny_opts, on_batch=seen.append)
    assert sum(seen) == 4 and report.added == 4 and report.total == 12  # ...and the resume repairs it


def test_kill_9_mid_build_then_resume(tmp_path, photos):
    # the child process hangs after its second batch is committed (and says so); then it is killed with SIGKILL
    hanging = tmp_path / "hanging"
    script = (f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
              "import time\n"
              "from retrieval.collection.build import BuildOptions, build_index\n"
              "from retrieval.runtimes.settings import InferenceSettings\n"
              "calls = []\n"
              "def hang(n):\n"
              "    calls.append(n)\n"
              "    if len(calls) == 2:\n"
              f"        open({str(hanging)!r}, 'w').close()\n"
              "        time.sleep(600)\n"
              f"build_index([{str(photos)!r}], {str(tmp_path / 'ix')!r}, BuildOptions(model={TINY_MODEL!r}, "
              "random_weights=True, inference=InferenceSettings(batch_size=2, workers=0)), on_batch=hang)\n")
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 300
    try:
        while not hanging.exists():  # on_batch runs after its batch is committed: two batches are in the catalog
            assert proc.poll() is None, f"the build exited ({proc.returncode}) before its second batch"
            assert time.monotonic() < deadline, "the build did not finish two batches within 300 s"
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    with IndexStore.open(tmp_path / "ix") as store:
        assert store.catalog.counts()["images"] == 4  # two committed batches survive kill -9
        assert not store.consistent()
    seen = []
    report = build_index([photos], tmp_path / "ix", BuildOptions(model=TINY_MODEL, random_weights=True,
                                                                  inference=InferenceSettings(batch_size=8, workers=0)),
                         on_batch=seen.append)
    assert sum(seen) == 12 - 4 and report.added == 8 and report.total == 12


def test_index_types_and_postgres_catalog(tmp_path, photos, tiny_opts, request):
    import dataclasses
    for kind, factory in (("flat", "Flat"), ("hnsw", "HNSW32"), ("IVF2,Flat", "IVF2,Flat")):
        report = build_index([photos], tmp_path / "ix", dataclasses.replace(tiny_opts, index_type=kind))
        assert report.factory == factory
        hit = query_index(tmp_path / "ix", [photos / "brick.jpg"], k=1)[0].results[0]
        assert hit.path == str(photos / "brick.jpg")


def test_an_impossible_index_type_is_refused_before_anything_is_embedded(tmp_path, photos, tiny_opts):
    import dataclasses

    from index.catalog.database import Catalog
    build_index([photos], tmp_path / "ix", tiny_opts)
    before = index_info(tmp_path / "ix")
    for bad, why in (("bogus", "could not parse index string bogus"), ("IVF4,PQ7", "multiple of")):
        with pytest.raises(RetrError, match=f"invalid --index-type '{bad}'.*{why}"):
            build_index([photos], tmp_path / "ix", dataclasses.replace(tiny_opts, index_type=bad))
    assert index_info(tmp_path / "ix") == before  # the stored index type, vectors and files are untouched
    with pytest.raises(RetrError, match="invalid --index-type"):
        build_index([photos], tmp_path / "new", dataclasses.replace(tiny_opts, index_type="bogus"))
    assert Catalog.for_index(tmp_path / "new").image_rows() == {}  # nothing embedded


def test_catalog_on_postgresql(tmp_path, photos, tiny_opts, pg_catalog_url):
    import dataclasses
    opts = dataclasses.replace(tiny_opts, db_url=pg_catalog_url)
    assert build_index([photos], tmp_path / "ix", opts).total == 12
    assert not (tmp_path / "ix" / "catalog.sqlite").exists()
    assert build_index([photos], tmp_path / "ix", opts).unchanged == 12
    hit = query_index(tmp_path / "ix", [photos / "gravel.jpg"], k=1, db_url=pg_catalog_url)[0].results[0]
    assert hit.path == str(photos / "gravel.jpg")


def test_unreadable_file_is_recorded_and_kept_out(tmp_path, photos, tiny_opts, monkeypatch):
    real_open = os.open  # images are read with os.open (regular files only)
    locked = str(photos / "coins.jpg")

    def guarded(file, *args, **kwargs):
        if str(file) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return real_open(file, *args, **kwargs)
    monkeypatch.setattr(os, "open", guarded)
    report = build_index([photos], tmp_path / "ix", tiny_opts)
    assert report.total == 11 and report.skipped == [(locked, "unreadable: Permission denied")]


# -- issue 11: data safety -----------------------------------------------------------------------------


def test_an_old_catalog_without_the_model_column_gets_it_and_null_means_the_manifest_model(tmp_path, photos,
                                                                                            tiny_opts):
    import sqlite3
    ix = tmp_path / "ix"
    build_index([photos], ix, tiny_opts)
    db = sqlite3.connect(ix / "catalog.sqlite")
    db.execute("ALTER TABLE images DROP COLUMN model")  # as a catalog made before the column existed
    db.commit()
    db.close()
    assert query_index(ix, [photos / "coffee.jpg"], k=1)[0].results[0].path == str(photos / "coffee.jpg")
    report = build_index([photos], ix, tiny_opts)  # NULL: the manifest's model, which is this one
    assert (report.unchanged, report.updated) == (12, 0)
    columns = [r[1] for r in sqlite3.connect(ix / "catalog.sqlite").execute("PRAGMA table_info(images)")]
    assert "model" in columns


def test_a_garbled_or_truncated_faiss_file_is_never_served_and_a_build_rebuilds_it(tmp_path, photos, tiny_opts):
    ix = tmp_path / "ix"
    build_index([photos], ix, tiny_opts)
    path = ix / VECTORS_FILE
    garbled = _garble(path)
    hits = query_index(ix, [photos / "chelsea.jpg"], k=12)[0].results
    assert hits[0].path == str(photos / "chelsea.jpg") and max(h.score for h in hits) < 1.0001
    assert path.read_bytes() == garbled  # the query searched the catalog's vectors, wrote nothing
    report = build_index([photos], ix, tiny_opts)
    assert "does not match its checksum in the manifest (damaged or truncated): rebuilt it from the catalog's " \
           "12 vectors" in report.repaired[0]
    with IndexStore.open(ix) as store:
        assert store.consistent() and file_sha256(path) == store.manifest.checksum
    path.write_bytes(path.read_bytes()[:100])  # truncated
    report = build_index([photos], ix, tiny_opts)
    assert report.unchanged == 12 and "damaged or truncated" in report.repaired[0]
    assert load(path).ntotal == 12
    path.unlink()
    assert "is missing: rebuilt" in build_index([photos], ix, tiny_opts).repaired[0]


@pytest.mark.parametrize("content, why", [
    (b"[]", "it holds a JSON list, not an object"),
    (b'"vectors"', "it holds a JSON str, not an object"),
    (b"{not json", "it is not valid JSON"),
    (b"\xff\xfe", "it is not valid JSON"),
    (b'{"model": {"spec": "m"}, "dim": "4", "factory": "Flat", "index_type": "auto", "vectors": 1, '
     b'"ids_digest": "x"}', 'dim is "4", not int'),
    (b'{"model": ["m"], "dim": 4, "factory": "Flat", "index_type": "auto", "vectors": 1, "ids_digest": "x"}',
     'model is ["m"], not dict'),
    (b'{"model": {"spec": "m"}, "dim": 4}', "it lacks factory, index_type, vectors, ids_digest"),
])
def test_a_damaged_manifest_is_a_one_line_error_before_anything_is_embedded(tmp_path, photos, tiny_opts,
                                                                            content, why):
    ix = tmp_path / "ix"
    build_index([photos], ix, tiny_opts)
    (ix / "manifest.json").write_bytes(content)
    seen = []
    for call in (lambda: build_index([photos], ix, tiny_opts, on_batch=seen.append), lambda: index_info(ix),
                 lambda: query_index(ix, [photos / "coffee.jpg"])):
        with pytest.raises(RetrError) as exc:
            call()
        assert f"manifest.json is damaged: {why}" in str(exc.value) and "move it away" in str(exc.value)
        assert "\n" not in str(exc.value)
    assert seen == [] and (ix / "manifest.json").read_bytes() == content


def test_a_read_only_index_is_refused_before_embedding_starts(tmp_path, photos, tiny_opts, request, monkeypatch):
    ix = tmp_path / "ix"
    build_index([photos], ix, tiny_opts)
    Image.open(photos / "china.jpg").crop((0, 0, 100, 100)).save(photos / "new.png")  # something to embed
    _read_only(ix, request)
    import retrieval.models.identity as identity
    monkeypatch.setattr(identity.ModelRef, "load", lambda *a, **k: pytest.fail("the model was loaded"))
    monkeypatch.setattr("retrieval.embed.find_checked", lambda *a, **k: pytest.fail("the export was looked up"))
    with pytest.raises(RetrError, match=r"cannot write the index folder .*ix: (Read-only file system|Permission "
                                        r"denied); the location is read-only"):
        build_index([photos], ix, tiny_opts)


def test_a_full_disk_is_a_one_line_error_and_the_next_build_finishes(tmp_path, photos, tiny_opts, request):
    disk = tmp_path / "disk"
    _tmpfs(disk, "2m", request)
    build_index([photos], disk / "ix", tiny_opts)
    for i, source in enumerate(("china", "coffee", "rocket")):
        Image.open(photos / f"{source}.jpg").crop((0, 0, 150, 150)).save(photos / f"new{i + 1}.png")
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)  # fill the disk to the last block
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    for headroom in (0, 16 << 10):  # full to the last block (the lock says so); a little room (a later write)
        os.truncate(filler, filler.stat().st_size - headroom)
        with pytest.raises(RetrError, match="the disk is full: free some space and run the command again") as exc:
            build_index([photos], disk / "ix", tiny_opts)
        assert "\n" not in str(exc.value)
    filler.unlink()
    report = build_index([photos], disk / "ix", tiny_opts)
    assert report.total == 15
    hit = query_index(disk / "ix", [photos / "new2.png"], k=1)[0].results[0]
    assert hit.path == str(photos / "new2.png")


def test_write_errors_of_a_full_disk_are_one_line_errors(tmp_path, monkeypatch):
    import errno
    import sqlite3

    import faiss
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.orm import Session

    from index.atomic import atomic_write_text
    from index.catalog.database import Catalog

    def no_space(*args, **kwargs):
        raise RuntimeError("Error in void faiss::write_index(const Index*, IOWriter*, int) at index_write.cpp:499: "
                           "Error: 'ret == (size * 4)' failed: write error in v.faiss: 1 != 4 (No space left on "
                           "device)")
    monkeypatch.setattr(faiss, "write_index", no_space)
    with pytest.raises(RetrError, match=r"cannot write .*v.faiss: .*No space left on device.*; the disk is full"):
        save(build(np.eye(2, dtype=np.float32), np.arange(2), "Flat"), tmp_path / "v.faiss")
    assert list(tmp_path.iterdir()) == []  # no temporary left behind

    def enospc(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    with monkeypatch.context() as m:
        m.setattr(os, "fsync", enospc)
        with pytest.raises(RetrError, match=r"cannot write .*m.json: No space left on device; the disk is full"):
            atomic_write_text(tmp_path / "m.json", "x")
    assert list(tmp_path.iterdir()) == []

    cat = Catalog.for_index(tmp_path / "ix")

    def disk_full(self, *args, **kwargs):
        raise OperationalError("INSERT", {}, sqlite3.OperationalError("database or disk is full"))
    monkeypatch.setattr(Session, "flush", disk_full)
    with pytest.raises(RetrError, match=r"catalog sqlite:///.*catalog.sqlite: database or disk is full; the disk "
                                        r"is full: free some space"):
        cat.write_images([{"path": "/a.jpg", "status": "ok"}])
    cat.close()
