"""Embedding extraction: files -> safe decode + model preprocessing (DataLoader workers) -> vectors.

Workers decode and resize to uint8 tensors (a quarter of float32's bytes to move between processes);
the main process runs the network on the runtime chosen (retrieval.runtimes): torch with pinned memory,
AMP and channels_last on CUDA; on a CPU an exported OpenVINO or ONNX Runtime network (normalisation
included) while the workers decode the next batches.
"""
from __future__ import annotations

import dataclasses
import hashlib
import threading
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import functional as TF

from retrieval.images.decode import ImageLoadError, check_resize, decode_sized, read_bytes
from retrieval.models.load import LoadedModel, resolve_device
from retrieval.progress import progress_bar
from retrieval.runtimes.base import Session
from retrieval.runtimes.choose import Opened, check_choice, open_runtime
from retrieval.workers import embed_workers, frozen_heap


@dataclasses.dataclass
class ExtractBatch:
    paths: list[str]
    vectors: np.ndarray  # float32 [len(ok), dim], L2-normalised
    ok: list[int]  # indices into ``paths`` that were embedded, in the order of ``vectors``
    infos: list[dict[str, Any]]  # per ok path: sha256, bytes, width, height
    errors: list[tuple[str, str]]  # (path, reason) for files that could not be decoded


@dataclasses.dataclass(frozen=True)
class Preprocess:
    """The model's timm eval transform, split: a resize-and-crop stage (uint8) and a tensor stage (normalise).

    When the resize-and-crop stage is the usual ``Resize(side) + CenterCrop``, and the picture shrinks and
    is at most twice as long as wide, it runs on a uint8 tensor (torch's antialiased uint8 kernels,
    Pillow's filters ported: a decode worker's item 1.2-1.3x cheaper, pixels within 2 grey levels, vectors
    to cosine >= 0.9999; see benchmarks/preprocess.py); any other stage or picture runs on the PIL image
    as timm does.
    """

    pil_stage: Callable[[Image.Image], Image.Image]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    draft_size: int  # the shorter side the resize aims at; JPEG may decode at reduced scale down to it
    tensor_stage: Callable[[torch.Tensor], torch.Tensor] | None = None  # uint8 CHW -> uint8 CHW, when known

    @classmethod
    def from_model(cls, model: LoadedModel, *, tensor_resize: bool = True) -> "Preprocess":
        cfg = model.info.data_config
        steps = list(getattr(model.transform, "transforms", []))
        names = [type(t).__name__ for t in steps]
        if len(steps) < 2 or names[-1] != "Normalize" or "ToTensor" not in names[-2]:
            raise ValueError(f"unexpected eval transform {names}; expected [..., ToTensor, Normalize]")
        from torchvision.transforms import Compose
        side = int(round(max(cfg["input_size"][1:]) / float(cfg.get("crop_pct") or 1.0)))
        fast = _tensor_stage(steps[:-2]) if tensor_resize else None
        return cls(Compose(steps[:-2]), tuple(cfg["mean"]), tuple(cfg["std"]), side, fast)

    def to_uint8(self, img: Image.Image) -> torch.Tensor:
        """Resize and crop to the model's input; an image that would resize to a giant is refused first."""
        check_resize(*img.size, self.draft_size)
        if self.takes_tensor_stage(img):
            # np.array: a writable copy of the pixels (HWC); the stage returns a contiguous CHW tensor
            return self.tensor_stage(torch.from_numpy(np.array(img)).permute(2, 0, 1))
        out = self.pil_stage(img)
        if out.mode != "RGB":
            return TF.pil_to_tensor(out)
        # channels first as a contiguous copy: stacking pil_to_tensor's strided views cost ~2 ms an image
        return torch.from_numpy(np.ascontiguousarray(np.asarray(out).transpose(2, 0, 1)))

    def takes_tensor_stage(self, img: Image.Image) -> bool:
        """Whether ``img`` is resized on a tensor. Measured (benchmarks/preprocess.py): shrinking a picture at
        most twice as long as wide, torch changes < 0.5% of the pixels by 1-2 levels; enlarging a small one,
        or a portrait over 2:1 (~8% of its pixels), moved vectors to 0.9998, so those take Pillow."""
        short, long = sorted(img.size)
        return self.tensor_stage is not None and img.mode == "RGB" and self.draft_size <= short and long <= 2 * short

    def normalise(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 [B,3,H,W] (on any device) -> normalised float32, exactly as timm's ToTensor+Normalize."""
        x = batch.float().div_(255.0)
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return x.sub_(mean).div_(std)


def _tensor_stage(steps: list[Any]) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """``Resize(int side, bilinear|bicubic, antialiased) + CenterCrop`` as one function on uint8 CHW tensors
    (torchvision's functional resize and crop, so sizes and crop offsets are the PIL path's); None for
    any other stage."""
    from torchvision.transforms import CenterCrop, InterpolationMode, Resize
    if len(steps) != 2 or type(steps[0]) is not Resize or type(steps[1]) is not CenterCrop:
        return None
    resize, crop = steps
    size = [resize.size] if isinstance(resize.size, int) else list(resize.size)
    if (len(size) != 1 or resize.max_size is not None or resize.antialias is False
            or resize.interpolation not in (InterpolationMode.BICUBIC, InterpolationMode.BILINEAR)):
        return None
    from torchvision.transforms.v2 import functional as F2  # v2: uint8 kernels (v1 resizes in float)
    interpolation, crop_size = resize.interpolation, list(crop.size)

    def stage(chw: torch.Tensor) -> torch.Tensor:
        out = F2.resize(chw, size, interpolation, antialias=True)
        return F2.center_crop(out, crop_size).contiguous()
    return stage


class _FileDataset(Dataset):
    def __init__(self, paths: Sequence[str], prep: Preprocess):
        self.paths, self.prep = list(paths), prep

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, Any]:
        path = self.paths[i]
        try:
            data = read_bytes(path)
            img, width, height = decode_sized(data, draft_size=self.prep.draft_size, reduce=True)
            tensor = self.prep.to_uint8(img)
        except ImageLoadError as exc:
            return {"i": i, "error": str(exc), "bytes": None}
        except Exception as exc:  # noqa: BLE001 - one bad file must never stop a build
            return {"i": i, "error": f"cannot process: {type(exc).__name__}: {str(exc)[:120]}", "bytes": None}
        return {"i": i, "tensor": tensor, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                "width": width, "height": height}


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """One uint8 batch of the decoded items; the items keep only their facts (one tensor crosses processes)."""
    good = [it.pop("tensor") for it in items if "tensor" in it]
    return {"items": items, "batch": torch.stack(good) if good else None}


