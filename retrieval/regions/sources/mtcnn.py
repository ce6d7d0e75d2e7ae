"""Faces with MTCNN, using the weights that ship inside facenet-pytorch (works offline)."""
from __future__ import annotations

from PIL import Image

from index.errors import RetrError
from retrieval.models.load import resolve_device
from retrieval.regions.proposal import Proposal
from retrieval.regions.sources.base import RegionSource, SourceOptions

MIN_FACE = 20  # pixels: the smallest face MTCNN's image pyramid looks for


class MTCNNSource(RegionSource):
    """``mtcnn[:MIN_FACE]``: face boxes scored by MTCNN's final stage."""

    def __init__(self, min_face: int = MIN_FACE, device: str = "auto"):
        if min_face < 8:
            raise RetrError(f"mtcnn minimum face size must be at least 8 pixels, got {min_face}")
        super().__init__(f"mtcnn:{min_face}")
        self.min_face = int(min_face)
        self.device = device
        self._net = None

    @classmethod
    def from_arg(cls, arg: str | None, options: SourceOptions) -> "MTCNNSource":
        try:
            return cls(int(arg) if arg else MIN_FACE, options.device)
        except ValueError:
            raise RetrError(f"bad mtcnn minimum face size {arg!r}: expected an integer") from None

    def _model(self):
        if self._net is None:
            try:
                from facenet_pytorch import MTCNN
            except ImportError as exc:
                raise RetrError("the mtcnn region source needs facenet-pytorch: "
                                f"pip install --no-deps facenet-pytorch requests ({exc})") from exc
            self._net = MTCNN(keep_all=True, min_face_size=self.min_face, post_process=False,
                              device=resolve_device(self.device))
        return self._net

    def propose(self, image: Image.Image, path: str | None = None) -> list[Proposal]:
        boxes, probs = self._model().detect(image.convert("RGB"))
        if boxes is None:
            return []
        return [Proposal(tuple(float(v) for v in box), label="face", score=float(p))
                for box, p in zip(boxes, probs)]
