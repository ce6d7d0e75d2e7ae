"""Libraries for dedupe tests beyond photos.make_library: linked files, and an index of catalog rows only."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from index.catalog.database import Catalog
from tests.conftest import PHOTOS
from tests.retrieval.dedupe.photos import digest


def catalog_index(tmp_path: Path, files: dict[str, Path]) -> Path:
    """An index directory holding only catalog rows (what `retr index build` records, minus vectors) of every
    file but "astro_q40" (left out to be checked against the catalog)."""
    cat = Catalog.for_index(tmp_path / "idx")
    cat.write_images([{"path": str(p), "sha256": digest(p), "bytes": p.stat().st_size, "width": 1, "height": 1,
                       "mtime": p.stat().st_mtime, "status": "ok"} for k, p in files.items() if k != "astro_q40"])
    cat.close()
    return tmp_path / "idx"


def linked_library(tmp_path: Path) -> Path:
    """lib/x.jpg, lib/album/x.jpg -> ../x.jpg (the same file), lib/z_copy.jpg (a real copy) and lib/brick.jpg."""
    lib = tmp_path / "lib"
    (lib / "album").mkdir(parents=True)
    shutil.copyfile(PHOTOS / "coffee.jpg", lib / "x.jpg")
    (lib / "album" / "x.jpg").symlink_to(os.path.join("..", "x.jpg"))
    shutil.copyfile(PHOTOS / "coffee.jpg", lib / "z_copy.jpg")
    shutil.copyfile(PHOTOS / "brick.jpg", lib / "brick.jpg")
    return lib
