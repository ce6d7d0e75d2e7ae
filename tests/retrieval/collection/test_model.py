from pathlib import Path

import numpy as np
import pytest

from index.errors import RetrError
from index.directory import IndexStore
from retrieval.collection.build import BuildOptions, build_index
from retrieval.runtimes.settings import InferenceSettings
from retrieval.collection.info import index_info
from retrieval.collection.query import query_index
from tests.conftest import TINY_MODEL


def _perturbed_weights(tmp_path: Path) -> Path:
    """A weights file for the tiny model, different from its random (seed 0) weights."""
    import torch

    from retrieval.models.load import load_model
    net = load_model(TINY_MODEL, pretrained=False).net
    state = {k: (v * 1.5 if v.is_floating_point() else v) for k, v in net.backbone.state_dict().items()}
    torch.save(state, tmp_path / "other.pt")
    return tmp_path / "other.pt"


def test_wrong_model_for_an_index_is_refused(tmp_path, photos, tiny_opts):
    build_index([photos], tmp_path / "ix", tiny_opts)
    other = BuildOptions(model="test_resnet", random_weights=True, inference=InferenceSettings(workers=0))
    with pytest.raises(RetrError, match="model mismatch"):
        build_index([photos], tmp_path / "ix", other)
    with pytest.raises(RetrError, match="model mismatch"):
        query_index(tmp_path / "ix", [photos / "coffee.jpg"], model="test_resnet")
    assert index_info(tmp_path / "ix")["vectors"] == 12  # nothing lost


def test_a_lost_manifest_and_another_model_re_embed_every_vector(tmp_path, photos, tiny_opts):
    import dataclasses
    ix = tmp_path / "ix"
    build_index([photos], ix, tiny_opts)  # random weights
    (ix / "manifest.json").unlink()
    same = build_index([photos], ix, tiny_opts)  # the same model: its vectors are kept
    assert (same.unchanged, same.updated, same.repaired) == (12, 0, [])
    (ix / "manifest.json").unlink()
    other = dataclasses.replace(tiny_opts, random_weights=False, weights=str(_perturbed_weights(tmp_path)))
    report = build_index([photos], ix, other)
    assert (report.unchanged, report.updated, report.total) == (0, 12, 12)
    assert "12 catalog vector(s) were made by another model" in report.repaired[0]
    fresh = build_index([photos], tmp_path / "fresh", other)
    assert fresh.added == 12
    with IndexStore.open(ix) as store, IndexStore.open(tmp_path / "fresh") as ref:
        assert store.manifest.model["weights"] == ref.manifest.model["weights"] != "random:seed0"
        rows, ref_rows = store.catalog.image_rows(), ref.catalog.image_rows()
        paths = sorted(rows)
        np.testing.assert_allclose(store.vectors_for([rows[p].id for p in paths]),
                                   ref.vectors_for([ref_rows[p].id for p in paths]), atol=1e-5)
