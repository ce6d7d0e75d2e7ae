"""A model as a command names it, and what identifies it, known without importing torch or timm.

A model's export (retrieval.runtimes.cache) is found from these facts alone: the spec, the digest of its
weights file (a checkpoint's, a --weights file's or a weights package's), a checkpoint's config, and the
installed versions of torch and timm read from package metadata. The network itself loads (torch) only
when something needs it: a first export, a check, --runtime torch, CUDA.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from retrieval.models import CONFIG_FILE, DEFAULT_MODEL, is_checkpoint
from retrieval.models.config import WEIGHTS_FILE, read_config
from retrieval.models.sources import packaged_weights
from retrieval.user_cache import cached_sha256

if TYPE_CHECKING:
    from retrieval.models.load import LoadedModel

RANDOM_WEIGHTS = "random:seed0"  # the digest of create_backbone's reproducible random weights
TIMM_PRETRAINED = "timm-pretrained"  # weights timm downloaded: no file of ours to digest


def installed_version(*distributions: str) -> str | None:
    """The version of the first of ``distributions`` installed, from its metadata (nothing is imported)."""
    for name in distributions:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def export_key(spec: str, weights: str, head: int | None) -> dict[str, Any]:
    """What a model's export depends on besides the runtime: its identity, the width of its linear head (None
    without one), a checkpoint's config (its data config and backbone), and the torch and timm that export it
    (timm's data config of a name)."""
    config = Path(spec) / CONFIG_FILE
    try:
        config_digest = hashlib.sha256(config.read_bytes()).hexdigest() if config.is_file() else None
    except OSError:
        config_digest = None
    return {"spec": spec, "weights": weights, "head": head, "config": config_digest,
            "torch": installed_version("torch"), "timm": installed_version("timm")}


@dataclasses.dataclass(frozen=True)
class ModelName:
    """A model spec (timm name or retr checkpoint directory), an explicit weights file, random weights or not."""

    spec: str
    weights_file: str | None = None
    pretrained: bool = True

    def export_key(self) -> dict[str, Any] | None:
        """``export_key`` of the model ``load_model`` would load, computed without loading it; None when only
        loading can tell (a folder that is not a checkpoint, a missing file: load_model then says why)."""
        if is_checkpoint(self.spec):
            ckpt = Path(self.spec).resolve()
            if self.weights_file is not None or not (ckpt / WEIGHTS_FILE).is_file():
                return None
            head = read_config(ckpt).get("embedding_dim")
            return export_key(str(ckpt), "sha256:" + cached_sha256(ckpt / WEIGHTS_FILE), head)
        if Path(self.spec).exists():
            return None
        if self.weights_file is not None:
            if not Path(self.weights_file).is_file():
                return None
            weights = "sha256:" + cached_sha256(self.weights_file)
        elif not self.pretrained:
            weights = RANDOM_WEIGHTS
        elif (packaged := packaged_weights(self.spec)) is not None:
            weights = "sha256:" + cached_sha256(packaged)
        else:
            weights = TIMM_PRETRAINED
        return export_key(self.spec, weights, None)  # a timm name has no head


def model_name(recorded: dict[str, Any] | None, model: str | None = None, weights: str | None = None,
               random_weights: bool = False) -> ModelName:
    """The model an index embeds with: the one its manifest ``recorded`` unless ``model`` is named."""
    spec = model or (recorded["spec"] if recorded else DEFAULT_MODEL)
    if weights is None and model is None and recorded:
        weights = recorded.get("weights_file")
    random = random_weights or (model is None and bool(recorded)
                                and str(recorded.get("weights", "")).startswith("random"))
    return ModelName(spec, weights, pretrained=not random)


class ModelRef:
    """A named model, loaded with torch on first need; ``check`` vets each identity it turns out to have
    (an index refuses another model's)."""

    def __init__(self, name: ModelName, *, check: Callable[[dict[str, Any]], None] | None = None,
                 loaded: LoadedModel | None = None):
        self.name, self._check, self._loaded = name, check, loaded
        self._lock = threading.Lock()

    @classmethod
    def of(cls, loaded: LoadedModel) -> "ModelRef":
        """A model already loaded."""
        return cls(ModelName(loaded.info.spec), loaded=loaded)

    @property
    def loaded(self) -> LoadedModel | None:
        return self._loaded

    def check(self, identity: dict[str, Any]) -> None:
        if self._check is not None:
            self._check(identity)

    def load(self) -> LoadedModel:
        """The network (torch, timm), loaded once and checked."""
        with self._lock:
            if self._loaded is None:
                from retrieval.models.load import load_model
                loaded = load_model(self.name.spec, weights=self.name.weights_file, pretrained=self.name.pretrained)
                self.check(loaded.info.identity())
                self._loaded = loaded
            return self._loaded
