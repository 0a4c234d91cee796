"""The gateway's other routes against the real broker: /health, /metrics, /docs, the console mount,
the history proxy, acks and silences (read back from their topics), error JSON."""
from __future__ import annotations

import httpx
import pytest
from aiohttp import web
from gateway_wav import tone, wav_bytes

from emowatch.streams.gateway.service import Gateway
from emowatch.streams.kafka.admin import ensure_topics
from emowatch.streams.kafka.clients import topics_for
from emowatch.streams.kafka.notify_control import read_acks, read_silences
from emowatch.streams.local.broker import LocalBroker
from emowatch.streams.local.http_thread import BackgroundApp
from emowatch.streams.settings import GatewaySettings, KafkaSettings, Settings

pytestmark = pytest.mark.integration


def test_health_and_metrics(gateway):
    for method in ("GET", "POST"):
        res = httpx.request(method, f"{gateway.url}/health")
        assert res.status_code == 200 and res.json()["status"] == "healthy"
        assert res.json()["broker"]["connected"] is True and res.json()["broker"]["topic_exists"] is True
    assert httpx.post(f"{gateway.url}/v1/calls/m-1/audio", content=wav_bytes(tone(2.5))).status_code == 200
    text = httpx.get(f"{gateway.url}/metrics").text
    count = next(line for line in text.splitlines() if line.startswith("emowatch_gateway_publish_delay_seconds_count"))
    assert float(count.split()[-1]) == 3
    assert "emowatch_gateway_sent_total 3.0" in text
    httpx.post(f"{gateway.url}/v1/calls/bad%20id/audio", content=b"x")
    assert 'emowatch_gateway_rejected_total{code="invalid_call_id"} 1.0' in httpx.get(f"{gateway.url}/metrics").text


def test_health_reports_an_unreachable_broker():
    own = LocalBroker().start()  # not the session's broker: this one is stopped under the gateway
    kafka = KafkaSettings(bootstrap_servers=own.bootstrap_servers, partitions=1)
    try:
        ensure_topics(own.bootstrap_servers, topics_for(kafka))
        gw = Gateway(Settings(kafka=kafka, gateway=GatewaySettings(http_port=0))).start_in_thread()
    except BaseException:
        own.stop()
        raise
    try:
        assert httpx.get(f"{gw.url}/health").status_code == 200
        own.stop()
        res = httpx.get(f"{gw.url}/health", timeout=30)
        assert res.status_code == 503 and res.json()["status"] == "unhealthy"
        assert res.json()["error"]["code"] == "unhealthy" and res.json()["broker"]["connected"] is False
    finally:
        gw.stop()
        own.stop()


def test_docs_openapi_console_and_error_json(start_gateway):
    gw = start_gateway(auth_token="s3cret")  # none of these needs the token
    docs = httpx.get(f"{gw.url}/docs")
    assert docs.status_code == 200 and "/static-offline-docs/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower()
    assert httpx.get(f"{gw.url}/static-offline-docs/swagger-ui-bundle.js").status_code == 200
    paths = httpx.get(f"{gw.url}/openapi.json").json()["paths"]
    assert {"/v1/calls/{call_id}/audio", "/v1/analyze", "/v1/live", "/v1/silences", "/health"} <= set(paths)
    root = httpx.get(f"{gw.url}/")
    assert root.status_code in (302, 307) and root.headers["location"] == "/console/"
    console = httpx.get(f"{gw.url}/console/")
    assert console.status_code == 200 and "<html" in console.text.lower()
    missing = httpx.get(f"{gw.url}/v1/nothing-here", headers={"Authorization": "Bearer s3cret"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert httpx.get(f"{gw.url}/v1/silences").json()["error"]["code"] == "unauthorized"


def test_history_is_proxied_or_unavailable(start_gateway):
    seen = []

    async def calls(request: web.Request) -> web.Response:
        seen.append((request.path, request.query_string))
        if request.match_info.get("call_id") == "nope":
            return web.json_response({"error": {"code": "unknown_call", "message": "no such call"}}, status=404)
        return web.json_response({"calls": [{"call_id": "h-1"}]})

    def routes(app: web.Application) -> None:
        app.router.add_get("/v1/history/calls", calls)
        app.router.add_get("/v1/history/calls/{call_id}", calls)

    sink = BackgroundApp(routes, name="history").start()
    try:
        gw = start_gateway(history_url=f"http://127.0.0.1:{sink.port}")
        res = httpx.get(f"{gw.url}/v1/history/calls", params={"business_line": "vip", "limit": "5"})
        assert res.status_code == 200 and res.json() == {"calls": [{"call_id": "h-1"}]}
        assert seen == [("/v1/history/calls", "business_line=vip&limit=5")]
        res = httpx.get(f"{gw.url}/v1/history/calls/nope")
        assert res.status_code == 404 and res.json()["error"]["code"] == "unknown_call"
    finally:
        sink.stop()
    bare = start_gateway()
    res = httpx.get(f"{bare.url}/v1/history/calls")
    assert res.status_code == 503 and res.json()["error"]["code"] == "no_history"


def test_ack_and_silences_become_notifier_records(gateway, kafka_settings):
    res = httpx.post(f"{gateway.url}/v1/alerts/al-1/ack", json={"by": "ana", "comment": "calling back",
                                                                 "call_id": "c-9"})
    assert res.status_code == 200, res.text
    assert read_acks(kafka_settings)["al-1"] == {"alert_id": "al-1", "by": "ana", "comment": "calling back",
                                                 "at": res.json()["at"], "call_id": "c-9", "trace_id": None}
    res = httpx.post(f"{gateway.url}/v1/silences", json={"matchers": {"call_id": "c-9", "team": 'say "hi"'},
                                                          "duration_s": 600, "by": "ana", "comment": "known"})
    assert res.status_code == 200, res.text
    sid = res.json()["id"]
    stored = read_silences(kafka_settings)[sid]
    assert stored["matchers"] == ['call_id="c-9"', 'team="say \\"hi\\""']
    assert stored["ends_at"] - stored["starts_at"] == 600_000 and stored["created_by"] == "ana"
    listed = httpx.get(f"{gateway.url}/v1/silences").json()["silences"]
    assert [(s["id"], s["state"]) for s in listed] == [(sid, "active")]


BAD_COMMANDS = [
    ("/v1/alerts/al-1/ack", {"comment": "no author"}),
    ("/v1/alerts/al-1/ack", {"by": "  "}),
    ("/v1/silences", {"matchers": {}, "duration_s": 60, "by": "ana", "comment": "everything"}),
    ("/v1/silences", {"matchers": {"call_id": "c"}, "duration_s": -1, "by": "ana", "comment": "x"}),
    ("/v1/silences", {"matchers": {"bad name": "c"}, "duration_s": 60, "by": "ana", "comment": "x"}),
]


def test_bad_notifier_commands_are_400_and_publish_nothing(gateway, kafka_settings):
    for path, body in BAD_COMMANDS:
        res = httpx.post(f"{gateway.url}{path}", json=body)
        assert res.status_code == 400 and res.json()["error"]["code"] == "bad_parameter", (body, res.text)
    assert read_silences(kafka_settings) == {} and read_acks(kafka_settings) == {}
