"""Report files of duplicate groups: CSV rows, and an HTML page of side-by-side thumbnails.

(The readable table is printed by the CLI: cli/render.py.)
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from index.atomic import atomic_write_text
from retrieval.dedupe.finder import DedupeResult
from retrieval.images.gallery import Tile, write_gallery

CSV_COLUMNS = ("group", "role", "path", "kind", "reason", "distance", "bytes", "width", "height")


def csv_text(result: DedupeResult) -> str:
    """One row per image of each group: copy groups numbered 1.., similar groups s1.. (role "similar")."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    for label, groups, role in (("", result.groups, "duplicate"), ("s", result.similar, "similar")):
        for n, g in enumerate(groups, 1):
            k = g.keep
            writer.writerow([f"{label}{n}", "keep", k.path, "", "", "", k.bytes, k.width, k.height])
            for d in g.duplicates:
                it = d.item
                writer.writerow([f"{label}{n}", role, it.path, d.kind.value, d.reason.value, d.distance, it.bytes,
                                 it.width, it.height])
    return buf.getvalue()


def write_csv(result: DedupeResult, out: str | Path) -> Path:
    atomic_write_text(out, csv_text(result))
    return Path(out)


def _size(it) -> str:
    dims = f"{it.width}x{it.height}" if it.width and it.height else "?"
    return f"{dims}, {it.bytes or 0:,} B"


def _tiles(g) -> list[Tile]:
    tiles = [Tile(g.keep.path, f"KEEP · {_size(g.keep)}")]
    return tiles + [Tile(d.item.path, f"{d.kind.value} · {d.reason.value}"
                         + (f" · {d.inliers} inliers" if d.inliers is not None else "")
                         + f" · distance {d.distance} · {_size(d.item)}") for d in g.duplicates]


def write_html(result: DedupeResult, out: str | Path) -> Path:
    """One row per group: the kept image first, then each duplicate captioned with kind, reason and distance;
    then the similar groups (other shots of one scene)."""
    rows = []
    for n, g in enumerate(result.groups, 1):
        rows.append((f"group {n}, {g.kind.value} ({len(g.duplicates)} duplicate{'s' if len(g.duplicates) != 1 else ''})",
                     _tiles(g)))
    for n, g in enumerate(result.similar, 1):
        rows.append((f"similar group {n}: other shots of one scene, kept unless --include-similar "
                     f"({len(g.duplicates)} similar)", _tiles(g)))
    if result.low_info:
        rows.append((f"low-information images ({len(result.low_info)}): flat, near-uniform or tiny; never paired "
                     "by a hash, never moved", [Tile(x.item.path, f"{x.reason} · {_size(x.item)}")
                                                for x in result.low_info]))
    for n, u in enumerate(result.unverified, 1):
        rows.append((f"unverified pair {n}: a hash links them (distance {u.distance}) but they are too poor in "
                     "texture to verify; not merged", [Tile(u.a.path, _size(u.a)), Tile(u.b.path, _size(u.b))]))
    title = (f"retr dedupe: {result.n_duplicates} duplicates and {result.n_similar} similar of "
             f"{result.n_images} images")
    return write_gallery(out, title, rows)
