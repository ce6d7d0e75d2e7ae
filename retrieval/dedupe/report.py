"""Reports of duplicate groups: a readable table, CSV rows, and an HTML page of side-by-side thumbnails.

The table shows file names escaped (a newline as ``\\n``, a byte that is not UTF-8 as ``\\xff``), so every
name keeps to one line and any name can be printed.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from index.atomic import atomic_write_text
from retrieval.dedupe.finder import DedupeResult
from retrieval.images.gallery import Tile, write_gallery
from retrieval.images.decode import shown

CSV_COLUMNS = ("group", "role", "path", "reason", "distance", "bytes", "width", "height")


def table(result: DedupeResult) -> str:
    """Groups as indented text: the kept image, then each duplicate with reason and distance."""
    o = result.options
    lines = [f"{result.n_images} images, {result.n_duplicates} duplicates in {len(result.groups)} groups "
             f"({o.hash} size {o.hash_size}, radius {o.threshold}"
             + (f", embeddings >= {o.similarity}" if o.embeddings else "") + f", keep {o.keep})"]
    for n, g in enumerate(result.groups, 1):
        lines.append(f"group {n}: keep {shown(g.keep.path)}")
        for d in g.duplicates:
            lines.append(f"  {d.reason:>14} {d.distance:>7}  {shown(d.item.path)}")
    if result.aliases:
        lines.append(f"{len(result.aliases)} path(s) reach a file listed under another path (a symlink or "
                     "hard link): one image with it, never acted on:")
        lines += [f"  {shown(a)} -> {shown(p)}" for a, p in result.aliases]
    if result.errors:
        lines.append(f"{len(result.errors)} file(s) could not be hashed:")
        lines += [f"  {shown(p)}: {shown(e)}" for p, e in result.errors]
    return "\n".join(lines)


def csv_text(result: DedupeResult) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    for n, g in enumerate(result.groups, 1):
        k = g.keep
        writer.writerow([n, "keep", k.path, "", "", k.bytes, k.width, k.height])
        for d in g.duplicates:
            it = d.item
            writer.writerow([n, "duplicate", it.path, d.reason, d.distance, it.bytes, it.width, it.height])
    return buf.getvalue()


def write_csv(result: DedupeResult, out: str | Path) -> Path:
    atomic_write_text(out, csv_text(result))
    return Path(out)


def _size(it) -> str:
    dims = f"{it.width}x{it.height}" if it.width and it.height else "?"
    return f"{dims}, {it.bytes or 0:,} B"


def write_html(result: DedupeResult, out: str | Path) -> Path:
    """One row per group: the kept image first, then each duplicate captioned with reason and distance."""
    rows = []
    for n, g in enumerate(result.groups, 1):
        tiles = [Tile(g.keep.path, f"KEEP · {_size(g.keep)}")]
        tiles += [Tile(d.item.path, f"{d.reason} · distance {d.distance} · {_size(d.item)}") for d in g.duplicates]
        rows.append((f"group {n} ({len(g.duplicates)} duplicate{'s' if len(g.duplicates) != 1 else ''})", tiles))
    title = f"retr dedupe: {result.n_duplicates} duplicates of {result.n_images} images"
    return write_gallery(out, title, rows)