class Embedder:
    """A model on a device, ready to embed preprocessed batches, on the runtime ``runtime`` names.

    ``auto``: torch on CUDA (AMP, channels_last); on a CPU the fastest exact runtime installed (see
    retrieval.runtimes.choose), else torch. ``runtime_used`` says which one runs after any fallback.
    """

    def __init__(self, model: LoadedModel, device: str | torch.device = "auto", runtime: str = "auto",
                 precision: str = "f32", *, lazy: bool = False):
        """``lazy``: open the runtime on first use (embed_files starts its decode workers first)."""
        self.model = model
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.cuda = self.device.type == "cuda"
        self.prep = Preprocess.from_model(model)
        check_choice(runtime, precision)  # a bad name is said now, lazy or not
        self._choice = (runtime, precision)
        self._opened: Opened | None = None
        self._open_lock = threading.Lock()
        self.net = model.net
        if not lazy:
            self._open()

    def _open(self) -> Opened:
        if self._opened is None:
            with self._open_lock:
                if self._opened is None:
                    self._opened = open_runtime(self.model, self.device, self.prep.normalise, *self._choice)
        return self._opened

    @property
    def session(self) -> Session:
        return self._open().session

    @property
    def runtime_used(self) -> str:
        """The runtime that embeds, after any fallback."""
        return self._open().runtime

    def __call__(self, uint8_batch: torch.Tensor) -> np.ndarray:
        return self.session(uint8_batch)

    def stream(self, batches: Iterable[tuple[torch.Tensor | None, Any]]) -> Iterator[tuple[np.ndarray | None, Any]]:
        """(uint8 batch or None, tag) -> (vectors or None, tag) in order; the runtime may run several
        batches at once (OpenVINO's async requests) while the caller reads the next and stores the last."""
        streamed = getattr(self.session, "stream", None)
        if streamed is not None:
            yield from streamed(batches)
            return
        for batch, tag in batches:
            yield (self.session(batch) if batch is not None else None), tag


def embed_files(model: LoadedModel, paths: Sequence[str], *, batch_size: int = 32, workers: int | None = None,
                device: str | torch.device = "auto", progress: bool = False,
                embedder: Embedder | None = None, runtime: str = "auto",
                precision: str = "f32") -> Iterator[ExtractBatch]:
    """Embed image files in batches; undecodable files come back as errors, never as exceptions."""
    # lazy: the runtime opens (exporting or checking) while the workers decode the first batches
    embedder = embedder or Embedder(model, device, runtime, precision, lazy=True)
    workers = embed_workers() if workers is None else workers
    loader = DataLoader(_FileDataset(paths, embedder.prep), batch_size=batch_size, num_workers=workers,
                        collate_fn=_collate, pin_memory=embedder.cuda, shuffle=False,
                        prefetch_factor=4 if workers else None, persistent_workers=False)
    with frozen_heap(), progress_bar(len(paths), desc="embedding", enabled=progress) as bar:
        for vecs, chunk in embedder.stream((chunk["batch"], chunk) for chunk in loader):
            items = chunk["items"]
            good = [it for it in items if "error" not in it]
            yield ExtractBatch(
                paths=[paths[it["i"]] for it in items],
                vectors=vecs if vecs is not None else np.zeros((0, model.info.dim), np.float32),
                ok=[pos for pos, it in enumerate(items) if "error" not in it],
                infos=[{k: it[k] for k in ("sha256", "bytes", "width", "height")} for it in good],
                errors=[(paths[it["i"]], it["error"]) for it in items if "error" in it])
            bar.update(len(items))


def embed_images(model: LoadedModel, images: Sequence[Image.Image], *, batch_size: int = 32,
                 device: str | torch.device = "auto", embedder: Embedder | None = None,
                 runtime: str = "auto", precision: str = "f32") -> np.ndarray:
    """Embed PIL images already in memory (query crops, augmented copies)."""
    embedder = embedder or Embedder(model, device, runtime, precision)
    out = [np.zeros((0, model.info.dim), np.float32)]
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        batch = torch.stack([embedder.prep.to_uint8(img.convert("RGB")) for img in chunk])
        out.append(embedder(batch))
    return np.concatenate(out)
