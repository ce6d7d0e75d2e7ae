import os
import stat

import pytest

from index.atomic import atomic_path, atomic_write_text


def test_atomic_write_replaces_whole_file_with_umask_permissions(tmp_path):
    target = tmp_path / "m.json"
    atomic_write_text(target, "old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "m.json"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_an_impossible_target_is_a_clear_error(tmp_path):
    from index.catalog.database import Catalog
    from index.errors import RetrError
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(RetrError, match="cannot write .*a-file/report.html"):
        atomic_write_text(blocker / "report.html", "x")
    with pytest.raises(RetrError, match="cannot create the index folder .*a-file/index"):
        Catalog.for_index(blocker / "index")
    assert blocker.read_text() == "not a folder"
