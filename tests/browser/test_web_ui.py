"""The web UI in a real browser: Playwright driving Debian's Chromium headless against `retr serve`.

Screenshots of every page are kept under the test's tmp folder and copied to bench-out/screenshots/; those the
docs show are also saved to docs/assets/screenshots/ (see ``keep_for_docs``).
"""
from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
from PIL import Image, ImageEnhance

from tests.cli.serve_fixtures import build_photo_index
from tests.conftest import PHOTOS

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
KEEP = Path(__file__).parents[2] / "bench-out" / "screenshots"
DOCS = Path(__file__).parents[2] / "docs" / "assets" / "screenshots"
FOR_DOCS = {"2-search-results": "search-results", "5-duplicates": "duplicates", "9-clusters": "clusters",
            "10-region-search": "region-search", "13-api-key-prompt": "api-key-prompt"}
WAIT_MS = 30_000


def _need_browser() -> None:
    problem = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problem = "playwright is not installed (pip install -e '.[dev]')"
    if problem is None and not os.access(CHROMIUM, os.X_OK):
        problem = f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests must run in CI: {problem}")
        pytest.skip(problem)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`retr serve`'s app on uvicorn on 127.0.0.1 and a free port, in a thread; its base URL and folders."""
    _need_browser()
    root = tmp_path_factory.mktemp("ui")
    photos = root / "photos"
    build_photo_index(photos, root / "ix", names=["chelsea", "coffee", "brick", "rocket", "astronaut", "coins"])
    shutil.copy(photos / "coffee.jpg", photos / "coffee copy.jpg")  # an exact duplicate to quarantine
    build_photo_index(photos, root / "ix", names=[])
    edited = root / "chelsea-edited.jpg"  # as `make demo`: resized, brightened, recompressed
    im = Image.open(PHOTOS / "chelsea.jpg")
    ImageEnhance.Brightness(im.resize((300, 225))).enhance(1.15).save(edited, quality=60)
    with running(root / "ix", quarantine_dir=str(root / "q")) as url:
        yield {"url": url, "photos": photos, "edited": edited, "shots": root / "shots"}


@contextlib.contextmanager
def running(index: Path, **options) -> Iterator[str]:
    """`retr serve`'s app on uvicorn on 127.0.0.1 and a free port, in a thread, until it is ready; its URL."""
    import httpx
    import uvicorn

    from cli.server.app import ServeOptions, create_app
    from retrieval.collection.api import Collection
    streams = options.get("batching", True)  # as `retr serve`
    app = create_app(lambda: Collection(index, streams=streams), ServeOptions(**options))
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "retr serve did not become ready in 60 s"
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(WAIT_MS)
    requests: list[str] = []
    pg = context.new_page()
    pg.on("request", lambda r: requests.append(r.url))
    yield pg
    context.close()
    outside = [u for u in requests if not u.startswith((server["url"], "blob:", "data:"))]
    assert not outside, f"the UI fetched from outside the server: {outside}"


def shot(page, server, name: str) -> None:
    server["shots"].mkdir(parents=True, exist_ok=True)
    path = server["shots"] / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    KEEP.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, KEEP / path.name)
    if name in FOR_DOCS:
        keep_for_docs(path, DOCS / f"{FOR_DOCS[name]}.png")


def keep_for_docs(shot_path: Path, target: Path) -> None:
    """The docs' copy of a screenshot, replaced when the page looks different: another size, or over 1% of the
    pixels changed. Two runs of the same page differ in under 0.3% (timings, temporary folder names), so the
    docs' pictures stay put until the page itself changes."""
    import numpy as np
    new = np.asarray(Image.open(shot_path).convert("RGB"), dtype=np.int16)
    if target.exists():
        old = np.asarray(Image.open(target).convert("RGB"), dtype=np.int16)
        if old.shape == new.shape and (np.abs(old - new).max(axis=2) > 16).mean() <= 0.01:
            return
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot_path, target)


