"""`retr serve`'s API through FastAPI's TestClient over a small index of the sample photos."""
from __future__ import annotations

import io
import json
import os
import shutil
import threading
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from cli.main import app as cli_app
from tests.cli.serve_fixtures import build_photo_index, serving
from tests.conftest import ODD

runner = CliRunner()
HIT_KEYS = {"rank", "id", "path", "score"}


@pytest.fixture(scope="module")
def index(photo_index) -> Path:
    return photo_index


@pytest.fixture(scope="module")
def client(index):
    with serving(index) as c:
        yield c


def upload(client, path_or_bytes, name="q.jpg", **params):
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    return client.post("/api/search", params=params, files={"image": (name, data, "image/jpeg")})


def test_health_ready_info(client, index):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    info = client.get("/api/info").json()
    cli = json.loads(runner.invoke(cli_app, ["index", "info", "--index", str(index), "--json"]).stdout)
    assert set(info) == set(cli) and info["images"] == cli["images"] == 12
    assert info["model"] == "test_efficientnet"
    docs = client.get("/docs")  # Swagger UI from the installed package: nothing from a CDN
    assert docs.status_code == 200 and "https://" not in docs.text and "http://" not in docs.text
    for asset in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "/swagger-init.js"):
        assert asset in docs.text and client.get(asset).status_code == 200, asset
    assert client.get("/openapi.json").json()["paths"]["/api/search"].keys() == {"get", "post"}


def test_search_upload_equals_retr_query_json(client, index):
    photo = index.parent / "photos" / "coffee.jpg"
    got = upload(client, photo, name="coffee.jpg", k=5)
    assert got.status_code == 200, got.text
    body = got.json()
    assert set(body) == {"query", "results"} and body["query"] == "coffee.jpg"
    assert all(set(h) == HIT_KEYS for h in body["results"])
    assert [h["rank"] for h in body["results"]] == [1, 2, 3, 4, 5]
    assert body["results"][0]["path"] == str(photo)
    cli = json.loads(runner.invoke(cli_app, ["query", str(photo), "--index", str(index), "-k", "5", "--json"]).stdout)
    assert [(h["id"], h["path"]) for h in body["results"]] == [(h["id"], h["path"]) for h in cli[0]["results"]]
    assert [h["score"] for h in body["results"]] == pytest.approx([h["score"] for h in cli[0]["results"]], abs=1e-5)


def test_search_by_id_and_its_options(client, index):
    body = client.get("/api/search", params={"id": 3, "k": 4}).json()
    assert body["query"] == "id:3" and len(body["results"]) == 4
    assert body["results"][0]["id"] == 3 and body["results"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert client.get("/api/search", params={"id": 3, "k": 2, "nprobe": 4}).json()["results"] == body["results"][:2]
    boxed = client.get("/api/search", params={"id": 3, "k": 2, "box": "0,0,100,80"}).json()
    assert boxed["query_box"] == [0, 0, 100, 80] and len(boxed["results"]) == 2
    no_regions = client.get("/api/search", params={"id": 3, "regions": "true"})
    assert no_regions.status_code == 400 and "has no regions" in no_regions.json()["detail"]


def _bomb_png() -> bytes:
    return (ODD / "bomb.png").read_bytes()


@pytest.mark.parametrize("case, data, status, words", [
    ("non-image", b"hello, this is text", 400, "not an image"),
    ("truncated", (ODD / "truncated.jpg").read_bytes(), 400, "truncated"),
    ("zero bytes", b"", 400, "empty file"),
    ("bomb", None, 400, "decompression bomb"),
])
def test_bad_uploads_are_one_line_4xx(client, case, data, status, words):
    got = upload(client, data if data is not None else _bomb_png(), name=case)
    assert got.status_code == status, (case, got.text)
    detail = got.json()["detail"]
    assert words in detail and "\n" not in detail, (case, detail)
    assert upload(client, (ODD / "image.webp").read_bytes()).status_code == 200  # still serving


def test_bad_parameters_are_4xx(client):
    for params, status, words in [({"id": 999}, 404, "no image with id 999"),
                                  ({"id": 1, "box": "1,2,3"}, 400, "expected x0,y0,x1,y1"),
                                  ({"id": 1, "box": "5,5,1,1"}, 400, "x1 must exceed x0"),
                                  ({"id": 1, "box": "90000,90000,90010,90010"}, 400, "outside the query image"),
                                  ({"id": 1, "k": 0}, 422, "greater than or equal to 1"),
                                  ({"id": "x"}, 422, "valid integer"),
                                  ({}, 422, "id: Field required")]:
        got = client.get("/api/search", params=params)
        assert got.status_code == status and words in got.json()["detail"], (params, got.text)


def test_upload_limit(index):
    with serving(index, max_upload=1000) as small:
        got = upload(small, index.parent / "photos" / "coffee.jpg")
        assert got.status_code == 413 and "upload too large: over 1,000 bytes" in got.json()["detail"]
        assert small.get("/api/search", params={"id": 1, "k": 1}).status_code == 200


def test_api_key(index):
    with serving(index, api_key="s3cret") as locked:
        assert locked.get("/healthz").status_code == 200
        for route in ("/api/info", "/api/search?id=1", "/api/images/1", "/api/duplicates", "/api/clusters"):
            got = locked.get(route)
            assert got.status_code == 401 and "API key" in got.json()["detail"], route
            assert locked.get(route, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert locked.get("/api/info", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        locked.cookies.set("retr_key", "s3cret")  # what the web UI sends with <img> requests
        assert locked.get("/api/images/1/thumbnail").status_code == 200


def test_images_only_catalog_rows(client, index):
    path = client.get("/api/search", params={"id": 2, "k": 1}).json()["results"][0]["path"]
    assert client.get("/api/images/2").content == Path(path).read_bytes()
    thumb = client.get("/api/images/2/thumbnail", params={"size": 64})
    assert thumb.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.content)).size) == 64
    assert client.get("/api/images/2/thumbnail", params={"size": 64}).content == thumb.content  # cached
    assert client.get("/api/images/999").status_code == 404
    for outside in ("/api/images/..%2F..%2Fetc%2Fpasswd", "/api/images/%2Fetc%2Fpasswd", "/api/images/-1"):
        got = client.get(outside)
        assert got.status_code in (404, 422) and b"root:" not in got.content, outside
    assert client.get("/api/images/2/thumbnail", params={"size": 5000}).status_code == 422


