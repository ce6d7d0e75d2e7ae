"""Keypoint candidates: images that share near-identical ORB descriptors are proposed, others are not."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

from retrieval.dedupe.keypoint_candidates import keypoint_pairs
from retrieval.dedupe.features import features_of_bytes
from tests.conftest import PHOTOS

NAMES = ["astronaut", "camera", "chelsea", "coffee", "coins", "rocket", "china", "flower", "retina", "gravel"]


def _noisy_copy(desc: np.ndarray, rng, flips: int = 12, keep: float = 0.7) -> np.ndarray:
    """The same descriptors with ``flips`` random bits changed each, a share of them lost, reordered."""
    out = desc[rng.random(len(desc)) < keep].copy()
    bits = np.unpackbits(out, axis=1)
    for row in bits:
        row[rng.choice(256, flips, replace=False)] ^= 1
    return np.packbits(bits, axis=1)[rng.permutation(len(out))]


def test_a_noisy_copy_is_proposed_and_unrelated_images_are_not():
    rng = np.random.default_rng(0)
    descs = [rng.integers(0, 256, (400, 32), dtype=np.uint8) for _ in range(6)]
    descs.append(_noisy_copy(descs[2], rng))
    assert keypoint_pairs(descs) == [(2, 6)]


def test_each_image_proposes_at_most_its_best_partners():
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (400, 32), dtype=np.uint8)
    descs = [base] + [_noisy_copy(base, rng, flips=4 + k) for k in range(5)]
    assert len(keypoint_pairs(descs)) == 15  # every copy pairs with every other (6 choose 2)
    pairs = keypoint_pairs(descs, neighbours=1)
    assert all(sum(x in p for p in pairs) >= 1 for x in range(6))
    assert len(pairs) <= 6


def test_too_few_images_or_descriptors_propose_nothing():
    assert keypoint_pairs([]) == []
    assert keypoint_pairs([np.zeros((0, 32), np.uint8), np.zeros((5, 32), np.uint8)]) == []


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def test_heavily_edited_copies_of_real_photos_are_proposed():
    """Crop 15%, rotation 8 degrees, half size, a text overlay, JPEG 30: each copy's original is among its
    proposed partners, and no copy is proposed with another photo's copy more than with its own original."""
    feats = []
    for n in NAMES:
        img = Image.open(PHOTOS / f"{n}.jpg").convert("RGB")
        w, h = img.size
        edit = img.crop((int(w * .075), int(h * .075), w - int(w * .075), h - int(h * .075)))
        edit = edit.rotate(8, resample=Image.BICUBIC).resize((w // 2, h // 2), Image.LANCZOS)
        ImageDraw.Draw(edit).text((8, 8), "(c) 2024 holiday copy", fill=(255, 255, 0))
        feats += [features_of_bytes(_jpeg(img, 92)), features_of_bytes(_jpeg(edit, 30))]
    pairs = set(keypoint_pairs([f.descriptors for f in feats]))
    assert all((2 * k, 2 * k + 1) in pairs for k in range(len(NAMES)))
