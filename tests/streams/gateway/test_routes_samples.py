"""The bundled samples for the console's upload page: listed with their manifest fields and served as WAV;
a name outside the manifest is a 404 in the gateway's error shape; the token guards them like every /v1 route.
The gateway's app, without a broker (these routes publish nothing)."""
from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from emowatch.streams.gateway.app import create_app
from emowatch.streams.gateway.runtime import Runtime
from emowatch.streams.resources import sample_manifest
from emowatch.streams.settings import GatewaySettings, Settings

TOKEN = "s3cret"


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = create_app(Runtime(Settings(gateway=GatewaySettings(auth_token=TOKEN)), publisher=None))
    return TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"})


@pytest.mark.parametrize("path", ["/v1/samples", "/v1/samples/agitated_01.wav"])
def test_the_samples_need_the_token(client, path):
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"}):
        got = client.get(path, headers=headers)
        assert got.status_code == 401 and got.json()["error"]["code"] == "unauthorized"


def test_lists_every_bundled_sample_with_its_manifest_fields_and_url(client):
    got = client.get("/v1/samples")
    assert got.status_code == 200
    samples = got.json()["samples"]
    manifest = sample_manifest()
    assert [s["name"] for s in samples] == [Path(e["file"]).stem for e in manifest]
    agitated = next(s for s in samples if s["name"] == "agitated_01")
    entry = next(e for e in manifest if e["file"] == "agitated_01.wav")
    assert agitated["url"] == "/v1/samples/agitated_01.wav"
    assert {k: agitated[k] for k in ("call_id", "business_line", "role", "expected_mood", "duration_s")} == {
        k: entry[k] for k in ("call_id", "business_line", "role", "expected_mood", "duration_s")}
    assert "path" not in agitated  # no server paths leak to the browser


def test_serves_a_sample_as_wav_bytes(client):
    entry = next(e for e in sample_manifest() if e["file"] == "agitated_01.wav")
    got = client.get("/v1/samples/agitated_01.wav")
    assert got.status_code == 200
    assert got.headers["content-type"] == "audio/wav"
    assert got.content == Path(entry["path"]).read_bytes()
    assert got.content[:4] == b"RIFF"


@pytest.mark.parametrize("name", ["nope", "manifest", "agitated_01.wav"])
def test_unknown_names_are_404_unknown_sample(client, name):
    got = client.get(f"/v1/samples/{name}.wav")
    assert got.status_code == 404
    assert got.json()["error"]["code"] == "unknown_sample"


def test_a_path_outside_the_samples_is_never_served(client):
    got = client.get("/v1/samples/..%2Fsamples%2Fmanifest.wav")
    assert got.status_code == 404 and b"RIFF" not in got.content