def test_concurrent_queries_equal_sequential_and_batch(index):
    photos = sorted((index.parent / "photos").glob("*.jpg"))
    with serving(index, batching=True, max_batch=16, max_wait=0.2) as c:
        sequential = [upload(c, p, name=p.name, k=4).json() for p in photos]
        c.app.state.retr.batcher.batches.clear()
        out: dict[str, dict] = {}

        def ask(p: Path) -> None:
            out[p.name] = upload(c, p, name=p.name, k=4).json()
        threads = [threading.Thread(target=ask, args=(p,)) for p in photos]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert max(c.app.state.retr.batcher.batches) > 1  # requests that arrived together shared a batch
    for seq in sequential:
        conc = out[seq["query"]]
        assert [h["id"] for h in conc["results"]] == [h["id"] for h in seq["results"]]
        assert [h["score"] for h in conc["results"]] == pytest.approx([h["score"] for h in seq["results"]], abs=1e-4)


def test_micro_batching_is_on_by_default_and_a_lone_request_runs_alone(client):
    state = client.app.state.retr
    assert state.collection.embedder.device_type == "cpu" and state.batching is True
    parallel = state.collection.parallel_requests  # streams: groups of twice the requests running at once
    assert state.batcher.max_batch == (min(16, 2 * parallel) if parallel else 16)
    state.batcher.batches.clear()
    assert client.post("/api/search", files={"image": ("q.jpg", (ODD / "image.webp").read_bytes())}).status_code == 200
    assert state.batcher.batches == [1]  # nothing else queued: it did not wait for company


