"""`retr serve` against hostile and careless clients: huge bodies, strict parameters, encodings that
break error messages, a second image field, slow headers, framing, and a bug in a handler."""
from __future__ import annotations

import json
import select
import socket
import time

import pytest

from tests.cli.serve_fixtures import live, serving


@pytest.fixture(scope="module")
def client(photo_index):
    with serving(photo_index) as c:
        yield c


def one_line_json(got, status: int, words: str = "") -> str:
    assert got.status_code == status, got.text
    assert got.headers["content-type"].startswith("application/json")
    detail = got.json()["detail"]
    assert "\n" not in detail and len(detail) <= 300 and words in detail, detail
    return detail


@pytest.mark.parametrize("box", ["nan,0,10,10", "0,0,inf,10", "-inf,0,1,1", "1_0,0,20,20", "0x10,0,20,20",
                                 "1e999,0,1,1", "0,0,10", " ,0,1,1"])
def test_boxes_are_parsed_strictly(client, photo_index, box):
    one_line_json(client.get("/api/search", params={"id": 1, "box": box}), 400, "four finite numbers")
    photo = next((photo_index.parent / "photos").glob("*.jpg")).read_bytes()
    got = client.post("/api/search", params={"box": box}, files={"image": ("q.jpg", photo, "image/jpeg")})
    one_line_json(got, 400, "four finite numbers")


def test_long_input_is_never_echoed_whole(client):
    box = "1," * 2000  # 4 KB (the client refuses longer URLs)
    detail = one_line_json(client.get("/api/search", params={"id": 1, "box": box}), 400, "bad --box")
    assert len(detail) < 200
    detail = one_line_json(client.post("/api/duplicates/quarantine", json={"keep": "/x" * 1000}), 400)
    assert len(detail) <= 300


@pytest.mark.parametrize("route", ["/api/images/1_0", "/api/images/+1", "/api/images/%201", "/api/images/01x",
                                   "/api/images/-1", "/api/images/99999999999999999999999",
                                   "/api/search?id=1_0", "/api/search?id=1&k=1_0", "/api/search?id=1&k=+5",
                                   "/api/images/1/thumbnail?size=6_4"])
def test_ids_and_counts_are_digits_only(client, route):
    one_line_json(client.get(route), 422, "digits only" if "999999" not in route else "")


def test_digits_still_work(client):
    assert client.get("/api/images/1").status_code == 200
    assert client.get("/api/search", params={"id": "01", "k": "2"}).json()["results"][0]["id"] == 1


@pytest.mark.parametrize("route, body", [("/api/duplicates/quarantine", '{"keep": "\\ud800"}'),
                                         ("/api/duplicates/undo", '{"manifest": "/q/\\udfff.jsonl"}'),
                                         ("/api/duplicates/quarantine", '{"keep": "a\\u0000b"}')])
def test_lone_surrogates_and_nul_are_a_json_4xx(client, route, body):
    got = client.post(route, content=body.encode(), headers={"content-type": "application/json"})
    one_line_json(got, 422, "keep" if "keep" in body else "manifest")


def test_a_message_that_echoes_a_surrogate_stays_encodable():
    from cli.server.errors import one_line
    assert one_line("no group keeps \ud800\n second line") == "no group keeps \\ud800"
    assert one_line("x" * 1000).endswith("...") and len(one_line("x" * 1000)) == 300
    assert one_line("") == "bad request" and one_line("tab\there") == "tab\\there"


def test_a_second_image_field_is_refused(client, photo_index):
    photo = next((photo_index.parent / "photos").glob("*.jpg")).read_bytes()
    got = client.post("/api/search", files=[("image", ("a.jpg", photo, "image/jpeg")),
                                            ("image", ("b.jpg", photo, "image/jpeg"))])
    one_line_json(got, 400, "exactly one image")


def test_security_headers_on_every_answer(client):
    for route in ("/", "/app.js", "/api/info", "/api/images/999", "/healthz", "/docs"):
        got = client.get(route)
        assert got.headers["x-content-type-options"] == "nosniff", route
        assert got.headers["x-frame-options"] == "DENY", route
        csp = got.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, (route, csp)
        assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0], route
    assert "style-src 'self';" in client.get("/").headers["content-security-policy"]  # the UI: no inline styles


def test_a_bug_in_a_handler_is_a_logged_json_500_and_serving_goes_on(photo_index, caplog):
    from fastapi.testclient import TestClient

    from cli.server.app import ServeOptions, create_app
    from retrieval.collection.api import Collection

    class Broken(Collection):
        def info(self):
            raise ZeroDivisionError("a bug")
    app = create_app(lambda: Broken(photo_index), ServeOptions(refresh_every=0))
    with TestClient(app, raise_server_exceptions=False) as c:
        deadline = time.monotonic() + 60
        while c.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        got = c.get("/api/info")
        one_line_json(got, 500, "internal error (ZeroDivisionError)")
        assert "a bug" not in got.text  # the details go to the log, not to the client
        assert c.get("/api/search", params={"id": 1, "k": 1}).status_code == 200
    assert any("/api/info failed" in r.getMessage() for r in caplog.records)


