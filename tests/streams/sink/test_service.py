"""The ClickHouse sink never logs a ClickHouse password, also when inserts fail and it gives up."""
from __future__ import annotations

import io
import logging
import threading

import pytest

from emowatch.streams.kafka.clients import make_producer, serde_for
from emowatch.streams.observability import JsonFormatter
from emowatch.streams.settings import Settings, SinkSettings
from emowatch.streams.sink.service import scrub
from emowatch.topics.examples import example_record
from emowatch.topics.security import MASK

PW = "s3cr3tPW-ch-7a61d3"
SERVER = f"http://emowatch:{PW}@clickhouse-0.clickhouse:8123"


def test_scrub_masks_urls_and_the_configured_password():
    assert scrub(f"cannot reach {SERVER}/?query=INSERT", None) == f"cannot reach http://emowatch:{MASK}@clickhouse-0.clickhouse:8123/?query=INSERT"
    assert scrub(f"auth header X-ClickHouse-Key: {PW}", SERVER) == f"auth header X-ClickHouse-Key: {MASK}"
    assert scrub("nothing secret", SERVER) == scrub("nothing secret", None) == "nothing secret"


@pytest.mark.integration
def test_a_failing_insert_is_logged_and_raised_without_the_password(kafka_settings, topics, tmp_path, capfd):
    """The real sink (local broker, embedded ClickHouse) whose inserts fail with a driver error that
    echoes the server URL with its password: neither the log lines nor the error it stops with show it."""
    from emowatch.streams.sink.service import ClickHouseSink

    settings = Settings(kafka=kafka_settings, sink=SinkSettings(data_dir=tmp_path, batch_ms=50), log_level="DEBUG")
    svc = ClickHouseSink(settings, max_insert_attempts=2)
    calls = []

    def failing_insert(*args, **kwargs):  # a driver error as an HTTP client writes it, URL included
        calls.append(args[0])
        raise ConnectionError(f"HTTP request failed: {SERVER}/?query=INSERT+INTO+emowatch.scores (Connection reset)")

    svc.client.insert = failing_insert
    producer = make_producer(kafka_settings)
    rec = example_record("FrameScores", call_id="c-1", seq=0)
    value = serde_for(kafka_settings, "FrameScores").encode(rec, topic=topics.scores)
    producer.produce(topics.scores, key=b"c-1", value=value)
    assert producer.flush(30) == 0

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            svc.run()
        except BaseException as exc:  # noqa: BLE001 - the sink stops on the failed insert: asserted below
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    try:
        thread.start()
        thread.join(120)
    finally:
        svc.stop_event.set()
        thread.join(30)
        root.removeHandler(handler)
        root.setLevel(level)
    assert not thread.is_alive()
    logs = stream.getvalue()
    out, err = capfd.readouterr()
    assert calls == ["scores", "scores"]  # both attempts reached the failing insert
    assert logs.count('"msg": "insert failed"') == 2 and "Connection reset" in logs
    assert len(errors) == 1 and "insert into scores failed 2 times: ConnectionError" in str(errors[0])
    assert svc.fatal and "clickhouse-0.clickhouse" in svc.fatal
    for text in (logs, out, err, svc.fatal, str(errors[0])):
        assert PW not in text
