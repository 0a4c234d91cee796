"""Bad-input campaign, gateway part (issue #17): fuzzed HTTP headers and query parameters, WAV headers, raw PCM
bodies and WebSocket sessions against a real gateway (in a thread, on the session broker). Every bad request is
answered 4xx (or the WebSocket gets an error message and is closed with 1003/1008), publishes nothing, and the
gateway stays healthy: valid calls through it afterwards are published whole. With ``TEST_BADINPUT_JSON=path``
the counts are written to ``<path stem>-gateway.json`` (docs/bench/badinput-gateway.json)."""
from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from badinput.gateway_cases import GOOD, RAW, TOKEN, HttpCase, WsCase, gateway_cases
from badinput.generate import pcm, wav_header
from conftest import size
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from emowatch.streams.kafka.admin import end_offsets

pytestmark = pytest.mark.integration
N_CASES = size(300, 1500)
SEED = 23


@pytest.fixture
def gateway(kafka_settings, topics):
    from emowatch.streams.gateway.service import Gateway
    from emowatch.streams.settings import GatewaySettings, Settings

    g = Gateway(Settings(kafka=kafka_settings, gateway=GatewaySettings(
        http_port=0, auth_token=TOKEN, max_upload_mb=1, analyze=False))).start_in_thread()
    yield g
    g.stop()


def _http(client: httpx.Client, gw, case: HttpCase) -> int:
    return client.post(f"{gw.url}/v1/calls/{quote(case.call_id, safe='')}/audio", content=case.body, params=case.params,
                       headers=case.headers).status_code


def _ws(gw, case: WsCase) -> int | None:
    """The close code the gateway chose (None: it did not close the socket)."""
    url = gw.url.replace("http://", "ws://") + f"/v1/calls/{quote(case.call_id, safe='')}/stream"
    try:
        with connect(url + "?" + str(httpx.QueryParams(case.query)), open_timeout=30, close_timeout=5) as ws:
            for frame in case.frames:
                ws.send(frame)
            while True:  # read until the gateway closes (error message first)
                msg = json.loads(ws.recv(timeout=30))
                assert msg["type"] in ("error", "published", "ended"), msg
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None
    except TimeoutError:
        return None


def test_fuzzed_requests_are_refused_and_the_gateway_stays_healthy(gateway, topics, kafka_settings):
    cases = gateway_cases(N_CASES, SEED)
    answers: dict[str, Counter] = {}
    wrong = []
    with httpx.Client(timeout=60) as client:
        for case in cases:
            code = _http(client, gateway, case) if isinstance(case, HttpCase) else _ws(gateway, case)
            ok = (400 <= code < 500) if isinstance(case, HttpCase) else code in (1003, 1008)
            answers.setdefault(case.category, Counter())[str(code)] += 1
            if not ok:
                wrong.append((case.category, code))
        assert not wrong, f"{len(wrong)} bad requests not refused, e.g. {wrong[:5]}"
        health = client.get(f"{gateway.url}/health")
        assert health.status_code == 200, health.text

        # valid calls afterwards: a WAV upload and a raw PCM upload, published whole
        data = pcm(2.5)
        wav = client.post(f"{gateway.url}/v1/calls/gw-valid-wav/audio", headers=GOOD,
                          content=wav_header(data_size=len(data)) + data)
        raw = client.post(f"{gateway.url}/v1/calls/gw-valid-raw/audio", headers=GOOD, params=RAW, content=data)
    assert (wav.status_code, raw.status_code) == (200, 200), (wav.text, raw.text)
    assert wav.json()["chunks_published"] == raw.json()["chunks_published"] == 3
    published_by_fuzz = sum(c.publishes for c in cases if isinstance(c, WsCase))
    assert sum(end_offsets(kafka_settings.bootstrap_servers, [topics.audio]).values()) == 6 + published_by_fuzz

    report = {"requests": len(cases), "seed": SEED, "answers": {k: dict(v) for k, v in sorted(answers.items())}}
    print(json.dumps(report, indent=1))
    path = os.environ.get("TEST_BADINPUT_JSON")  # the campaign's file; this part next to it
    if path:
        Path(path).with_name(Path(path).stem + "-gateway.json").write_text(json.dumps(report, indent=1) + "\n")
