"""The client side of ``emowatch bench pipeline``: planned calls (``pipeline_calls.py``) over the gateway's
WebSocket, real audio at real-time pace, one asyncio loop per process.

Each call connects ``CONNECT_AHEAD_S`` before its first frame, sends 100 ms PCM frames (mono, or interleaved
stereo) each at the wall time its audio would have been captured by (``start + (i + 1) * 100 ms``), then
``{"type": "end"}`` (it rides on the last chunk), waits for ``ended`` and closes. Recorded on the wall clock
(``time.time()``, the clock every process of the bench shares): per chunk, when the frame that completed it was
sent (the start of every latency the bench reports), and which ``(role, seq)`` chunk records the gateway
acknowledged (``published``: the broker has them).
"""
from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from emowatch.bench.gateway_clients import FRAME_S, FRAMES_PER_CHUNK
from emowatch.bench.pipeline_calls import PlannedCall, pcm, samples
from emowatch.topics.model_io import SAMPLE_RATE

CONNECT_AHEAD_S = 1.5
ENDED_TIMEOUT_S = 60.0


def _query(call: PlannedCall) -> str:
    q = (f"encoding=pcm_s16le&sample_rate={SAMPLE_RATE}&channels={2 if call.stereo else 1}"
         f"&business_line={call.business_line}&attr.agent_id={call.agent_id}&attr.bench=pipeline")
    return q if call.stereo else q + "&role=CUSTOMER"


async def _call(url: str, call: PlannedCall, catalog: dict, wall0: float) -> dict[str, Any]:
    import websockets

    loop = asyncio.get_running_loop()
    mono0 = loop.time() + (wall0 - time.time())  # the plan's time zero on the loop's clock
    frame_bytes = int(SAMPLE_RATE * FRAME_S) * 2 * (2 if call.stereo else 1)
    out: dict[str, Any] = {"sent": {}, "acked": [], "ended": None, "error": None, "lags": []}
    if (wait := mono0 + call.start_s - CONNECT_AHEAD_S - loop.time()) > 0:
        await asyncio.sleep(wait)  # pacing: the call starts at its planned time
    audio = pcm(call, catalog)  # made when needed: a long step's audio is not held all at once
    frames = len(audio) // frame_bytes
    done = asyncio.Event()
    async with websockets.connect(f"{url}/v1/calls/{call.call_id}/stream?{_query(call)}", max_size=None,
                                  ping_interval=None, open_timeout=60) as ws:

        async def receive() -> None:
            async for raw in ws:
                msg = json.loads(raw)
                if msg["type"] == "published":
                    out["acked"].append((msg["role"], msg["seq"]))
                elif msg["type"] == "ended":
                    out["ended"] = msg.get("published")
                    done.set()
                    return
                elif msg["type"] == "error":
                    out["error"] = f"{msg.get('code')}: {msg.get('message')}"
                    done.set()
                    return

        rx = asyncio.create_task(receive())
        for i in range(frames):
            due = mono0 + call.start_s + (i + 1) * FRAME_S
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)  # real-time pace
            out["lags"].append(loop.time() - due)
            await ws.send(audio[i * frame_bytes:(i + 1) * frame_bytes])
            if (i + 1) % FRAMES_PER_CHUNK == 0:
                out["sent"][(i + 1) // FRAMES_PER_CHUNK - 1] = time.time()
        await ws.send(json.dumps({"type": "end"}))
        try:
            await asyncio.wait_for(done.wait(), ENDED_TIMEOUT_S)
        except TimeoutError:
            out["error"] = out["error"] or f"no `ended` within {ENDED_TIMEOUT_S:.0f} s"
        rx.cancel()
    return out


async def _calls(url: str, calls: list[PlannedCall], wall0: float) -> dict[str, Any]:
    catalog = samples()
    results = await asyncio.gather(*(_call(url, c, catalog, wall0) for c in calls), return_exceptions=True)
    out: dict[str, Any] = {"calls": {}, "lags": [], "failed": 0, "errors": []}
    for c, r in zip(calls, results):
        if isinstance(r, BaseException):
            r = {"sent": {}, "acked": [], "ended": None, "error": f"{type(r).__name__}: {r}", "lags": []}
        if r["error"]:
            out["failed"] += 1
            out["errors"].append(f"{c.call_id}: {r['error']}")
        out["lags"] += r.pop("lags")
        out["calls"][c.call_id] = r
    out["errors"] = out["errors"][:5]
    return out


def client_process(url: str, calls: list[PlannedCall], wall0: float, results) -> None:
    """Entry point of one client process: runs its calls and puts what it recorded on ``results``."""
    cpu0 = time.process_time()
    out = asyncio.run(_calls(url, calls, wall0))
    out["cpu_s"] = time.process_time() - cpu0
    results.put(out)
