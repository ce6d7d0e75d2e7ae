"""Real photos (scikit-image) and their edited copies, written into a test's tmp_path."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from PIL import Image


def photo(name: str) -> Image.Image:
    from skimage import data
    return Image.fromarray(getattr(data, name)()).convert("RGB")


def make_library(root: Path) -> dict[str, Path]:
    """A small photo library: originals, an exact copy, near-duplicates, and distinct photos."""
    (root / "trip").mkdir(parents=True)
    (root / "copies" / "phone").mkdir(parents=True)
    astro = photo("astronaut")
    files = {
        "astro": root / "trip" / "astronaut.png",
        "coffee": root / "trip" / "coffee.jpg",
        "chelsea": root / "trip" / "chelsea.jpg",
        "rocket": root / "trip" / "rocket.jpg",
        "astro_small": root / "copies" / "phone" / "astronaut_small.jpg",
        "astro_q40": root / "copies" / "astronaut_q40.jpg",
        "astro_crop": root / "copies" / "astronaut_crop.png",
        "coffee_copy": root / "copies" / "coffee copy.jpg",
    }
    astro.save(files["astro"])
    photo("coffee").save(files["coffee"], quality=92)
    photo("chelsea").save(files["chelsea"], quality=92)
    photo("rocket").save(files["rocket"], quality=92)
    astro.resize((256, 256), Image.LANCZOS).save(files["astro_small"], quality=85)
    astro.save(files["astro_q40"], quality=40)
    astro.crop((8, 6, 500, 504)).save(files["astro_crop"])  # ~3% off the borders
    shutil.copyfile(files["coffee"], files["coffee_copy"])
    return files


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def exact_group(keep: Path, *duplicates: Path, first_id: int = 1):
    """A dedupe Group of files on disk (any bytes: moving never decodes), as the finder would make it."""
    from retrieval.dedupe.finder import Duplicate, Group, Item

    def item(k: int, p: Path) -> Item:
        return Item(first_id + k, str(p), digest(p), p.stat().st_size)

    return Group(item(0, keep), tuple(Duplicate(item(k, p), 0, "exact") for k, p in enumerate(duplicates, 1)))