def test_search_by_upload_then_more_like_this(page, server):
    from playwright.sync_api import expect
    page.goto(server["url"] + "/")
    expect(page.get_by_text("Drop an image here")).to_be_visible()
    expect(page.locator("#info")).to_contain_text("7 images")
    shot(page, server, "1-search-empty")
    page.locator("#file").set_input_files(str(server["edited"]))
    expect(page.locator("#status")).to_contain_text("results in")
    cards = page.locator("#results .card")
    expect(cards.first).to_contain_text("chelsea.jpg")  # the edited copy finds its original first
    expect(cards.first.locator("img")).to_have_js_property("complete", True)
    shot(page, server, "2-search-results")

    second = cards.nth(1)
    name = second.locator(".name").inner_text()
    second.click()  # "more like this"
    expect(page.locator("#query-name")).to_contain_text("catalog image")
    expect(cards.first.locator(".name")).to_have_text(name)  # a catalog image finds itself first
    assert "#/search?id=" in page.url
    permalink = page.url
    shot(page, server, "3-more-like-this")

    page.goto("about:blank")
    page.goto(permalink)  # the permalink gives the same search again
    expect(page.locator("#results .card").first.locator(".name")).to_have_text(name)


def test_bad_upload_says_what_happened(page, server, tmp_path):
    from playwright.sync_api import expect
    bad = tmp_path / "broken.jpg"
    bad.write_bytes((PHOTOS / "coffee.jpg").read_bytes()[:2000])
    page.goto(server["url"] + "/")
    page.locator("#file").set_input_files(str(bad))
    expect(page.get_by_role("alert")).to_contain_text("Search failed: cannot read the uploaded image")
    shot(page, server, "4-search-error")


def test_duplicates_quarantine_then_undo(page, server):
    from playwright.sync_api import expect
    page.goto(server["url"] + "/#/duplicates")
    group = page.get_by_role("region", name="group 1")
    expect(group).to_contain_text("kept")
    expect(group).to_contain_text("exact")
    shot(page, server, "5-duplicates")
    copy, original = server["photos"] / "coffee copy.jpg", server["photos"] / "coffee.jpg"

    group.get_by_role("button", name="Quarantine 1 duplicate").click()
    expect(page.get_by_role("dialog")).to_contain_text("Move 1 duplicate")
    shot(page, server, "6-duplicates-confirm")
    page.get_by_role("button", name="Move to quarantine").click()
    expect(page.locator("#undo-bar")).to_contain_text("Moved 1 file to quarantine")
    expect(page.get_by_text("No duplicates found.")).to_be_visible()
    assert copy.exists() != original.exists()  # one of the pair moved out
    shot(page, server, "7-duplicates-quarantined")

    page.get_by_role("button", name="Undo").click()
    page.get_by_role("dialog").get_by_role("button", name="Undo").click()
    expect(page.get_by_role("alert")).to_contain_text("Restored 1 file")
    expect(page.get_by_role("region", name="group 1")).to_be_visible()
    assert copy.exists() and original.exists()
    shot(page, server, "8-duplicates-undone")


def test_clusters_page(page, server):
    from playwright.sync_api import expect
    from typer.testing import CliRunner

    from cli.main import app
    index = server["photos"].parent / "ix"
    page.goto(server["url"] + "/#/clusters")
    expect(page.get_by_text("No clustering run yet")).to_be_visible()
    result = CliRunner().invoke(app, ["cluster", "--index", str(index), "-k", "2", "--json"])
    assert result.exit_code == 0, result.output
    page.reload()
    expect(page.locator("#cl-status")).to_contain_text("2 clusters of 7 images")
    expect(page.locator(".cluster").first.locator(".member").first).to_contain_text("medoid")
    shot(page, server, "9-clusters")


