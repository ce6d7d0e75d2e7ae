"""A quarantine move or undo that kills itself (SIGKILL, no clean-up) around its Nth file move, and the
check that the catalog, the faiss file and the disk agree afterwards. Run as a child process:
``python -m tests.cli.quarantine_crash move|undo INDEX DEST_OR_MANIFEST N before|after``."""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path


def _dying_rename(n: int, when: str):
    real, calls = os.rename, [0]

    def rename(src, dst, *args, **kwargs):
        calls[0] += 1
        if calls[0] == n and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        real(src, dst, *args, **kwargs)
        if calls[0] == n and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
    return rename


def main(action: str, index: str, target: str, n: int, when: str) -> None:
    from retrieval.dedupe.options import DedupeOptions
    from retrieval.dedupe.run import Action, dedupe_index, undo_manifest
    os.rename = _dying_rename(n, when)  # a file move is the one os.rename of both (atomic writes use replace)
    if action == "move":
        dedupe_index(index, DedupeOptions(), Action(move_to=target))
    else:
        undo_manifest(target, index_dir=index)


def state(index: Path, folders: list[Path], *, settle: bool = True) -> dict:
    """What the catalog, the faiss file and the disk hold now; with ``settle``, after a writer has settled
    the index (as the next build, dedupe action or server start does)."""
    from index.catalog.quarantine import records
    from index.directory import IndexStore
    with IndexStore.open(index, mode="write" if settle else "read") as store:  # a writer settles first
        rows = {r.path: r.id for r in store.catalog.image_rows().values()}
        quarantined = {r.dest: (r.path, r.id, r.state) for r in records(store.catalog)}
        consistent = store.consistent()
        notes = list(store.repairs)
    files = sorted(str(p) for f in folders for p in f.rglob("*") if p.is_file() and p.suffix != ".jsonl")
    return {"rows": rows, "quarantined": quarantined, "consistent": consistent, "files": files, "notes": notes}


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
