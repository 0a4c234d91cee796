"""The live board: ranking by risk, filters, leaving on end_of_call and on idleness; pushed messages."""
from __future__ import annotations

from emowatch.streams.gateway.live import PRIORITY_WEIGHT, LiveBoard, alert_message, scores_message
from emowatch.topics.model_io import EMOTIONS


def probs(**p: float) -> list[float]:
    rest = (1.0 - sum(p.values())) / (len(EMOTIONS) - len(p))
    return [p.get(e, rest) for e in EMOTIONS]


def scores(call: str, seq: int = 0, role: str = "CUSTOMER", bl: str = "default", end: bool = False, **p) -> dict:
    return {"call_id": call, "role": role, "seq": seq, "start_ms": seq * 1000, "n_frames": 50, "frame_ms": 20,
            "labels": list(EMOTIONS), "chunk_probs": probs(**p), "logits": [0.0] * 450, "embedding": None,
            "end_of_call": end, "event_time": 1_000 + seq * 1000, "business_line": bl}


def alert(call: str, alert_id: str, status: str = "FIRING", priority: str = "HIGH") -> dict:
    return {"alert_id": alert_id, "call_id": call, "status": status, "priority": priority, "business_line": "default"}


def test_rank_by_alerts_then_angry_plus_fearful():
    b = LiveBoard(idle_s=60)
    b.on_scores(scores("calm", neutral=0.9), now=0)
    b.on_scores(scores("angry", angry=0.7, fearful=0.2), now=0)
    b.on_scores(scores("alerted", neutral=0.9), now=0)
    b.on_alert(alert("alerted", "a1", priority="LOW"), now=0)
    rows = b.snapshot()
    assert [r["call_id"] for r in rows] == ["alerted", "angry", "calm"]
    assert rows[0]["active_alerts"] == 1 and rows[1]["top"] == "angry"
    assert abs(rows[1]["risk"] - 0.9) < 1e-3 and rows[1]["angry"] == 0.7
    assert abs(rows[0]["risk"] - (PRIORITY_WEIGHT["LOW"] + rows[2]["risk"])) < 1e-3
    assert set(rows[0]) == {"call_id", "business_line", "roles", "risk", "active_alerts", "angry", "fearful", "top",
                            "last_event_time", "duration_ms"}


def test_resolved_alert_lowers_the_risk():
    b = LiveBoard(idle_s=60)
    b.on_scores(scores("c", neutral=0.9), now=0)
    b.on_alert(alert("c", "a1", priority="CRITICAL"), now=0)
    high = b.snapshot()[0]["risk"]
    assert b.on_alert(alert("c", "a1", status="RESOLVED"), now=1)
    assert b.snapshot()[0]["risk"] < high and b.snapshot()[0]["active_alerts"] == 0
    assert not b.on_alert(alert("c", "a1", status="RESOLVED"), now=2)  # nothing left to resolve


def test_filter_by_business_line_and_stereo_roles():
    b = LiveBoard(idle_s=60)
    b.on_scores(scores("v", bl="vip", role="CUSTOMER", angry=0.1), now=0)
    b.on_scores(scores("v", bl="vip", role="AGENT", angry=0.6), now=0)
    b.on_scores(scores("d", bl="default"), now=0)
    rows = b.snapshot("vip")
    assert [r["call_id"] for r in rows] == ["v"] and rows[0]["roles"] == ["AGENT", "CUSTOMER"]
    assert rows[0]["angry"] == 0.6 and len(b.snapshot()) == 2


def test_a_call_leaves_when_every_role_ended_and_does_not_come_back():
    b = LiveBoard(idle_s=60)
    b.on_scores(scores("c", seq=0, role="CUSTOMER"), now=0)
    b.on_scores(scores("c", seq=0, role="AGENT"), now=0)
    b.on_scores(scores("c", seq=1, role="CUSTOMER", end=True), now=1)
    assert "c" in b and b.snapshot()[0]["duration_ms"] == 2000
    b.on_scores(scores("c", seq=1, role="AGENT", end=True), now=1)
    assert "c" not in b and b.snapshot() == []
    assert not b.on_scores(scores("c", seq=2), now=2) and not b.on_alert(alert("c", "late"), now=2)
    assert len(b) == 0


def test_idle_calls_expire_with_the_time_given():
    b = LiveBoard(idle_s=10)
    b.on_scores(scores("old"), now=0)
    b.on_scores(scores("new"), now=5)
    v = b.version
    assert b.expire(now=9) == [] and b.version == v
    assert b.expire(now=10) == ["old"] and b.version > v
    assert [r["call_id"] for r in b.snapshot()] == ["new"]


def test_a_firing_alert_alone_puts_a_call_on_the_board():
    b = LiveBoard(idle_s=60)
    assert b.on_alert(alert("x", "a1"), now=0)
    assert b.snapshot()[0]["call_id"] == "x"


def test_pushed_messages():
    msg = scores_message(scores("c", angry=0.8))
    assert msg["type"] == "scores" and msg["top"] == "angry" and msg["confidence"] == 0.8
    assert "logits" not in msg and "embedding" not in msg and msg["call_id"] == "c"
    assert alert_message(alert("c", "a1")) == {"type": "alert", **alert("c", "a1")}
