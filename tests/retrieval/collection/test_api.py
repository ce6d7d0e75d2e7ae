"""retrieval.Collection: the warm Python API over an index directory."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cli.main import app
from index.errors import RetrError
from retrieval.collection.query import query_index
from tests.cli.serve_fixtures import build_photo_index
from tests.conftest import ODD, PHOTOS


@pytest.fixture(scope="module")
def index(photo_index) -> Path:
    return photo_index


@pytest.fixture(scope="module")
def col(index):
    from retrieval import Collection
    with Collection(index) as c:
        yield c


def test_import_retrieval_is_light_and_exports_collection():
    code = "import sys, retrieval; assert 'torch' not in sys.modules; print(retrieval.Collection.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "retrieval.collection.api"


def test_query_equals_retr_query_json(col, index):
    photos = [index.parent / "photos" / "chelsea.jpg", index.parent / "photos" / "rocket.jpg"]
    ours = [r.to_json() for r in col.query([str(p) for p in photos], k=5)]
    cli = json.loads(CliRunner().invoke(app, ["query", *map(str, photos), "--index", str(index), "-k", "5",
                                              "--json"]).stdout)
    assert ours == cli
    assert ours == [r.to_json() for r in query_index(index, photos, k=5)]  # the one query path


def test_every_kind_of_query_finds_the_same_image(col, index):
    path = index.parent / "photos" / "coffee.jpg"
    own_id = col.query(str(path), k=1)[0].results[0].id
    assert col.path_of(own_id) == str(path)
    vector = col.store.vectors_for([own_id])[0]
    for query in (path, str(path), Image.open(path), path.read_bytes(), own_id, np.int64(own_id), vector,
                  vector[None, :]):
        hits = col.query(query, k=3)[0].results
        assert hits[0].id == own_id and hits[0].score == pytest.approx(1.0, abs=1e-4), type(query)
    assert col.query(own_id, k=1)[0].query == f"id:{own_id}"
    assert col.query(path.read_bytes(), k=1, names=["mine"])[0].query == "mine"
    many = col.query([own_id, str(path)], k=2)
    assert [r.results[0].id for r in many] == [own_id, own_id]


def test_box_and_k(col, index):
    path = index.parent / "photos" / "chelsea.jpg"
    boxed = col.query(str(path), k=3, box=(0, 0, 120, 100))[0]
    assert boxed.box == (0, 0, 120, 100) and len(boxed.results) == 3
    assert col.query(str(path), k=3, box="0,0,120,100")[0].to_json() == boxed.to_json()
    assert len(col.query(str(path), k=50)[0].results) == 12


def test_errors_are_one_line_retr_errors(col, index):
    for bad, words in [(999, "no image with id 999"), (np.zeros(3, np.float32), "must have 256 values"),
                       (b"not an image", "not an image"), (ODD / "truncated.jpg", "truncated"),
                       (index / "missing.jpg", "query image not found"), (3.5, "not float"), (True, "not True")]:
        with pytest.raises(RetrError, match=words):
            col.query(bad)
    with pytest.raises(RetrError, match="at least 1"):
        col.query(1, k=0)
    with pytest.raises(RetrError, match="has no regions"):
        col.query(1, regions=True)


def test_concurrent_queries_equal_sequential(col, index):
    photos = sorted((index.parent / "photos").glob("*.jpg"))
    sequential = [col.query(str(p), k=4)[0].to_json() for p in photos]
    with ThreadPoolExecutor(8) as pool:
        concurrent = list(pool.map(lambda p: col.query(str(p), k=4)[0].to_json(), photos * 2))
    assert concurrent == sequential * 2


def test_info_add_reload_and_in_flight_queries(tmp_path):
    from retrieval import Collection
    index = build_photo_index(tmp_path / "photos", tmp_path / "ix", names=["coffee", "brick"])
    extra = tmp_path / "more"
    extra.mkdir()
    (extra / "rocket.jpg").write_bytes((PHOTOS / "rocket.jpg").read_bytes())
    with Collection(index) as col:
        assert col.info()["images"] == 2 and col.refresh() is False  # nothing changed
        version = col.version
        with col._use() as old:
            report = col.add([tmp_path / "photos", extra])
            assert report.added == 1 and col.version != version
            assert old.store.search(old.store.vectors_for([1]), 5).ids.shape == (1, 5)  # old one still answers
            assert len(old.store.search(old.store.vectors_for([1]), 5)[0]) == 2
        assert col.info()["images"] == 3
        assert col.query(str(extra / "rocket.jpg"), k=1)[0].results[0].path == str(extra / "rocket.jpg")
        dup = col.duplicates_of((PHOTOS / "brick.jpg").read_bytes())
        assert [m.path for m in dup] == [str(tmp_path / "photos" / "brick.jpg")]


def test_add_embeds_with_the_collection_s_inference_settings_unless_told_otherwise(tmp_path, monkeypatch):
    from retrieval import Collection
    import retrieval.collection.build as build
    from tests.conftest import cpu
    index = build_photo_index(tmp_path / "photos", tmp_path / "ix", names=["coffee", "brick"])
    seen = []

    class Spy(build.Embedder):
        def __init__(self, model, settings, **kwargs):
            seen.append(settings)
            super().__init__(model, settings, **kwargs)
    monkeypatch.setattr(build, "Embedder", Spy)
    settings = cpu("onnx", batch_size=3, workers=1)
    for i, name in enumerate(("rocket", "chelsea")):
        (tmp_path / "photos" / f"{name}.jpg").write_bytes((PHOTOS / f"{name}.jpg").read_bytes())
        with Collection(index, inference=settings) as col:
            options = {} if i == 0 else {"inference": cpu("torch", workers=0)}
            assert col.add([tmp_path / "photos"], **options).added == 1
            assert col.query(str(tmp_path / "photos" / f"{name}.jpg"), k=1)[0].results[0].path.endswith(name + ".jpg")
    assert seen == [settings, cpu("torch", workers=0)]


def test_threads_share_one_model(col):
    embedders = set()

    def grab() -> None:
        with col._use() as warm:
            embedders.add(id(warm.embedder))
    threads = [threading.Thread(target=grab) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(embedders) == 1


def test_query_each_equals_query_with_errors_per_image(index):
    from retrieval import Collection
    from retrieval.images.decode import ImageLoadError
    from retrieval.workers import usable_cores
    photos = sorted((index.parent / "photos").glob("*.jpg"))[:6]
    with Collection(index, streams=True) as col:
        warm = col._warm
        if warm.embedder.runtime_used == "openvino" and usable_cores() >= 2:
            assert warm.streams is not None and warm.streams.jobs >= 2  # the group runs as parallel streams
        queries = [p.read_bytes() for p in photos[:3]] + [b"junk"] + [str(p) for p in photos[3:]] + [b""]
        names = [f"q{i}" for i in range(len(queries))]
        got = col.query_each(queries, names=names, k=4)
        assert isinstance(got[3], ImageLoadError) and isinstance(got[-1], ImageLoadError)
        for i, photo in enumerate(photos):
            one = got[i if i < 3 else i + 1]
            alone = col.query(str(photo), k=4)[0]
            assert one.query == names[i if i < 3 else i + 1]
            assert [h.id for h in one.results] == [h.id for h in alone.results]
            assert [h.score for h in one.results] == pytest.approx([h.score for h in alone.results], abs=1e-5)
        assert col.query_each([photos[0].read_bytes()], names=["one"], k=2)[0].results[0].path == str(photos[0])


def test_streams_give_the_sessions_vectors(index):
    from retrieval import Collection
    from retrieval.runtimes.check import probe_batch
    with Collection(index, streams=True) as col:
        warm = col._warm
        if warm.streams is None:
            pytest.skip(f"no parallel streams here (runtime {warm.embedder.runtime_used})")
        probe = probe_batch(warm.embedder.prep.size)
        alone = warm.embedder(probe)
        streamed = warm.streams(p[None] for p in probe)
        np.testing.assert_allclose(streamed, alone, atol=1e-5)
        assert warm.streams(iter(())).shape[0] == 0


def test_a_search_does_not_wait_for_a_forward(col):
    vector = col.store.vectors_for([1])
    done = threading.Event()

    def search() -> None:
        col.query(vector, k=2)
        done.set()
    with col._model_lock:  # a forward pass in progress
        thread = threading.Thread(target=search)
        thread.start()
        assert done.wait(timeout=30)  # the faiss search ran meanwhile
    thread.join(timeout=30)


def test_streams_wait_for_started_images_when_a_later_one_fails(index):
    from retrieval import Collection
    from retrieval.runtimes.check import probe_batch
    with Collection(index, streams=True) as col:
        streams = col._warm.streams
        if streams is None:
            pytest.skip("no parallel streams here")
        probe = probe_batch(col._warm.embedder.prep.size)

        def images():
            yield probe[:1]
            yield probe[1:2]
            raise OSError("the third image could not be read")
        with pytest.raises(OSError):
            streams(images())
        assert not streams.busy()  # the two started ones finished before the error came back
        assert streams(iter([probe[:1]])).shape[0] == 1  # and the requests are free again


def test_streams_are_freed_with_their_collection(index):
    """A swap to another model (or a closed Collection) lets the old streams go, and with them the compiled
    network: their requests' callbacks hold no reference back (each swap kept ~47 MB for good when they did)."""
    import gc
    import weakref

    from retrieval import Collection
    from retrieval.runtimes.check import probe_batch
    with Collection(index, streams=True) as col:
        streams = col._warm.streams
        if streams is None:
            pytest.skip("no parallel streams here")
        probe = probe_batch(col._warm.embedder.prep.size)
        assert streams(p[None] for p in probe[:3]).shape[0] == 3
        gone = weakref.ref(streams)
        del streams
    del col
    gc.collect()
    assert gone() is None
