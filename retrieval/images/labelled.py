"""Labelled image sets: a folder of class folders (``root/<class>/<image>``) or a CSV ``path,label``."""
from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

from index.errors import RetrError
from retrieval.images.decode import IMAGE_EXTENSIONS, existing


@dataclasses.dataclass(frozen=True)
class LabelledSet:
    paths: list[Path]
    labels: list[str]
    missing: list[Path]  # CSV rows whose file does not exist (recorded, not fatal)

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.labels))


def read_labelled(data: str | Path) -> LabelledSet:
    """Read class folders or a ``path,label`` CSV (relative paths are relative to the CSV's folder)."""
    data = existing(data)
    if data.is_file():
        return _read_csv(data)
    paths, labels = [], []
    for class_dir in sorted(p for p in data.iterdir() if p.is_dir()):
        for path in sorted(class_dir.rglob("*")):
            if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
                paths.append(path)
                labels.append(class_dir.name)
    if not paths:
        raise RetrError(f"{data} holds no class folders with images (expected {data}/<class>/<image>)")
    return LabelledSet(paths, labels, [])


def _read_csv(path: Path) -> LabelledSet:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise RetrError(f"cannot read label CSV {path}: {exc}") from exc
    if not rows or not {"path", "label"} <= set(rows[0]):
        raise RetrError(f"{path} must be a CSV with a header holding the columns path,label")
    paths, labels, missing = [], [], []
    for row in rows:
        p = Path(row["path"])
        p = p if p.is_absolute() else path.parent / p
        if p.is_file():
            paths.append(p)
            labels.append(str(row["label"]))
        else:
            missing.append(p)
    if not paths:
        raise RetrError(f"none of the {len(rows)} files listed in {path} exist")
    return LabelledSet(paths, labels, missing)