def test_box_drawing_searches_a_region_and_region_hits_show_their_box(browser, server, tmp_path):
    from playwright.sync_api import expect

    from retrieval.collection.build import BuildOptions, build_index
    from retrieval.runtimes.settings import InferenceSettings
    from retrieval.regions import RegionOptions
    from tests.conftest import TINY_MODEL, copy_photos
    photos = copy_photos(tmp_path / "photos", ("chelsea", "coffee", "rocket", "astronaut"))
    build_index([photos], tmp_path / "ix", BuildOptions(model=TINY_MODEL, random_weights=True,
                                                        regions=RegionOptions("grid:1,2"),
                                                        inference=InferenceSettings(workers=0)))
    with running(tmp_path / "ix") as url:
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        context.set_default_timeout(WAIT_MS)
        page = context.new_page()
        searches: list[str] = []
        page.on("request", lambda r: searches.append(r.url) if "/api/search" in r.url else None)
        page.goto(url + "/#/search?id=1&k=12")
        expect(page.locator("#results .card").first).to_be_visible()
        page.get_by_label("Search regions").check()
        expect(page.locator("#results .card .box").first).to_be_attached()  # region hits show their box
        draw = page.locator("#draw").bounding_box()
        page.mouse.move(draw["x"] + draw["width"] * 0.2, draw["y"] + draw["height"] * 0.2)
        page.mouse.down()
        page.mouse.move(draw["x"] + draw["width"] * 0.6, draw["y"] + draw["height"] * 0.7, steps=5)
        page.mouse.up()
        expect(page.locator("#draw .box")).to_be_visible()
        page.get_by_role("button", name="Search this region").click()
        expect(page.locator("#status")).to_contain_text("results in")
        assert "box=" in searches[-1] and "regions=true" in searches[-1]
        expect(page.locator("#permalink")).to_have_attribute("href", re.compile(r"box=\d+%2C\d+%2C\d+%2C\d+"))
        page.wait_for_timeout(300)  # the region boxes are drawn once each full image is loaded
        shot(page, server, "10-region-search")
        context.close()


JS_FILE = """([b64, name]) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], name, { type: "image/jpeg" }));
    return dt;
}"""


def test_drop_and_paste_an_image(page, server):
    from playwright.sync_api import expect
    edited = base64.b64encode(server["edited"].read_bytes()).decode()
    page.goto(server["url"] + "/")
    drop = page.locator("#drop")
    dropped = page.evaluate_handle(JS_FILE, [edited, "dropped.jpg"])
    drop.dispatch_event("dragover", {"dataTransfer": dropped})
    expect(drop).to_have_class(re.compile(r"\bover\b"))  # the drop zone shows it will take the file
    drop.dispatch_event("drop", {"dataTransfer": dropped})
    expect(page.locator("#status")).to_contain_text("results in")
    expect(page.locator("#query-name")).to_contain_text("dropped.jpg")
    expect(page.locator("#results .card").first).to_contain_text("chelsea.jpg")
    shot(page, server, "11-search-dropped")

    page.goto(server["url"] + "/#/clusters")  # pasting on another page searches with the pasted image
    page.evaluate("""(dt) => document.dispatchEvent(new ClipboardEvent("paste", { clipboardData: dt }))""",
                  page.evaluate_handle(JS_FILE, [edited, "pasted.jpg"]))
    expect(page.locator("#page-search")).to_be_visible()
    expect(page.locator("#status")).to_contain_text("results in")
    expect(page.locator("#query-name")).to_contain_text("pasted.jpg")
    expect(page.locator("#results .card").first).to_contain_text("chelsea.jpg")
    shot(page, server, "12-search-pasted")


KEY = "s3cret+key/with=odd%chars"  # the UI must send any key as it is


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    """A server that needs an API key."""
    _need_browser()
    root = tmp_path_factory.mktemp("ui-key")
    build_photo_index(root / "photos", root / "ix", names=["chelsea", "coffee", "brick"])
    with running(root / "ix", api_key=KEY) as url:
        yield {"url": url, "shots": root / "shots"}


