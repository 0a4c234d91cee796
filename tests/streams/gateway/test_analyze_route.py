"""POST /v1/analyze and GET /v1/analyze/{id}/embedding.npy: answered 503 without the model side, and with
it (``streams/gateway/analyze.py``) the whole file scored, streamed as a call and its embedding kept."""
from __future__ import annotations

import importlib.util
import io

import httpx
import numpy as np
import pytest
from gateway_wav import tone, wav_bytes

from emowatch.streams.resources import demo_model_dir
from emowatch.topics.model_io import EMOTIONS

pytestmark = pytest.mark.integration

HAVE_ANALYZER = importlib.util.find_spec("emowatch.streams.gateway.analyze") is not None


def test_analysis_switched_off_is_503(start_gateway):
    gw = start_gateway(analyze=False)
    res = httpx.post(f"{gw.url}/v1/analyze", content=wav_bytes(tone(1.0)))
    assert res.status_code == 503 and res.json()["error"]["code"] == "analysis_unavailable"


@pytest.mark.skipif(HAVE_ANALYZER, reason="streams/gateway/analyze.py is present")
def test_without_the_analysis_module_it_is_503(gateway, audio_ends):
    before = audio_ends()
    res = httpx.post(f"{gateway.url}/v1/analyze", content=wav_bytes(tone(1.0)))
    assert res.status_code == 503 and res.json()["error"]["code"] == "analysis_unavailable"
    assert audio_ends() == before


def test_analyze_scores_publishes_and_keeps_the_embedding(start_gateway, audio_ends, read_audio):
    pytest.importorskip("emowatch.streams.gateway.analyze", reason="the analysis module is not merged yet")
    gw = start_gateway(model={"model": str(demo_model_dir()), "device": "cpu", "precision": "fp32"})
    before = audio_ends()
    res = httpx.post(f"{gw.url}/v1/analyze", params={"call_id": "an-1", "embeddings": "true", "role": "customer"},
                     content=wav_bytes(tone(2.5)), timeout=300)
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["call_id"] == "an-1" and body["duration_ms"] == 2500 and body["labels"] == list(EMOTIONS)
    assert len(body["utterance"]["probs"]) == len(EMOTIONS) and body["timeline"]["step_ms"] == 200
    assert body["published_chunks"] == 3 and body["console_url"] == "/console/call.html?id=an-1"
    assert audio_ends() == before + 3
    assert {r["role"] for r in read_audio(3)} == {"CUSTOMER"}  # the upload page's speaker
    npy = httpx.get(f"{gw.url}{body['embedding_url']}")
    assert npy.status_code == 200 and np.load(io.BytesIO(npy.content)).ndim == 1
    missing = httpx.get(f"{gw.url}/v1/analyze/nope/embedding.npy")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_embedding"
    res = httpx.post(f"{gw.url}/v1/analyze", params={"publish": "false"}, content=wav_bytes(tone(1.0)), timeout=300)
    assert res.status_code == 200 and res.json()["published_chunks"] == 0 and res.json()["embedding_url"] is None
    res = httpx.post(f"{gw.url}/v1/analyze", params={"role": "boss"}, content=wav_bytes(tone(1.0)), timeout=300)
    assert res.status_code == 400 and res.json()["error"]["code"] == "bad_parameter"
    assert audio_ends() == before + 3
