"""A move across filesystems never leaves a truncated file under its final name."""
import errno
import functools
import os
import shutil
import signal

import pytest

from retrieval.dedupe.actions import move_duplicates, undo
from retrieval.dedupe.fileops import move_file, sha256_of
from tests.retrieval.dedupe.photos import digest, exact_group

CONTENT = bytes(range(256)) * 4000  # 1 MB


@pytest.fixture
def cross_device(monkeypatch):
    """Every rename fails as it does between two filesystems, so moves take the copy path."""
    def rename(src, dst):
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
    monkeypatch.setattr(os, "rename", rename)


@pytest.fixture
def lib(tmp_path):
    (tmp_path / "lib").mkdir()
    keep, a, b = (tmp_path / "lib" / n for n in ("keep.jpg", "a.jpg", "b.jpg"))
    keep.write_bytes(CONTENT)
    shutil.copyfile(keep, a)
    shutil.copyfile(keep, b)
    return tmp_path, [exact_group(keep, a, b)], (a, b)


def _half_then(stop):
    def copy(fsrc, fdst):
        data = fsrc.read()
        fdst.write(data[:len(data) // 2])
        fdst.flush()
        stop()
    return copy


def _disk_full():
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _killed():
    os.kill(os.getpid(), signal.SIGKILL)


def _move_in_child(groups, q, manifest, mover) -> int:
    """Run the move in a forked process (which may kill itself); returns its wait status."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            move_duplicates(groups, q, manifest=manifest, mover=mover)
        finally:
            os._exit(3)
    return os.waitpid(pid, 0)[1]


@pytest.mark.parametrize("stop", [_disk_full, _killed], ids=["copy-raises", "kill-9"])
def test_an_interrupted_cross_filesystem_move_leaves_no_truncated_file(lib, cross_device, stop):
    tmp, groups, (a, b) = lib
    q = tmp / "q"
    status = _move_in_child(groups, q, tmp / "m1.jsonl", functools.partial(move_file, copy=_half_then(stop)))
    if stop is _killed:
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert not (q / "a.jpg").exists() and not (q / "b.jpg").exists()  # nothing under a final name
    assert digest(a) == digest(b) == sha256_of(str(tmp / "lib" / "keep.jpg"))  # sources intact
    leftovers = [p.name for p in q.iterdir() if p.suffix == ".partial"]
    assert len(leftovers) == (0 if stop is _disk_full else 1)  # a kill leaves only a hidden partial file
    assert all(name.startswith(".a.jpg.") for name in leftovers)

    assert undo(tmp / "m1.jsonl").skipped == []  # nothing "both exist"
    report = move_duplicates(groups, q, manifest=tmp / "m2.jsonl")  # the same quarantine again
    assert [os.path.basename(d) for _, d in report.done] == ["a.jpg", "b.jpg"] and report.skipped == []
    assert (q / "a.jpg").read_bytes() == CONTENT and not a.exists()
    back = undo(tmp / "m2.jsonl")
    assert len(back.done) == 2 and back.skipped == []
    assert a.read_bytes() == CONTENT and b.read_bytes() == CONTENT and not (q / "a.jpg").exists()


def test_move_file_never_replaces_an_existing_file(tmp_path):
    (tmp_path / "src").write_bytes(b"new")
    (tmp_path / "dst").write_bytes(b"old")
    with pytest.raises(FileExistsError):
        move_file(str(tmp_path / "src"), str(tmp_path / "dst"))
    assert (tmp_path / "dst").read_bytes() == b"old" and (tmp_path / "src").exists()
