"""``GET /v1/calls/{call_id}/report.png``: the gateway reads the call from a real sink read API (HistoryReader
over the embedded ClickHouse, served by the sink's HealthServer) and answers the picture `emowatch report call`
draws; 404 for an unknown call, 503/502 without history, the token guards it. No broker (the route publishes
nothing)."""
from __future__ import annotations

import json

import pytest
from analytics_history import DB, build_history
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from emowatch.streams.analytics.report import render_call_png
from emowatch.streams.gateway.app import create_app
from emowatch.streams.gateway.runtime import Runtime
from emowatch.streams.observability import HealthServer
from emowatch.streams.settings import GatewaySettings, Settings
from emowatch.streams.sink.history import HistoryReader
from emowatch.streams.sink.read_api import history_routes

pytestmark = pytest.mark.integration  # the embedded ClickHouse (chDB)
TOKEN = "s3cret"


@pytest.fixture(scope="module")
def sink(tmp_path_factory):
    """The sink's read API over a small history: (HistoryReader, URL)."""
    h = build_history(tmp_path_factory.mktemp("report-route"))
    reader = HistoryReader(h.client, DB)
    server = HealthServer(0, CollectorRegistry(), lambda: {"status": "ok"}, routes=history_routes(reader)).start()
    yield reader, f"http://127.0.0.1:{server.port}"
    server.stop()
    h.client.close()


def _client(history_url: str | None) -> TestClient:
    settings = Settings(gateway=GatewaySettings(auth_token=TOKEN, history_url=history_url))
    return TestClient(create_app(Runtime(settings, publisher=None)), headers={"Authorization": f"Bearer {TOKEN}"})


def test_the_picture_of_a_stored_call(sink):
    reader, url = sink
    with _client(url) as client:
        got = client.get("/v1/calls/c-1/report.png")
        assert got.status_code == 200, got.text
        assert got.headers["content-type"] == "image/png"
        as_served = json.loads(json.dumps(reader.call("c-1")))  # what the read API sends
        assert got.content == render_call_png(as_served)
        coarse = client.get("/v1/calls/c-1/report.png", params={"step_ms": 1000})
        assert coarse.status_code == 200 and coarse.content == render_call_png(as_served, step_ms=1000)
        assert "/v1/calls/{call_id}/report.png" in client.get("/openapi.json").json()["paths"]


def test_unknown_call_bad_step_and_the_token(sink):
    _, url = sink
    with _client(url) as client:
        missing = client.get("/v1/calls/no-such-call/report.png")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_call"
        bad = client.get("/v1/calls/c-1/report.png", params={"step_ms": 300})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_parameter"
        denied = client.get("/v1/calls/c-1/report.png", headers={"Authorization": "Bearer wrong"})
        assert denied.status_code == 401 and denied.json()["error"]["code"] == "unauthorized"


def test_without_history(sink):
    with _client(None) as client:
        res = client.get("/v1/calls/c-1/report.png")
        assert res.status_code == 503 and res.json()["error"]["code"] == "no_history"
    closed = HealthServer(0, CollectorRegistry(), lambda: {"status": "ok"})
    port = closed.port
    closed.server.server_close()  # bound, then closed: nothing answers there
    with _client(f"http://127.0.0.1:{port}") as client:
        res = client.get("/v1/calls/c-1/report.png")
        assert res.status_code == 502 and res.json()["error"]["code"] == "history_unreachable"
