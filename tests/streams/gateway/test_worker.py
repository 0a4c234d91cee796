"""`emowatch worker gateway` as a process (as the local stack and production run it): serves, publishes,
and stops cleanly on SIGTERM."""
from __future__ import annotations

import httpx
import pytest
from gateway_wav import tone, wav_bytes

from emowatch.streams.local.stack import LocalStack

pytestmark = pytest.mark.integration


def test_worker_gateway_serves_and_stops_on_sigterm(broker, unique, tmp_path, read_audio):
    stack = LocalStack(data_dir=tmp_path, broker=broker, topic_prefix=f"t{unique}.").start()
    try:
        worker = stack.start_worker("gateway", ["gateway"])
        url = f"http://127.0.0.1:{worker.http_port}"
        stack.wait_healthy("gateway", 60)
        res = httpx.post(f"{url}/v1/calls/w-1/audio", content=wav_bytes(tone(1.5)))
        assert res.status_code == 200 and res.json()["chunks_published"] == 2
        assert [r["call_id"] for r in read_audio(2)] == ["w-1", "w-1"]
        assert stack.stop_worker("gateway") == 0
        assert '"gateway stopped"' in worker.log_path.read_text()
    finally:
        stack.stop()
