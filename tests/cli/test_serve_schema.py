"""A bounded property-based run of `retr serve`'s OpenAPI spec (schemathesis): no request gets a 5xx."""
from __future__ import annotations

import time

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.cli.serve_fixtures import build_photo_index


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    from fastapi.testclient import TestClient

    from cli.server.app import ServeOptions, create_app
    from retrieval.collection.api import Collection
    root = tmp_path_factory.mktemp("schema")
    index = build_photo_index(root / "photos", root / "ix", names=["coffee", "brick", "chelsea"])
    app = create_app(lambda: Collection(index), ServeOptions(quarantine_dir=str(root / "q"), refresh_every=0))
    client, deadline = TestClient(app), time.monotonic() + 60
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_no_request_gets_a_5xx(api_schema):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 10  # every route is in the spec
    seen: list[int] = []
    for operation in operations:
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def check(case) -> None:
            response = case.call()
            seen.append(response.status_code)
            assert response.status_code < 500, (case.method, case.path, case.query, response.text[:300])
            if response.status_code >= 400 and response.headers.get("content-type") == "application/json":
                assert "\n" not in response.json()["detail"]
        check()
    assert len(seen) >= 100 and 200 in seen and any(400 <= code < 500 for code in seen), sorted(set(seen))