def test_api_key_prompt(browser, keyed):
    from playwright.sync_api import expect
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.goto(keyed["url"] + "/#/search?id=1&k=12")  # /api/info and /api/search refused at once: one prompt
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("This server needs an API key")
    shot(page, keyed, "13-api-key-prompt")
    dialog.get_by_label("API key").fill("wrong")
    dialog.get_by_role("button", name="Use key").click()
    expect(dialog).to_contain_text("That key was not accepted")
    shot(page, keyed, "14-api-key-refused")
    dialog.get_by_label("API key").fill(KEY)
    dialog.get_by_role("button", name="Use key").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#info")).to_contain_text("3 images")
    first = page.locator("#results .card").first
    expect(first.locator(".name")).to_have_text("brick.jpg")
    expect(first.locator("img")).to_have_js_property("complete", True)
    assert first.locator("img").evaluate("img => img.naturalWidth") > 0  # thumbnails load with the key too
    query = page.locator("#query-img")  # asked for before the key was given: asked for again after
    page.wait_for_function("() => document.getElementById('query-img').naturalWidth > 0")
    expect(query).to_have_js_property("complete", True)
    shot(page, keyed, "15-api-key-accepted")
    context.close()


def test_duplicates_page_lists_other_shots_apart(browser, server, tmp_path):
    """A stereo pair (two views of one scene) and an edited copy of one view: the copy is a group to
    quarantine, the other view a similar group with no quarantine button."""
    from playwright.sync_api import expect
    from skimage import data

    from retrieval.collection.build import BuildOptions, build_index
    from retrieval.runtimes.settings import InferenceSettings
    from tests.conftest import TINY_MODEL
    photos = tmp_path / "scene"
    photos.mkdir()
    left, right = (Image.fromarray(x).convert("RGB").resize((900, 600)) for x in data.stereo_motorcycle()[:2])
    left.save(photos / "left.jpg", quality=92)
    right.save(photos / "right.jpg", quality=90)
    ImageEnhance.Contrast(left.resize((600, 400))).enhance(1.15).save(photos / "left small.jpg", quality=60)
    build_index([photos], tmp_path / "ix", BuildOptions(model=TINY_MODEL, random_weights=True,
                                                         inference=InferenceSettings(batch_size=4, workers=0)))
    with running(tmp_path / "ix", quarantine_dir=str(tmp_path / "q")) as url:
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        context.set_default_timeout(WAIT_MS)
        page = context.new_page()
        try:
            page.goto(url + "/#/duplicates")
            group = page.get_by_role("region", name="group 1")
            expect(group).to_contain_text("copy · verified")
            expect(group.get_by_role("button", name="Quarantine 1 duplicate")).to_be_visible()
            similar = page.get_by_role("region", name="similar 1")
            expect(similar).to_contain_text("similar · other shot")
            expect(similar).to_contain_text("right.jpg")
            expect(similar.get_by_role("button")).to_have_count(0)
            expect(page.locator("#dup-status")).to_contain_text("1 similar group")
            shot(page, {**server, "shots": server["shots"]}, "9-duplicates-similar")
        finally:
            context.close()


def test_api_docs_render_offline_under_the_csp(page, server):
    """/docs is Swagger UI from the installed package: it renders with nothing fetched from outside and no
    request refused by the page's Content-Security-Policy."""
    from playwright.sync_api import expect
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(server["url"] + "/docs")
    expect(page.get_by_role("heading", name="retr")).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_text("/api/search").first).to_be_visible(timeout=WAIT_MS)
    shot(page, server, "16-api-docs")
    assert not refused, refused


def test_the_ui_keeps_to_its_csp(page, server):
    """The search page, results and a drawn box work with no inline style or script refused."""
    from playwright.sync_api import expect
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(server["url"] + "/#/search?id=1&k=6")
    expect(page.locator("#results .card").first).to_be_visible(timeout=WAIT_MS)
    assert not refused, refused
