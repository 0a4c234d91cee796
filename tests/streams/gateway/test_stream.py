"""WS /v1/calls/{id}/stream and the live SSE feeds against the real broker: audio in, published acks,
scores and alerts (written to their real topics here) pushed back."""
from __future__ import annotations

import json
import time

import httpx
import pytest
from gateway_records import alert, frame_scores
from gateway_wav import pcm_bytes, tone, wav_bytes
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

pytestmark = pytest.mark.integration

RAW = "encoding=pcm_s16le&sample_rate=16000&channels=1"


def ws_url(gw, call_id: str, query: str = RAW) -> str:
    return gw.url.replace("http://", "ws://") + f"/v1/calls/{call_id}/stream?{query}"


def receive_until(ws, pred, timeout_s: float = 20.0) -> list[dict]:
    """Messages until one satisfies ``pred`` (all of them, in order)."""
    got = []
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no matching message within {timeout_s}s; got {got}")
        try:
            msg = json.loads(ws.recv(timeout=left))
        except TimeoutError:
            continue
        got.append(msg)
        if pred(msg):
            return got


def test_live_audio_in_published_scores_and_alerts_out(gateway, produce, read_audio):
    audio = pcm_bytes(tone(2.5, seed=7))
    frame = len(audio) // 25  # 100 ms
    with connect(ws_url(gateway, "ws-1", RAW + "&role=CUSTOMER&business_line=vip")) as ws:
        for i in range(25):
            ws.send(audio[i * frame:(i + 1) * frame])
        got = receive_until(ws, lambda m: m["type"] == "published" and m["seq"] == 1)
        assert [(m["seq"], m["role"], m["start_ms"]) for m in got if m["type"] == "published"] == [
            (0, "CUSTOMER", 0), (1, "CUSTOMER", 1000)]
        produce("scores", frame_scores("ws-1", 0, role="CUSTOMER", angry=0.8), frame_scores("other", 0))
        scores = receive_until(ws, lambda m: m["type"] == "scores")[-1]
        assert (scores["call_id"], scores["seq"], scores["top"], scores["confidence"]) == ("ws-1", 0, "angry", 0.8)
        assert "logits" not in scores
        fired = alert("ws-1")
        produce("alerts", alert("other"), fired)
        pushed = receive_until(ws, lambda m: m["type"] == "alert")[-1]
        assert pushed == {"type": "alert", **fired}
        ws.send(json.dumps({"type": "end"}))
        last = receive_until(ws, lambda m: m["type"] == "published" and m["seq"] == 2)[-1]
        assert last["start_ms"] == 2000
    recs = sorted(read_audio(3), key=lambda r: r["seq"])
    assert [(r["seq"], r["end_of_call"], r["business_line"]) for r in recs] == [
        (0, False, "vip"), (1, False, "vip"), (2, True, "vip")]
    assert b"".join(r["audio"] for r in recs) == audio


def test_a_wav_stream_closed_without_end_continues_on_the_next_connection(gateway, read_audio):
    data = wav_bytes(tone(1.5, rate=8000), 8000)
    with connect(ws_url(gateway, "ws-2", "encoding=wav")) as ws:
        ws.send(data[:30])  # the header in pieces
        ws.send(data[30:])
        receive_until(ws, lambda m: m["type"] == "published")
    with connect(ws_url(gateway, "ws-2", "encoding=pcm_s16le&sample_rate=8000&channels=1")) as ws:
        ws.send(pcm_bytes(tone(1.0, rate=8000)))
        ws.send(json.dumps({"type": "end"}))
        receive_until(ws, lambda m: m["type"] == "published" and m["seq"] == 2)
    recs = sorted(read_audio(3), key=lambda r: r["seq"])
    assert [(r["seq"], r["start_ms"], r["end_of_call"]) for r in recs] == [(0, 0, False), (1, 1000, False),
                                                                          (2, 1500, True)]


@pytest.mark.parametrize(("query", "frames", "code", "close"), [
    (RAW, [], "unauthorized", 1008),
    ("encoding=wav&access_token=s3cret", [b"ID3\x04" + bytes(100)], "bad_wav_header", 1003),
    ("encoding=ogg&access_token=s3cret", [], "unsupported_encoding", 1003),
    (RAW + "&access_token=s3cret", ['{"type": "pause"}'], "bad_parameter", 1008),
])
def test_stream_errors_then_close(start_gateway, audio_ends, query, frames, code, close):
    gw = start_gateway(auth_token="s3cret")
    before = audio_ends()
    with connect(ws_url(gw, "ws-err", query)) as ws:
        for f in frames:
            ws.send(f)
        msg = receive_until(ws, lambda m: m["type"] == "error")[-1]
        assert msg["code"] == code and msg["message"]
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd.code == close
    assert audio_ends() == before


def sse_events(client: httpx.Client, url: str, pred, timeout_s: float = 20.0, on_open=None) -> list[tuple[str, dict]]:
    """(event, data) pairs of an SSE stream until ``pred(event, data)``; ``on_open()`` once connected."""
    out: list[tuple[str, dict]] = []
    deadline = time.monotonic() + timeout_s
    with client.stream("GET", url, timeout=httpx.Timeout(timeout_s)) as res:
        assert res.status_code == 200 and res.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in res.iter_lines():
            if on_open is not None:
                on_open()
                on_open = None
            if time.monotonic() > deadline:
                raise TimeoutError(f"no matching event within {timeout_s}s; got {out}")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                out.append((event, json.loads(line[6:])))
                if pred(*out[-1]):
                    return out
    raise AssertionError(f"the stream ended; got {out}")


def test_live_board_and_live_call_events(start_gateway, produce):
    gw = start_gateway(auth_token="s3cret")
    with httpx.Client() as client:
        assert client.get(f"{gw.url}/v1/live").status_code == 401
        board = f"{gw.url}/v1/live?access_token=s3cret&business_line=vip"

        def ids(data: dict) -> list[str]:
            return [c["call_id"] for c in data["calls"]]

        events = sse_events(client, board, lambda e, d: ids(d) == ["hot", "calm"], on_open=lambda: produce(
            "scores", frame_scores("calm", 0, business_line="vip"), frame_scores("hot", 0, angry=0.9,
                                                                                   business_line="vip"),
            frame_scores("elsewhere", 0, angry=0.99)))
        assert events[0] == ("board", {"calls": []})
        assert {e for e, _d in events} == {"board"}
        row = events[-1][1]["calls"][0]
        assert row["angry"] == 0.9 and row["top"] == "angry" and row["active_alerts"] == 0
        events = sse_events(client, board, lambda e, d: ids(d) == ["calm"],
                            on_open=lambda: produce("scores", frame_scores("hot", 1, angry=0.9, end=True,
                                                                           business_line="vip")))
        one = f"{gw.url}/v1/live/calls/calm?access_token=s3cret"
        fired = alert("calm")
        seen: set[str] = set()  # two topics: their records reach the feed in either order

        def both(e: str, _d: dict) -> bool:
            seen.add(e)
            return seen == {"scores", "alert"}

        events = sse_events(client, one, both,
                            on_open=lambda: produce("scores", frame_scores("calm", 1)) or produce("alerts", fired))
        assert sorted(e for e, _d in events) == ["alert", "scores"]
        assert dict(events)["alert"] == {"type": "alert", **fired}
