"""Shared fixtures: real sample photos, odd files, a tiny random-weight model, a PostgreSQL URL in CI."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a hub: fail fast if something tries


@pytest.fixture(scope="session", autouse=True)
def _export_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Runtime exports (retrieval.runtimes) go to one cache for the session, never to ~/.cache/retr."""
    os.environ["RETR_CACHE"] = str(tmp_path_factory.mktemp("retr-cache"))

DATA = Path(__file__).parent / "data"
PHOTOS = DATA / "photos"
ODD = DATA / "odd"
TINY_MODEL = "test_efficientnet"  # timm's tiny test network (random weights, seeded): fast on CPU


def cpu(runtime: str = "auto", precision: str = "f32", **settings):
    """Inference settings on the CPU with ``runtime`` (retrieval.runtimes.settings)."""
    from retrieval.runtimes.settings import InferenceSettings
    return InferenceSettings(device="cpu", runtime=runtime, precision=precision, **settings)


def copy_photos(folder: Path, names: tuple[str, ...]) -> Path:
    """``folder`` holding copies of the named sample photos (``<name>.jpg``)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(PHOTOS / f"{name}.jpg", folder / f"{name}.jpg")
    return folder


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A private copy of the sample photos (tests may change it)."""
    out = tmp_path / "photos"
    shutil.copytree(PHOTOS, out, ignore=shutil.ignore_patterns("*.md"))
    return out


@pytest.fixture
def tiny_opts():
    from retrieval.collection.build import BuildOptions
    from retrieval.runtimes.settings import InferenceSettings
    return BuildOptions(model=TINY_MODEL, random_weights=True, inference=InferenceSettings(batch_size=4, workers=0))


@pytest.fixture(scope="session")
def photo_index(tmp_path_factory) -> Path:
    """An index of copies of all the sample photos (tiny random-weight model), shared read-only."""
    from tests.cli.serve_fixtures import build_photo_index
    root = tmp_path_factory.mktemp("photo-index")
    return build_photo_index(root / "photos", root / "ix")


@pytest.fixture(scope="session")
def pg_url() -> str:
    """A PostgreSQL URL (.ci/run starts a server); without one, skipped locally and failed in CI."""
    url = os.environ.get("RETR_TEST_PG_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI must provide RETR_TEST_PG_URL (see .ci/run)")
        pytest.skip("no PostgreSQL server (set RETR_TEST_PG_URL)")
    return url


@pytest.fixture
def pg_catalog_url(pg_url: str) -> str:
    """A PostgreSQL catalog emptied for this test."""
    from sqlalchemy import create_engine

    from index.catalog.schema import Base
    engine = create_engine(pg_url)
    Base.metadata.drop_all(engine)
    engine.dispose()
    return pg_url