def test_a_bad_upload_in_a_batch_fails_only_itself(index):
    photos = sorted((index.parent / "photos").glob("*.jpg"))[:5]
    uploads = [p.read_bytes() for p in photos] + [b"not an image", (ODD / "image.webp").read_bytes()[:100]]
    names = [p.name for p in photos] + ["junk.jpg", "cut.webp"]
    with serving(index, batching=True, max_batch=16, max_wait=0.5) as c:
        sequential = {p.name: upload(c, p, name=p.name, k=3).json() for p in photos}
        c.app.state.retr.batcher.batches.clear()
        out: dict[str, object] = {}

        def ask(data: bytes, name: str) -> None:
            out[name] = upload(c, data, name=name, k=3)
        threads = [threading.Thread(target=ask, args=pair) for pair in zip(uploads, names)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert max(c.app.state.retr.batcher.batches) > 1
        assert c.get("/healthz").status_code == 200
    for name in ("junk.jpg", "cut.webp"):
        assert out[name].status_code == 400 and out[name].json()["detail"].startswith("cannot read the uploaded image")
    for name, seq in sequential.items():
        got = out[name].json()
        assert [h["id"] for h in got["results"]] == [h["id"] for h in seq["results"]]
        assert [h["score"] for h in got["results"]] == pytest.approx([h["score"] for h in seq["results"]], abs=1e-4)


def test_micro_batching_off_serves_each_request_by_itself(index):
    photo = index.parent / "photos" / "coffee.jpg"
    with serving(index, batching=False) as c:
        assert c.app.state.retr.collection._warm.streams is None  # no streams opened without batching
        got = upload(c, photo, name="coffee.jpg", k=3)
        assert got.status_code == 200 and got.json()["results"][0]["path"] == str(photo)
        assert c.app.state.retr.batcher.batches == []
        assert upload(c, b"\x00" * 10, k=3).status_code == 400


def test_live_swap_after_rebuild(tmp_path):
    index = build_photo_index(tmp_path / "photos", tmp_path / "ix", names=["coffee", "brick", "coins"])
    with serving(index) as c:
        assert c.get("/api/info").json()["images"] == 3
        before = upload(c, tmp_path / "photos" / "coffee.jpg", k=10).json()["results"]
        collection = c.app.state.retr.collection
        with collection._use() as old:  # a query in flight holds the old version ...
            build_photo_index(tmp_path / "photos", index, names=["coffee", "brick", "coins", "rocket", "camera"])
            assert c.get("/api/info").json()["images"] == 5
            after = upload(c, tmp_path / "photos" / "rocket.jpg", k=10).json()["results"]
            vector = old.store.vectors_for([1])
            assert len(old.store.search(vector, 10)[0]) == 3  # ... and still searches it after the swap
            assert len(collection.store.search(vector, 10)[0]) == 5
    assert len(before) == 3 and len(after) == 5
    assert after[0]["path"] == str(tmp_path / "photos" / "rocket.jpg")


def test_duplicates_quarantine_and_undo(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("coffee", "brick", "chelsea"):
        shutil.copy(Path(__file__).parents[1] / "data" / "photos" / f"{name}.jpg", folder / f"{name}.jpg")
    shutil.copy(folder / "chelsea.jpg", folder / "chelsea copy.jpg")
    index = build_photo_index(folder, tmp_path / "ix", names=[])
    with serving(index, quarantine_dir=str(tmp_path / "q")) as c:
        collection, computed = c.app.state.retr.collection, []
        real = collection.duplicates
        collection.duplicates = lambda **o: computed.append(1) or real(**o)
        dups = c.get("/api/duplicates").json()
        assert {"n_images", "n_duplicates", "groups", "ids"} <= set(dups) and dups["n_duplicates"] == 1
        assert c.get("/api/duplicates").json() == dups and len(computed) == 1  # cached for this index version
        group = dups["groups"][0]
        pair = {group["keep"], group["duplicates"][0]["path"]}
        assert pair == {str(folder / "chelsea.jpg"), str(folder / "chelsea copy.jpg")}
        assert set(dups["ids"]) == pair
        moved = c.post("/api/duplicates/quarantine", json={"keep": group["keep"]}).json()
        assert len(moved["done"]) == 1 and moved["manifest"].startswith(str(tmp_path / "q"))
        gone = moved["done"][0]["path"]
        assert not Path(gone).exists() and c.get("/api/info").json()["images"] == 3
        assert c.get("/api/duplicates").json()["groups"] == []
        assert c.post("/api/duplicates/quarantine", json={"keep": "/nope.jpg"}).status_code == 400
        outside = c.post("/api/duplicates/undo", json={"manifest": str(tmp_path / "elsewhere.jsonl")})
        assert outside.status_code == 400 and "not a quarantine manifest" in outside.json()["detail"]
        back = c.post("/api/duplicates/undo", json={"manifest": moved["manifest"]}).json()
        assert len(back["done"]) == 1 and Path(gone).exists()
        assert c.get("/api/info").json()["images"] == 4 and c.get("/api/duplicates").json()["n_duplicates"] == 1
        assert len(computed) == 3  # once more after the quarantine, once more after the undo


def test_clusters(tmp_path):
    index = build_photo_index(tmp_path / "photos", tmp_path / "ix")
    with serving(index) as c:
        assert c.get("/api/clusters").json() == {"run": None, "clusters": []}
        result = runner.invoke(cli_app, ["cluster", "--index", str(index), "-k", "3", "--json"])
        assert result.exit_code == 0, result.output
        body = c.get("/api/clusters").json()
    assert body["run"]["k"] == 3 and len(body["clusters"]) == 3
    assert sum(len(cl["members"]) for cl in body["clusters"]) == 12
    for cl in body["clusters"]:
        assert cl["members"][0]["medoid"] and cl["medoid"] == cl["members"][0]
        assert sum(m["medoid"] for m in cl["members"]) == 1


def test_web_ui_is_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "<title>retr</title>" in page.text
    for asset in ("/app.js", "/style.css"):
        got = client.get(asset)
        assert got.status_code == 200 and "http://" not in got.text and "https://" not in got.text


def test_serve_without_an_index_is_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    result = runner.invoke(cli_app, ["serve", "--index", str(tmp_path / "none")])
    assert result.exit_code == 1 and result.output.startswith("error: no index at")
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"  # set before torch and faiss load (idle threads sleep)
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    runner.invoke(cli_app, ["serve", "--index", str(tmp_path / "none")])
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"  # the user's own setting is kept
