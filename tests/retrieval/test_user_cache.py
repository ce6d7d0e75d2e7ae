"""File digests remembered by the file's facts: taken without reading an unchanged file, never for a changed one."""
from __future__ import annotations

import hashlib
import os

import pytest

from retrieval import user_cache
from retrieval.user_cache import cache_root, cached_sha256


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RETR_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def settled(monkeypatch):
    """Every file counts as last changed long ago (a digest is remembered at once)."""
    monkeypatch.setattr(user_cache, "SETTLED_NS", -10**15)


@pytest.fixture
def reads(monkeypatch):
    """How many times a file's content was read to hash it."""
    count = []
    real = user_cache.file_sha256
    monkeypatch.setattr(user_cache, "file_sha256", lambda path: count.append(path) or real(path))
    return count


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_an_unchanged_file_is_read_once(cache, tmp_path, settled, reads):
    f = tmp_path / "weights.bin"
    f.write_bytes(b"abc" * 1000)
    assert cached_sha256(f) == sha(b"abc" * 1000)
    assert cached_sha256(f) == sha(b"abc" * 1000)
    assert cached_sha256(str(f)) == sha(b"abc" * 1000)  # the same file named as a string
    assert len(reads) == 1
    assert cache_root() == cache and len(list((cache / "digests").iterdir())) == 1


def test_a_file_rewritten_in_place_with_its_size_and_mtime_restored_is_read_again(cache, tmp_path, settled, reads):
    f = tmp_path / "model.bin"
    f.write_bytes(b"a" * 4096)
    assert cached_sha256(f) == sha(b"a" * 4096)
    st = f.stat()
    with open(f, "r+b") as fh:  # one byte flipped, same size, then the modification time set back
        fh.seek(100)
        fh.write(b"b")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert f.stat().st_mtime_ns == st.st_mtime_ns and f.stat().st_size == st.st_size
    changed = b"a" * 100 + b"b" + b"a" * 3995
    assert cached_sha256(f) == sha(changed)  # the change time moved: read again
    assert len(reads) == 2


def test_a_file_replaced_by_another_is_read_again(cache, tmp_path, settled, reads):
    f, other = tmp_path / "model.bin", tmp_path / "other.bin"
    f.write_bytes(b"one")
    other.write_bytes(b"two")
    assert cached_sha256(f) == sha(b"one")
    os.replace(other, f)
    assert cached_sha256(f) == sha(b"two")


def test_a_file_changed_just_before_it_is_read_is_not_remembered(cache, tmp_path, reads):
    f = tmp_path / "fresh.bin"
    f.write_bytes(b"new")
    assert cached_sha256(f) == sha(b"new")
    assert cached_sha256(f) == sha(b"new")
    assert len(reads) == 2 and not (cache / "digests").exists()  # a write in the same clock tick could hide


def test_a_damaged_note_is_ignored_and_rewritten(cache, tmp_path, settled, reads):
    f = tmp_path / "w.bin"
    f.write_bytes(b"xyz")
    cached_sha256(f)
    (note,) = (cache / "digests").iterdir()
    note.write_text('{"path": 1')
    assert cached_sha256(f) == sha(b"xyz")
    note.write_text('{"path": "%s", "facts": [], "sha256": "0"}' % f)  # another file's facts
    assert cached_sha256(f) == sha(b"xyz")
    assert len(reads) == 3
    assert cached_sha256(f) == sha(b"xyz") and len(reads) == 3  # rewritten whole by the last read


def test_a_cache_that_cannot_be_written_only_costs_the_read(tmp_path, monkeypatch, settled, reads):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("RETR_CACHE", str(blocker / "cache"))
    f = tmp_path / "w.bin"
    f.write_bytes(b"data")
    assert cached_sha256(f) == sha(b"data") and cached_sha256(f) == sha(b"data")
    assert len(reads) == 2


def test_a_missing_file_is_an_oserror(cache, tmp_path):
    with pytest.raises(OSError):
        cached_sha256(tmp_path / "nothing.bin")
