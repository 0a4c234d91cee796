"""The fault suite's gateway clients: each call uploaded through the gateway's HTTP ingest
(``POST /v1/calls/{call_id}/audio``, docs/gateway.md) as a streamed body paced at a multiple of real time,
one thread per call, all calls at once (as live calls arrive).

The client side of the gateway's contract: an upload answered 200 is published whole (its last chunk flagged
``end_of_call``); an upload that gets no answer (the connection dropped: the gateway was killed) or 503
``broker_unavailable`` may have published a prefix of its chunks, and the client sends the whole call again,
with the same call id, once the gateway answers ``/health`` again. A gateway that was restarted has no
continuation cursor for the call, so the resent upload starts again at ``seq`` 0 with the same ``start_ms``
grid: the chunks published twice carry the same (call_id, role, seq), which every later stage treats as a
redelivery (docs/ARCHITECTURE.md "Delivery guarantees").
"""
from __future__ import annotations

import threading
import time
import wave
from dataclasses import dataclass, field

import httpx

from emowatch.streams.kafka.audio_publisher import CallSpec

RETRY_S = 120.0  # how long a client keeps resending a call while the gateway is down


def _wav(path) -> tuple[bytes, bytes, int]:
    """(header, PCM data, bytes per second) of a 16-bit PCM WAV."""
    with wave.open(str(path), "rb") as w:
        rate, ch, width, n = w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()
        data = w.readframes(n)
    with open(path, "rb") as f:
        raw = f.read()
    header = raw[:raw.index(b"data") + 8]
    return header, data, rate * ch * width


@dataclass
class Upload:
    call: CallSpec
    attempts: int = 0
    answers: list[str] = field(default_factory=list)  # one per attempt: "200", "503", or the error
    done: bool = False
    pieces: int = 0  # 100 ms pieces of the call's audio
    first_sent: int = 0  # pieces the first attempt has sent


class GatewayClients:
    def __init__(self, url: str, calls: list[CallSpec], realtime: float, healthy) -> None:
        self.url, self.realtime, self.healthy = url, realtime, healthy
        self.uploads = [Upload(c) for c in calls]

    def _body(self, up: Upload, header: bytes, data: bytes, per_s: int):
        yield header
        t0 = time.monotonic()
        for i, s in enumerate(range(0, len(data), per_s // 10)):  # 100 ms pieces at the pace of the call
            wait = t0 + i / 10 / self.realtime - time.monotonic()
            if wait > 0:
                time.sleep(wait)  # pacing a simulated live source, not synchronisation
            yield data[s:s + per_s // 10]
            if up.attempts == 1:
                up.first_sent += 1

    def progress(self) -> float:
        """The share of the calls' audio the first attempts have sent (0 before any upload has begun)."""
        total = sum(u.pieces for u in self.uploads)
        return sum(u.first_sent for u in self.uploads) / total if total and all(u.pieces for u in self.uploads) else 0

    def _upload(self, up: Upload) -> None:
        c = up.call
        header, data, per_s = _wav(c.path)
        up.pieces = len(range(0, len(data), per_s // 10))
        params = {"business_line": c.business_line, "role": c.role}
        deadline = time.monotonic() + RETRY_S
        while not up.done:
            up.attempts += 1
            try:
                res = httpx.post(f"{self.url}/v1/calls/{c.call_id}/audio", params=params,
                                 content=self._body(up, header, data, per_s),
                                 headers={"Content-Type": "audio/wav"}, timeout=60)
                up.answers.append(str(res.status_code))
                assert res.status_code in (200, 409, 503), (c.call_id, res.status_code, res.text)
                up.done = res.status_code == 200
            except httpx.TransportError as exc:  # the connection dropped: send the whole call again
                up.answers.append(type(exc).__name__)
            if not up.done:
                assert time.monotonic() < deadline, f"{c.call_id}: no 200 within {RETRY_S} s: {up.answers}"
                while not self.healthy():
                    assert time.monotonic() < deadline, f"{c.call_id}: the gateway did not come back"
                    time.sleep(0.2)  # polling interval of a deadline loop

    def run(self) -> None:
        """Upload every call (one thread each) until each was answered 200; raise the first failure."""
        errors: list[BaseException] = []

        def one(up: Upload) -> None:
            try:
                self._upload(up)
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                errors.append(exc)

        threads = [threading.Thread(target=one, args=(u,), name=f"upload-{u.call.call_id}", daemon=True)
                   for u in self.uploads]
        for t in threads:
            t.start()
        for t in threads:
            t.join(RETRY_S + 60)
        if errors:
            raise errors[0]
        assert all(u.done for u in self.uploads), [(u.call.call_id, u.answers) for u in self.uploads]

    def notes(self) -> dict:
        return {"uploads": len(self.uploads), "resent": sum(u.attempts - 1 for u in self.uploads),
                "answers": sorted({a for u in self.uploads for a in u.answers})}
