"""One writer at a time per index: a second writer stops at once and names the first; readers never block."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from index.errors import RetrError
from index.lock import FolderLock
from index.directory import IndexStore
from tests.conftest import TINY_MODEL, copy_photos

ROOT = Path(__file__).resolve().parents[2]


def test_a_second_writer_is_refused_naming_the_first_and_a_reader_is_not_blocked(tmp_path):
    with IndexStore.open(tmp_path / "ix", mode="create", command="retr index build") as writer:
        assert writer.writable
        with pytest.raises(RetrError, match=rf"another retr process \(pid {os.getpid()}, `retr index build`\) is "
                                            r"writing the index .*ix; wait until it finishes"):
            IndexStore.open(tmp_path / "ix", mode="create")
        with IndexStore.open(tmp_path / "ix") as reader:  # catalog.sqlite exists: a reader opens at once
            assert not reader.writable and reader.catalog.counts()["rows"] == 0
    with IndexStore.open(tmp_path / "ix", mode="write") as again:  # released on close
        assert again.writable


def test_the_lock_is_released_when_its_holder_dies(tmp_path):
    lock = FolderLock(tmp_path)
    child = subprocess.Popen([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
                              "from index.lock import FolderLock\n"
                              f"FolderLock({str(tmp_path)!r}, 'holder').acquire()\n"
                              "print('locked', flush=True)\nimport time; time.sleep(600)\n"],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(RetrError, match=rf"pid {child.pid}, `holder`"):
            lock.acquire()
    finally:
        child.kill()
        child.wait(timeout=60)
    lock.acquire()
    lock.release()


def _writer_holding_the_lock(photos: Path, ix: Path, flag: Path, go: Path, db: str | None) -> subprocess.Popen:
    """A build (the real code path) that pauses after its first committed batch until ``go`` exists."""
    script = (f"import sys, time, os; sys.path.insert(0, {str(ROOT)!r})\n"
              "from retrieval.collection.build import BuildOptions, build_index\n"
              "from retrieval.runtimes.settings import InferenceSettings\n"
              "def pause(n):\n"
              f"    open({str(flag)!r}, 'w').close()\n"
              "    deadline = time.time() + 120\n"
              f"    while not os.path.exists({str(go)!r}) and time.time() < deadline:\n"
              "        time.sleep(0.1)\n"
              f"build_index([{str(photos)!r}], {str(ix)!r}, BuildOptions(model={TINY_MODEL!r}, random_weights=True, "
              f"db_url={db!r}, inference=InferenceSettings(batch_size=2, workers=0)), on_batch=pause)\n")
    return subprocess.Popen([sys.executable, "-c", script])


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_concurrent_builds_one_waits_for_nothing_and_is_told_who_writes(tmp_path, backend, request):
    db = request.getfixturevalue("pg_catalog_url") if backend == "postgresql" else None
    photos = copy_photos(tmp_path / "photos", ("coffee", "brick", "rocket", "chelsea"))
    flag, go = tmp_path / "paused", tmp_path / "go"
    first = _writer_holding_the_lock(photos, tmp_path / "ix", flag, go, db)
    try:
        deadline = time.time() + 240
        while not flag.exists() and first.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert flag.exists(), "the first build never reached its first batch"
        # on PostgreSQL a second index folder shares the catalog: the advisory lock is what stops it
        second_ix = tmp_path / ("ix2" if db else "ix")
        second = _cli("index", "build", str(photos), "--index", str(second_ix), "--model", TINY_MODEL,
                      "--random-weights", "--workers", "0", *(["--db", db] if db else []))
        assert second.returncode == 1, second.stdout + second.stderr
        line = second.stderr.strip()
        what = "the catalog postgresql" if db else f"the index {tmp_path / 'ix'}"
        assert line.startswith(f"error: another retr process (pid {first.pid}, `retr index build`) is writing "
                               f"{what}") and "\n" not in line and "Traceback" not in line
        reader = _cli("index", "info", "--index", str(tmp_path / "ix"), "--json", *(["--db", db] if db else []))
        assert reader.returncode == 0, reader.stderr  # a reader is never blocked by the writer
    finally:
        go.touch()
        first.wait(timeout=240)
    assert first.returncode == 0
    again = _cli("index", "build", str(photos), "--index", str(tmp_path / "ix"), "--model", TINY_MODEL,
                 "--random-weights", "--workers", "0", *(["--db", db] if db else []))
    assert again.returncode == 0 and "unchanged 4" in again.stdout, again.stderr
