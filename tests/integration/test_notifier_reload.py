"""Config hot reload of the running notifier (real broker, real local webhook receivers): a valid new
config routes new alerts to the new receiver; an invalid one is refused, counted, and the last good
config keeps running."""
from __future__ import annotations

import os
import textwrap
import urllib.request

import pytest
from notify_helpers import SECRET, Running, alert, publish, verified, wait_until
from receiver_helpers import HttpSink

from emowatch.streams.kafka.admin import group_lag
from emowatch.streams.kafka.clients import group_name
from emowatch.streams.settings import NotifySettings, Settings

pytestmark = pytest.mark.integration


def _write(path, route_to: str, port: int) -> None:
    text = textwrap.dedent(f"""\
        global:
          webhook_allowed_hosts: [127.0.0.1]
        route:
          receiver: {route_to}
          group_by: [call_id]
          group_wait: 0s
          group_interval: 1s
          repeat_interval: 1h
        receivers:
        """)
    for name in ("x", "y"):
        text += (f"  - name: {name}\n    webhook:\n      url: http://127.0.0.1:{port}/{name}\n"
                 "      hmac_key: {secret: hook_hmac}\n      max_attempts: 3\n      initial_backoff: 10ms\n"
                 "      max_backoff: 50ms\n")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # atomic, like an editor or a ConfigMap update


def _calls(sink, path: str) -> list[str]:
    return [verified(r)["group_labels"]["call_id"] for r in list(sink.requests) if r.path == path]


def _metric(port: int, line_start: str) -> float | None:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start)]
    return values[0] if values else None


def test_reload_routes_new_alerts_to_the_new_receiver_and_survives_a_bad_config(kafka_settings, topics, tmp_path):
    sink = HttpSink().start()
    cfg, secrets = tmp_path / "notify.yaml", tmp_path / "secrets.yaml"
    secrets.write_text(f"hook_hmac: {SECRET}\n")
    _write(cfg, "x", sink.port)
    s = Settings(kafka=kafka_settings, notify=NotifySettings(secrets_file=secrets, group_id="r1", reload_check_s=0.2))
    run = Running(s, cfg)
    ok = 'emowatch_notify_config_reloads_total{result="ok"}'
    failed = 'emowatch_notify_config_reloads_total{result="failed"}'
    try:
        run.wait_ready()
        port = run.notifier.http.port
        publish(kafka_settings, [alert("call-1")])
        wait_until(lambda: "call-1" in _calls(sink, "/x"), what="call-1 at x")
        wait_until(lambda: group_lag(kafka_settings.bootstrap_servers, group_name(kafka_settings, "r1"),
                                     [topics.alerts])[topics.alerts] == 0, what="call-1 committed")

        _write(cfg, "y", sink.port)
        wait_until(lambda: _metric(port, ok) == 1, what="reload ok")
        publish(kafka_settings, [alert("call-2")])
        wait_until(lambda: "call-2" in _calls(sink, "/y"), what="call-2 at y")
        assert "call-2" not in _calls(sink, "/x")
        assert _calls(sink, "/x") == ["call-1"] and "call-1" not in _calls(sink, "/y")  # committed: not re-fed

        bad = cfg.read_text().replace("receiver: y", "receiver: nosuch")
        tmp = cfg.with_suffix(".tmp")
        tmp.write_text(bad)
        os.replace(tmp, cfg)
        wait_until(lambda: _metric(port, failed) == 1, what="failed reload counted")
        health = run.notifier.health()
        assert health["status"] == "ok" and health["config_reload"]["result"] == "failed"
        assert any("nosuch" in e and e.startswith(f"{cfg}:") for e in health["config_reload"]["errors"])
        publish(kafka_settings, [alert("call-3")])
        wait_until(lambda: "call-3" in _calls(sink, "/y"), what="call-3 at y with the last good config")
        assert "call-3" not in _calls(sink, "/x")
        assert _metric(port, failed) == 1 and _metric(port, ok) == 1
        assert run.thread.is_alive()
    finally:
        run.stop()
        sink.stop()
