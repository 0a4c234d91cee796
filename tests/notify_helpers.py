"""Helpers of the notifier's broker tests: a config file, Alert records, publishing, a notifier in a thread,
and reading the webhook requests the recording HTTP server got."""
from __future__ import annotations

import hashlib
import hmac
import json
import textwrap
import threading
import time
import uuid
from pathlib import Path

from emowatch.streams.kafka.clients import make_producer, serde_for, topics_for
from emowatch.streams.settings import KafkaSettings, NotifySettings, Settings
from emowatch.topics.serde import encode_key

SECRET = "hook-s3cret"


def write_config(tmp: Path, port: int, *, group_wait: str = "300ms", group_interval: str = "1s",
                 repeat_interval: str = "1h", max_attempts: int = 3, group_by: str = "[call_id]",
                 max_backoff: str = "50ms", timeout: str = "2s") -> tuple[Path, Path]:
    cfg = tmp / "notify.yaml"
    cfg.write_text(textwrap.dedent(f"""\
        global:
          webhook_allowed_hosts: [127.0.0.1]
        route:
          receiver: hook
          group_by: {group_by}
          group_wait: {group_wait}
          group_interval: {group_interval}
          repeat_interval: {repeat_interval}
        receivers:
          - name: hook
            webhook:
              url: http://127.0.0.1:{port}/hook
              hmac_key: {{secret: hook_hmac}}
              send_resolved: true
              timeout: {timeout}
              max_attempts: {max_attempts}
              initial_backoff: 10ms
              max_backoff: {max_backoff}
        """))
    secrets = tmp / "secrets.yaml"
    secrets.write_text(f"hook_hmac: {SECRET}\n")
    return cfg, secrets


def alert(call_id: str, alert_id: str | None = None, status: str = "FIRING", **over) -> dict:
    record = {
        "alert_id": alert_id or uuid.uuid4().hex, "status": status, "rule_id": "angry-sustained",
        "rule_version": "v1", "rule_set": "default", "priority": "HIGH", "action": "ALERT",
        "business_line": "collections", "call_id": call_id, "role": "CUSTOMER", "emotions": ["angry"],
        "value": 0.92, "threshold": 0.75, "started_ms": 12_000, "fired_ms": 15_000,
        "event_time": int(time.time() * 1000), "channels": [], "labels": {"rule_name": "High customer anger"},
        "replay_id": None, "trace_id": None,
    }
    record.update(over)
    return record


def publish(kafka: KafkaSettings, alerts: list[dict], raw: list[tuple[str, bytes]] = ()) -> None:
    topic = topics_for(kafka).alerts
    serde = serde_for(kafka, "Alert")
    producer = make_producer(kafka)
    for a in alerts:
        producer.produce(topic, key=encode_key(a["call_id"]), value=serde.encode(a, topic=topic))
    for key, value in raw:
        producer.produce(topic, key=encode_key(key), value=value)
    assert producer.flush(30) == 0


def settings(kafka: KafkaSettings, secrets: Path, group_id: str) -> Settings:
    return Settings(kafka=kafka, notify=NotifySettings(secrets_file=secrets, group_id=group_id))


class Running:
    """A Notifier running in a thread of the test process (stopped like SIGTERM: stop event)."""

    def __init__(self, s: Settings, config: Path) -> None:
        from emowatch.streams.notify.service import Notifier

        self.stop_event = threading.Event()
        self.notifier = Notifier(s, config_path=config, stop=self.stop_event)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="notifier", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.notifier.run()
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.error = exc

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.notifier.ready:
            assert self.thread.is_alive(), f"notifier died: {self.error!r}"
            assert time.monotonic() < deadline, "notifier not ready"
            time.sleep(0.05)

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(60)
        assert not self.thread.is_alive(), "notifier did not stop"
        assert self.error is None, repr(self.error)


def verified(req, secret: str = SECRET) -> dict:
    """The JSON body of a webhook request after checking its HMAC signature (the documented scheme)."""
    ts = req.headers["X-Emowatch-Timestamp"]
    mac = hmac.new(secret.encode(), ts.encode() + b"." + req.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(req.headers["X-Emowatch-Signature"], "sha256=" + mac), "bad signature"
    return json.loads(req.body)


def wait_until(predicate, timeout: float = 30, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
