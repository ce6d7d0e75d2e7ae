import pytest

from tests.index.small_index import three_images


@pytest.fixture
def store(tmp_path):
    """A writable index of three images with vectors (see small_index.three_images)."""
    store = three_images(tmp_path / "ix")
    yield store
    store.close()
