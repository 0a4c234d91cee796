"""The client side of ``emowatch bench gateway``: live calls over the gateway's WebSocket, one asyncio loop per
process (so they do not share the gateway's event loop or each other's).

Every call sends 100 ms PCM frames (16 kHz mono s16le) at real-time pace from a common start time (calls
staggered over one frame, as real calls are not aligned), then ``{"type": "end"}``. Per chunk, the
end-to-end ack latency is measured on one clock: the send time of the frame that completed the chunk ->
the arrival of the gateway's ``published`` message for it (broker ack included, both WebSocket hops too).
"""
from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from emowatch.topics.model_io import SAMPLE_RATE

FRAME_S = 0.1
FRAMES_PER_CHUNK = 10  # 1 s chunks (the gateway's default chunk_ms)
QUERY = f"encoding=pcm_s16le&sample_rate={SAMPLE_RATE}&channels=1&business_line=bench"


async def _call(url: str, call_id: str, t0: float, frames: int, frame: bytes) -> dict[str, Any]:
    import websockets

    loop = asyncio.get_running_loop()
    sent: dict[int, float] = {}
    acks: dict[int, float] = {}
    done = asyncio.Event()
    lags: list[float] = []
    async with websockets.connect(f"{url}/v1/calls/{call_id}/stream?{QUERY}", max_size=None,
                                  ping_interval=None, open_timeout=60) as ws:

        async def receive() -> None:
            async for raw in ws:
                now = loop.time()
                msg = json.loads(raw)
                if msg["type"] == "published":
                    acks[msg["seq"]] = now
                elif msg["type"] in ("ended", "error"):
                    done.set()
                    return

        rx = asyncio.create_task(receive())
        for i in range(frames):
            due = t0 + i * FRAME_S
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            lags.append(loop.time() - due)
            await ws.send(frame)
            sent[i] = loop.time()
        await ws.send(json.dumps({"type": "end"}))
        try:
            await asyncio.wait_for(done.wait(), 30)
        except TimeoutError:
            pass
        rx.cancel()
    chunks = frames // FRAMES_PER_CHUNK
    latencies = [acks[s] - sent[(s + 1) * FRAMES_PER_CHUNK - 1] for s in range(chunks) if s in acks]
    # ``published`` counts every ack, an end marker's too (a live end after the grace released the last chunk)
    return {"latencies": latencies, "expected": chunks, "acked": sum(1 for s in range(chunks) if s in acks),
            "published": len(acks), "lags": lags}


async def _calls(url: str, call_ids: list[str], start_at: float, seconds: int, stagger: list[float]) -> dict:
    loop = asyncio.get_running_loop()
    t0 = loop.time() + (start_at - time.time())
    frame = bytes(int(SAMPLE_RATE * FRAME_S) * 2)
    frames = seconds * FRAMES_PER_CHUNK
    results = await asyncio.gather(*(_call(url, cid, t0 + off, frames, frame) for cid, off in zip(call_ids, stagger)),
                                   return_exceptions=True)
    out: dict[str, Any] = {"latencies": [], "expected": 0, "acked": 0, "published": 0, "lags": [], "failed": 0,
                           "errors": []}
    for r in results:
        if isinstance(r, BaseException):
            out["failed"] += 1
            out["errors"].append(f"{type(r).__name__}: {r}")
            continue
        for k in ("latencies", "lags"):
            out[k] += r[k]
        out["expected"] += r["expected"]
        out["acked"] += r["acked"]
        out["published"] += r["published"]
    out["errors"] = out["errors"][:5]
    return out


def client_process(url: str, call_ids: list[str], start_at: float, seconds: int, stagger: list[float], results) -> None:
    """Entry point of one client process: runs its calls and puts the merged measurements on ``results``."""
    cpu0 = time.process_time()
    out = asyncio.run(_calls(url, call_ids, start_at, seconds, stagger))
    out["cpu_s"] = time.process_time() - cpu0
    results.put(out)