def test_api_key_with_any_characters_through_the_ui_cookie(photo_index):
    from urllib.parse import quote
    key = "a+b/c=d%e f;"
    with serving(photo_index, api_key=key) as c:
        c.cookies.set("retr_key", quote(key, safe=""))  # what the UI's encodeURIComponent sends
        assert c.get("/api/images/1/thumbnail").status_code == 200
        c.cookies.set("retr_key", quote("a+b/c=d%e f", safe=""))
        assert c.get("/api/images/1/thumbnail").status_code == 401
        assert c.get("/api/info", headers={"Authorization": f"Bearer {key}"}).status_code == 200


# -- a real server: bodies cut off while they stream, and slow headers ----------------------------------

LIMIT = 200_000


class CountingApp:
    """The app, counting the request body bytes it is handed."""

    def __init__(self, app):
        self.app, self.received = app, 0

    async def __call__(self, scope, receive, send):
        async def counted():
            message = await receive()
            self.received += len(message.get("body", b""))
            return message
        await self.app(scope, counted, send)


@pytest.fixture(scope="module")
def server(photo_index):
    from cli.server.app import ServeOptions, create_app
    from cli.server.protocol import with_header_timeout
    from retrieval.collection.api import Collection
    app = CountingApp(create_app(lambda: Collection(photo_index), ServeOptions(max_upload=LIMIT)))
    with live(app, http=with_header_timeout(1.0)) as port:
        import urllib.error
        import urllib.request
        deadline = time.monotonic() + 60
        while True:  # ready: the model and index are loaded
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5):
                    break
            except (urllib.error.HTTPError, OSError):
                assert time.monotonic() < deadline, "not ready in 60 s"
                time.sleep(0.1)
        yield app, port


def _post_head(length: int | None) -> bytes:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (f"POST /api/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=BB\r\n"
            f"{framing}\r\n\r\n").encode()


PART = b'--BB\r\nContent-Disposition: form-data; name="image"; filename="s.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'


def _send_gigabyte(port: int, *, chunked: bool) -> tuple[bytes, int]:
    """Sends up to 1 GiB (zeros after the part's header) until the server answers or closes: (answer, sent)."""
    total = 1 << 30
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sent, answer = 0, b""
    try:
        sock.sendall(_post_head(None if chunked else len(PART) + total))
        block = b"\0" * (1 << 16)
        first = PART + block
        for i in range(total // len(block)):  # bounded: at most 1 GiB
            data = first if i == 0 else block
            if select.select([sock], [], [], 0)[0]:
                break
            try:
                sock.sendall((b"%x\r\n" % len(data)) + data + b"\r\n" if chunked else data)
            except (BrokenPipeError, ConnectionResetError, socket.timeout):
                break
            sent += len(data)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            answer += chunk
            if b"\r\n\r\n" in answer and answer.split(b"\r\n\r\n", 1)[1].endswith(b"}"):
                break
    finally:
        sock.close()
    return answer, sent


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_gigabyte_upload_is_cut_off_at_the_limit(server, chunked):
    app, port = server
    before = app.received
    answer, sent = _send_gigabyte(port, chunked=chunked)
    read = app.received - before
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert body["detail"].startswith("upload too large: over 200,000 bytes")
    assert read <= LIMIT + (1 << 20), read  # at most the limit plus 1 MB was ever read
    if not chunked:
        assert read == 0  # a declared length over the limit: refused before one body byte is read
    assert sent < 64 << 20  # the client was stopped long before its gigabyte


def test_an_upload_within_the_limit_still_works(server, photo_index):
    import urllib.request
    _, port = server
    photo = next((photo_index.parent / "photos").glob("*.jpg")).read_bytes()
    body = PART + photo + b"\r\n--BB--\r\n"
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/search?k=1", data=body, method="POST",
                                     headers={"Content-Type": "multipart/form-data; boundary=BB"})
    with urllib.request.urlopen(request, timeout=30) as got:
        assert json.loads(got.read())["results"][0]["rank"] == 1


def test_a_request_whose_headers_never_finish_is_closed(server):
    _, port = server
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        start = time.monotonic()
        assert sock.recv(1024) == b""  # closed by the server, not by the 10 s client timeout
        assert time.monotonic() - start < 5
    finally:
        sock.close()
