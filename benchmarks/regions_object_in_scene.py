"""Object-in-scene retrieval: does the region index find the photo that contains an object, small?

Object crops (hand-boxed in offline photos from scikit-image and scikit-learn) are pasted at random
positions and scales (longer side 10-40% of the scene's) into other real photos (random crops and
flips of photos that contain none of the objects). Querying with the original object, recall@1 of
the right parent image through the region index versus the whole-image index, side by side with
the same model (tf_efficientnet_lite0, offline ImageNet weights). Goal: region >= whole + 0.2.

    .venv/bin/python benchmarks/regions_object_in_scene.py [--trials 2] [--sources grid windows:0.5,0.25]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from index.directory import IndexStore  # noqa: E402
from retrieval.images.decode import to_rgb  # noqa: E402
from retrieval.collection.build import BuildOptions, build_index  # noqa: E402
from retrieval.runtimes.settings import InferenceSettings  # noqa: E402
from retrieval.collection.model import index_model  # noqa: E402
from retrieval.collection.query import query_index  # noqa: E402
from retrieval.regions import RegionOptions, build_regions  # noqa: E402

# (photo, box in its original pixels): objects, each from a photo that is never a background
OBJECTS = {
    "astronaut_face": ("astronaut", (152, 16, 304, 176)),
    "mission_patch": ("astronaut", (128, 336, 208, 424)),
    "helmet": ("astronaut", (272, 336, 512, 512)),
    "shuttle_model": ("astronaut", (344, 0, 440, 272)),
    "coffee_cup": ("coffee", (79, 9, 426, 338)),
    "cat_head": ("chelsea", (85, 0, 423, 296)),
    "rocket": ("rocket", (270, 110, 350, 400)),
    "motorcycle": ("motorcycle", (81, 58, 683, 451)),
    "pagoda": ("china", (64, 24, 364, 384)),
    "dahlia": ("flower", (160, 80, 440, 360)),
    "colour_wheel": ("colorwheel", (0, 0, 371, 370)),
    "logo": ("logo", (0, 0, 500, 500)),
    "cameraman": ("camera", (6, 62, 310, 502)),
}
BACKGROUNDS = ("immunohistochemistry", "hubble_deep_field", "retina", "brick", "grass", "gravel", "moon", "coins",
               "cell", "page", "text", "clock")
SCENE_SIDE = 512


def photo(name: str) -> Image.Image:
    import skimage.data as d
    from sklearn.datasets import load_sample_images
    if name in ("china", "flower"):
        return Image.fromarray(load_sample_images().images[("china", "flower").index(name)])
    if name == "motorcycle":
        return Image.fromarray(d.stereo_motorcycle()[0])
    arr = getattr(d, name)()
    if arr.dtype != np.uint8:
        arr = (arr.astype(np.float32) / max(float(arr.max()), 1.0) * 255).astype(np.uint8)
    return to_rgb(Image.fromarray(arr))


def background(rng: np.random.Generator, photos: dict[str, Image.Image]) -> Image.Image:
    img = photos[BACKGROUNDS[rng.integers(len(BACKGROUNDS))]]
    w, h = img.size
    cw, ch = int(w * rng.uniform(0.6, 1.0)), int(h * rng.uniform(0.6, 1.0))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    img = img.crop((x, y, x + cw, y + ch))
    if rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    scale = SCENE_SIDE / max(img.size)
    return img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BICUBIC)


def make_collection(root: Path, trial: int, distractors: int) -> tuple[Path, dict[str, Path], dict[str, str]]:
    """Scenes (one per object, plus empty distractors), query files, and each object's scene path."""
    rng = np.random.default_rng(1000 + trial)
    photos = {n: photo(n) for n in set(BACKGROUNDS) | {p for p, _ in OBJECTS.values()}}
    gallery, queries = root / f"trial{trial}" / "gallery", root / f"trial{trial}" / "queries"
    gallery.mkdir(parents=True)
    queries.mkdir(parents=True)
    truth, query_files = {}, {}
    for name, (src, box) in OBJECTS.items():
        obj = photos[src].crop(box)
        query_files[name] = queries / f"{name}.png"
        obj.save(query_files[name])
        scene = background(rng, photos)
        frac = rng.uniform(0.10, 0.40)
        scale = frac * max(scene.size) / max(obj.size)
        small = obj.resize((max(4, round(obj.width * scale)), max(4, round(obj.height * scale))), Image.BICUBIC)
        small = small.crop((0, 0, min(small.width, scene.width), min(small.height, scene.height)))
        x = int(rng.integers(0, scene.width - small.width + 1))
        y = int(rng.integers(0, scene.height - small.height + 1))
        scene.paste(small, (x, y))
        path = gallery / f"scene_{name}.jpg"
        scene.save(path, quality=90)
        truth[name] = str(path)
    for i in range(distractors):
        background(rng, photos).save(gallery / f"empty_{i:02d}.jpg", quality=90)
    return gallery, query_files, truth


def recall_at_1(results, truth: dict[str, str], names: list[str]) -> float:
    return float(np.mean([bool(r.results) and r.results[0].path == truth[n] for n, r in zip(names, results)]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=2)
    ap.add_argument("--distractors", type=int, default=7)
    ap.add_argument("--sources", nargs="+", default=["grid"])
    args = ap.parse_args()
    figures: dict[str, list[float]] = {"whole": []}
    seconds: dict[str, float] = {"whole": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for trial in range(args.trials):
            gallery, query_files, truth = make_collection(root, trial, args.distractors)
            names = list(query_files)
            ix = root / f"trial{trial}" / "ix"
            start = time.perf_counter()
            build_index([gallery], ix, BuildOptions(inference=InferenceSettings(workers=1)))
            seconds["whole"] += time.perf_counter() - start
            whole = query_index(ix, [query_files[n] for n in names], k=1, regions=False)
            figures["whole"].append(recall_at_1(whole, truth, names))
            for spec in args.sources:
                with IndexStore.open(ix) as store:
                    start = time.perf_counter()
                    report = build_regions(store, index_model(store), RegionOptions(spec),
                                           workers=1)
                    seconds[spec] = seconds.get(spec, 0.0) + time.perf_counter() - start
                hits = query_index(ix, [query_files[n] for n in names], k=1, regions=True)
                figures.setdefault(spec, []).append(recall_at_1(hits, truth, names))
                figures.setdefault(f"{spec} regions/image", []).append(report.total / len(list(gallery.iterdir())))
            print(f"trial {trial}: {len(names)} queries, {len(names) + args.distractors} gallery images; "
                  + ", ".join(f"{k} {v[-1]:.3f}" for k, v in figures.items()), flush=True)
    base = float(np.mean(figures["whole"]))
    print(f"\nobject-in-scene recall@1 (tf_efficientnet_lite0, {args.trials} trials x {len(OBJECTS)} queries, "
          f"objects 10-40% of the scene side)")
    print(f"  {'index':28} {'recall@1':>9} {'vs whole':>9} {'regions/img':>12} {'index s':>8}")
    print(f"  {'whole image':28} {base:9.3f} {0.0:+9.3f} {1:12.1f} {seconds['whole']:8.1f}")
    for spec in args.sources:
        r = float(np.mean(figures[spec]))
        print(f"  {'regions ' + spec:28} {r:9.3f} {r - base:+9.3f} {np.mean(figures[spec + ' regions/image']):12.1f} "
              f"{seconds[spec]:8.1f}   goal >= whole + 0.2: {'met' if r >= base + 0.2 else 'NOT met'}")


if __name__ == "__main__":
    main()
