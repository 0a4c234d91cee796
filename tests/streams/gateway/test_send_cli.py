"""`emowatch send` against a running gateway on the real broker: upload, --realtime with an alert pushed
back, refusals and an unreachable gateway."""
from __future__ import annotations

import threading

import pytest
from gateway_records import alert, frame_scores
from gateway_wav import pcm_bytes, tone, wav_bytes
from typer.testing import CliRunner

from emowatch.streams.cli.main import app

pytestmark = pytest.mark.integration


def cli(*args: str, env: dict | None = None) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["send", *args], env={"EMOWATCH_GATEWAY__AUTH_TOKEN": "", **(env or {})},
                             catch_exceptions=False)
    return res.exit_code, res.output


def test_send_uploads_a_wav_file(gateway, read_audio, tmp_path):
    wav = tmp_path / "call.wav"
    wav.write_bytes(wav_bytes(tone(2.5, channels=2)))
    code, out = cli(str(wav), "--call-id", "send-1", "--business-line", "vip", "--attr", "agent_id=A7",
                    "--gateway", gateway.url)
    assert code == 0, out
    assert "published 6 chunks (2.5 s, roles CUSTOMER, AGENT) for call send-1" in " ".join(out.split())
    recs = read_audio(6)
    assert {(r["role"], r["business_line"], r["attributes"]["agent_id"]) for r in recs} == {
        ("CUSTOMER", "vip", "A7"), ("AGENT", "vip", "A7")}


def test_send_takes_the_url_from_the_environment_and_raw_pcm(gateway, read_audio, tmp_path):
    raw = tmp_path / "call.pcm"
    raw.write_bytes(pcm_bytes(tone(1.2, rate=8000)))
    code, out = cli(str(raw), "--call-id", "send-2", "--role", "AGENT", "--encoding", "pcm_s16le",
                    "--sample-rate", "8000", "--channels", "1", env={"EMOWATCH_GATEWAY__PUBLIC_URL": gateway.url})
    assert code == 0, out
    assert [r["role"] for r in read_audio(2)] == ["AGENT", "AGENT"]


def test_send_realtime_prints_the_alerts_pushed_back(gateway, produce, read_audio, tmp_path):
    wav = tmp_path / "call.wav"
    wav.write_bytes(wav_bytes(tone(1.5)))
    fired = alert("send-rt", priority="CRITICAL")

    def pipeline() -> None:  # what the workers would write once the first chunk is on the audio topic
        read_audio(1)
        produce("alerts", fired)
        produce("scores", frame_scores("send-rt", 1, end=True))

    worker = threading.Thread(target=pipeline)
    worker.start()
    code, out = cli(str(wav), "--call-id", "send-rt", "--realtime", "--wait", "60", "--gateway", gateway.url)
    worker.join(30)
    assert code == 0, out
    assert "ALERT FIRING CRITICAL angry role=CUSTOMER angry=0.90" in out and fired["alert_id"] in out
    assert "published 2 chunks for call send-rt in real time; 1 alerts" in " ".join(out.split())
    recs = sorted(read_audio(2), key=lambda r: r["seq"])
    assert [(r["seq"], r["end_of_call"]) for r in recs] == [(0, False), (1, True)]


def test_send_reports_refusals_and_an_unreachable_gateway(start_gateway, tmp_path):
    gw = start_gateway(auth_token="s3cret")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\0\0\0\0WAVEfmt " + bytes(40))
    good = tmp_path / "good.wav"
    good.write_bytes(wav_bytes(tone(0.5)))
    code, out = cli(str(good), "--call-id", "s-3", "--gateway", gw.url)
    assert code == 1 and "refused (401): unauthorized" in out
    code, out = cli(str(bad), "--call-id", "s-3", "--gateway", gw.url, "--token", "s3cret")
    assert code == 1 and "bad_wav_header" in out
    code, out = cli(str(good), "--call-id", "s-3", "--gateway", "http://127.0.0.1:9")
    assert code == 3 and "cannot reach the gateway" in out
    code, out = cli(str(good), "--call-id", "s-3", "--attr", "novalue", "--gateway", gw.url)
    assert code == 2
