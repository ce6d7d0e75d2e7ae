"""Why two images were linked, and what kind of likeness that is: one enum for the finder, the verifier,
the reports (text, JSON, HTML) and the web UI.

Three kinds: ``exact`` (the same bytes), ``copy`` (an edited copy of one picture: a crop, resize, turn,
recompression, colour change, text, or all of them) and ``similar`` (another shot of the same scene: a burst
or video frame, another viewpoint, a stereo pair, a moved subject). Only exact and copy links are acted on
by --move-to and --delete, unless --include-similar asks for the similar ones too.
"""
from __future__ import annotations

import enum


class Kind(str, enum.Enum):
    EXACT = "exact"
    COPY = "copy"
    SIMILAR = "similar"

    def __str__(self) -> str:
        return self.value


class Reason(str, enum.Enum):
    EXACT = "exact"  # the same bytes (sha256)
    VERIFIED = "verified"  # keypoints agree on one transform and the aligned pictures agree: an edited copy
    ALIGNED = "aligned"  # a pair too smooth for keypoints, aligned densely (ECC): an edited copy
    HASH = "hash"  # --no-verify: the perceptual hash within --threshold
    EMBEDDING = "embedding"  # --no-verify: embeddings at least --similarity alike
    OTHER_SHOT = "other shot"  # keypoints agree on one transform, the aligned pictures differ where something moved
    REJECTED = "rejected"  # no transform maps one onto the other: not linked
    UNTEXTURED = "too little texture to verify"  # reported as unverified, never linked
    ERROR = "error"  # a side could not be read

    def __str__(self) -> str:
        return self.value

    @property
    def kind(self) -> Kind | None:
        """What a link with this reason is (None: not a link)."""
        return _KIND.get(self)

    @property
    def links(self) -> bool:
        return self.kind is not None


_KIND = {Reason.EXACT: Kind.EXACT, Reason.VERIFIED: Kind.COPY, Reason.ALIGNED: Kind.COPY, Reason.HASH: Kind.COPY,
         Reason.EMBEDDING: Kind.COPY, Reason.OTHER_SHOT: Kind.SIMILAR}
