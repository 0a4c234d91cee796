"""The history read API served by the running sink: scores and alerts go through the real broker into
the sink (embedded ClickHouse), and are read back over HTTP while the sink keeps writing."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
import pytest

from emowatch.models.timeline import segments, softmax, step_probs, summary
from emowatch.streams.kafka.clients import make_producer, serde_for
from emowatch.streams.kafka.scores_publisher import publish_scores
from emowatch.streams.settings import Settings, SinkSettings
from emowatch.topics.examples import example_record
from emowatch.topics.model_io import EMOTIONS
from emowatch.topics.serde import encode_key

pytestmark = pytest.mark.integration
T0 = (int(time.time()) - 3600) * 1000  # recent: the tables' TTL drops rows older than 400 days on insert
FRAMES = 50


def _logits(seed: int, bias: int) -> np.ndarray:
    lg = np.random.default_rng(seed).normal(0, 1, (FRAMES, len(EMOTIONS))).astype(np.float32)
    lg[:, bias] += 2.0
    return lg


def _scores(call_id: str, role: str, seq: int, lg: np.ndarray, business_line: str, **kw: Any) -> dict:
    fields = {"event_time": T0 + seq * 1000, **kw}
    return example_record(
        "FrameScores", call_id=call_id, role=role, seq=seq, start_ms=seq * 1000, n_frames=len(lg),
        logits=lg.ravel().tolist(), chunk_probs=softmax(lg.mean(0)).tolist(), business_line=business_line,
        embedding=None, **fields)


def _alert(call_id: str, alert_id: str, status: str, priority: str, fired_ms: int, business_line: str,
           **kw: Any) -> dict:
    fields = {"event_time": T0 + fired_ms, **kw}
    return example_record("Alert", call_id=call_id, alert_id=alert_id, status=status, priority=priority,
                          fired_ms=fired_ms, business_line=business_line, **fields)


def _publish_alerts(kafka, topic: str, alerts: list[dict]) -> None:
    serde, producer = serde_for(kafka, "Alert"), make_producer(kafka)
    for a in alerts:
        producer.produce(topic, key=encode_key(a["call_id"]), value=serde.encode(a, topic=topic))
    assert producer.flush(30) == 0


def _poll(fn: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)  # polling interval, not synchronisation


@pytest.fixture
def sink(kafka_settings, topics, tmp_path):
    from emowatch.streams.sink.service import ClickHouseSink

    settings = Settings(kafka=kafka_settings, sink=SinkSettings(data_dir=tmp_path, batch_ms=50, http_port=0))
    svc = ClickHouseSink(settings)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            svc.run()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    _poll(lambda: svc.http is not None and svc.health()["status"] == "ok", "the sink connected, its web server up")
    client = httpx.Client(base_url=f"http://127.0.0.1:{svc.http.port}", timeout=30)
    try:
        yield svc, client
    finally:
        client.close()
        svc.stop_event.set()
        thread.join(60)
    assert not thread.is_alive() and not errors, errors


def _iso(ms: int, zone: str = "Z") -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None).isoformat() + zone


def _get(client: httpx.Client, path: str, **params: Any) -> tuple[int, dict]:
    r = client.get(path, params=params)
    return r.status_code, r.json()


def test_history_reads_what_the_sink_wrote(sink, kafka_settings, topics):
    svc, client = sink
    cust = [_logits(s, 0) for s in range(3)]
    agent = [_logits(10 + s, 4) for s in range(2)]
    msgs = [_scores("c-hist-1", "CUSTOMER", i, lg, "retail") for i, lg in enumerate(cust)]
    msgs += [_scores("c-hist-1", "AGENT", i, lg, "retail", end_of_call=i == 1) for i, lg in enumerate(agent)]
    msgs.append(_scores("c-hist-1", "CUSTOMER", 1, cust[1], "retail"))  # re-scored after a crash: counted once
    msgs.append(_scores("c-hist-2", "MIXED", 0, _logits(20, 2), "collections", event_time=T0 + 60_000))
    publish_scores(kafka_settings, msgs)
    _publish_alerts(kafka_settings, topics.alerts, [
        _alert("c-hist-1", "a1", "FIRING", "HIGH", 1500, "retail", rule_id="angry_customer"),
        _alert("c-hist-1", "a1", "RESOLVED", "HIGH", 2500, "retail", rule_id="angry_customer"),
        _alert("c-hist-2", "a2", "FIRING", "CRITICAL", 500, "collections", rule_id="fear", event_time=T0 + 60_500),
        _alert("c-hist-2", "a3", "FIRING", "CRITICAL", 700, "collections", rule_id="fear", event_time=T0 + 60_700,
               replay_id="replay-1"),
    ])

    def complete():
        code, body = _get(client, "/v1/history/calls/c-hist-1")
        return body if code == 200 and len(body["alerts"]) == 2 and body["roles"].get("AGENT", {}).get(
            "chunks") == 2 and body["roles"]["CUSTOMER"]["chunks"] == 3 else None

    body = _poll(complete, "c-hist-1 in the history")
    assert body["business_line"] == "retail" and body["duration_ms"] == 3000 and body["labels"] == list(EMOTIONS)
    for role, chunks in (("CUSTOMER", cust), ("AGENT", agent)):
        lg = np.concatenate(chunks)
        steps = step_probs(lg)
        r = body["roles"][role]
        assert r["timeline"]["step_ms"] == 200 and r["timeline"]["start_ms"] == 0
        assert np.asarray(r["timeline"]["probs"]).shape == (len(lg) // 10, 9)
        np.testing.assert_allclose(r["timeline"]["probs"], steps, atol=1e-5)
        segs = segments(steps)
        assert r["segments"] == [s.as_dict() for s in segs] and r["summary"] == summary(segs)
        np.testing.assert_allclose(r["utterance"]["probs"], softmax(lg.mean(0)), atol=1e-5)
        assert r["utterance"]["top"] == EMOTIONS[int(softmax(lg.mean(0)).argmax())]
    assert body["roles"]["CUSTOMER"]["utterance"]["top"] == "angry" and body["roles"]["AGENT"]["utterance"]["top"] == \
        "neutral"
    assert [(a["alert_id"], a["status"], a["fired_ms"]) for a in body["alerts"]] == [("a1", "FIRING", 1500),
                                                                                    ("a1", "RESOLVED", 2500)]
    first = body["alerts"][0]
    assert first["event_time"] == T0 + 1500 and first["labels"] == {"rule_name": "Angry customer"}

    # the call list: filters, per-role tops, alert counts
    code, listed = _get(client, "/v1/history/calls", business_line="retail", since=str(T0 - 1000),
                        until=_iso(T0 + 3_600_000))
    assert code == 200 and [c["call_id"] for c in listed["calls"]] == ["c-hist-1"]
    c1 = listed["calls"][0]
    assert c1["roles"]["CUSTOMER"]["top"] == "angry" and c1["roles"]["AGENT"]["top"] == "neutral"
    assert abs(c1["roles"]["CUSTOMER"]["confidence"] - body["roles"]["CUSTOMER"]["utterance"]["confidence"]) < 1e-4
    assert (c1["chunks"], c1["duration_ms"], c1["ended"], c1["alerts"]) == (5, 3000, True, 1)
    assert c1["first_event_time"] == T0 and c1["last_event_time"] == T0 + 2000
    code, both = _get(client, "/v1/history/calls", since=_iso(T0 - 60_000, ""), until=_iso(T0 + 120_000, "+00:00"))
    assert [c["call_id"] for c in both["calls"]] == ["c-hist-2", "c-hist-1"]  # newest first
    assert both["calls"][0]["alerts"] == 1  # the replayed alert is not counted
    later = _get(client, "/v1/history/calls", since=str(T0 + 3_600_000), until=str(T0 + 7_200_000))
    assert later == (200, {"calls": []})
    one = _get(client, "/v1/history/calls", since=str(T0 - 1000), until=str(T0 + 10**6), limit="1")[1]["calls"]
    assert [c["call_id"] for c in one] == ["c-hist-2"]

    # alerts with filters (replays never appear)
    def ids(**params) -> list[tuple[str, str]]:
        code, got = _get(client, "/v1/history/alerts", **params)
        assert code == 200
        return [(a["alert_id"], a["status"]) for a in got["alerts"]]

    assert ids() == [("a2", "FIRING"), ("a1", "RESOLVED"), ("a1", "FIRING")]
    assert ids(priority="critical") == [("a2", "FIRING")]
    assert ids(priority="HIGH,CRITICAL", status="RESOLVED") == [("a1", "RESOLVED")]
    assert ids(business_line="retail", rule_id="angry_customer") == [("a1", "RESOLVED"), ("a1", "FIRING")]
    assert ids(rule_id="nope") == []
    assert ids(since=str(T0 + 2000), until=str(T0 + 3000)) == [("a1", "RESOLVED")]
    assert ids(limit="1") == [("a2", "FIRING")]

    # errors
    assert _get(client, "/v1/history/calls/no-such-call")[0] == 404
    assert _get(client, "/v1/history/calls/no-such-call")[1]["error"]["code"] == "unknown_call"
    for path, params in (("/v1/history/calls", {"since": "yesterday"}), ("/v1/history/alerts", {"until": "12:00"}),
                         ("/v1/history/calls", {"limit": "0"}), ("/v1/history/alerts", {"limit": "x"}),
                         ("/v1/history/alerts", {"priority": "URGENT"}), ("/v1/history/alerts", {"status": "OPEN"}),
                         ("/v1/history/calls", {"since": _iso(T0), "until": _iso(T0 - 1000)})):
        code, err = _get(client, path, **params)
        assert code == 400 and err["error"]["code"] == "bad_parameter", (path, params, err)
        assert next(iter(params)) in err["error"]["message"]
    assert _get(client, "/v1/history/nothing")[0] == 404
    assert _get(client, "/health")[0] == 200


def test_reads_while_the_sink_writes(sink, kafka_settings):
    """A writer keeps producing chunks of one call while readers query it: every read answers 200, the
    chunk count never goes down, and every chunk is there in the end."""
    svc, client = sink
    n_chunks = 40
    writer_errors: list[BaseException] = []

    def write() -> None:
        try:
            for lo in range(0, n_chunks, 4):
                publish_scores(kafka_settings, [_scores("c-busy", "CUSTOMER", s, _logits(100 + s, 3), "retail")
                                                for s in range(lo, lo + 4)])
        except BaseException as exc:  # noqa: BLE001 - reported below
            writer_errors.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    seen: list[int] = []
    read_errors: list[str] = []

    def read(path: str) -> None:
        with httpx.Client(base_url=client.base_url, timeout=30) as c:
            while writer.is_alive():
                r = c.get(path)
                if r.status_code not in (200, 404):
                    read_errors.append(f"{path}: {r.status_code} {r.text[:200]}")

    readers = [threading.Thread(target=read, args=(p,)) for p in ("/v1/history/alerts", "/v1/history/calls")]
    for t in readers:
        t.start()
    while writer.is_alive():
        code, body = _get(client, "/v1/history/calls/c-busy")
        if code == 200:
            seen.append(body["roles"]["CUSTOMER"]["chunks"])
            assert len(body["roles"]["CUSTOMER"]["timeline"]["probs"]) == seen[-1] * FRAMES // 10
        else:
            assert code == 404 and not seen  # not written yet
    writer.join()
    for t in readers:
        t.join(60)
    assert not writer_errors and not read_errors, (writer_errors, read_errors[:3])
    assert seen == sorted(seen)

    def all_there():
        code, body = _get(client, "/v1/history/calls/c-busy")
        return code == 200 and body["roles"]["CUSTOMER"]["chunks"] == n_chunks and body

    body = _poll(all_there, "every chunk of c-busy")
    lg = np.concatenate([_logits(100 + s, 3) for s in range(n_chunks)])
    np.testing.assert_allclose(body["roles"]["CUSTOMER"]["timeline"]["probs"], step_probs(lg), atol=1e-5)
    assert svc.fatal is None
