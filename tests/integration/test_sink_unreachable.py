"""Server mode, ClickHouse unreachable (http://127.0.0.1:<closed port>): the sink worker starts anyway and
waits with its back-off - /health says ``waiting`` with the error, the log names the URL without its
password - joins no group and commits nothing, and stops cleanly on SIGTERM."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from emowatch.streams.kafka.admin import group_lag
from emowatch.streams.kafka.clients import group_name, make_producer, serde_for, topics_for
from emowatch.streams.local.broker import free_port
from emowatch.streams.local.stack import LocalStack
from emowatch.topics.examples import example_record
from emowatch.topics.security import MASK

pytestmark = pytest.mark.integration
PW = "s3cr3tPW-ch-unreach-51c"


def _health(port: int) -> dict | None:
    """/health's JSON whatever its status code (503 while waiting), None while nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return json.loads(err.read())
    except OSError:
        return None


def test_an_unreachable_clickhouse_keeps_the_sink_waiting_without_reading_and_sigterm_stops_it(broker, tmp_path,
                                                                                               unique):
    stack = LocalStack(data_dir=tmp_path, broker=broker, topic_prefix=f"su{unique}.").start()
    try:
        kafka = stack.kafka_settings()
        t = topics_for(kafka)
        producer, serde = make_producer(kafka), serde_for(kafka, "FrameScores")
        for i in range(5):
            rec = example_record("FrameScores", call_id=f"c-{i}", seq=i, event_time=int(time.time() * 1000))
            producer.produce(t.scores, key=rec["call_id"].encode(), value=serde.encode(rec, topic=t.scores))
        assert producer.flush(30) == 0
        group, topics = group_name(kafka, "emowatch-sink"), [t.scores, t.alerts]
        url = f"http://emowatch:{PW}@127.0.0.1:{free_port()}"  # nothing listens there
        w = stack.start_worker("sink", ["sink"], env={"EMOWATCH_SINK__CLICKHOUSE_URL": url})
        deadline = time.monotonic() + 60
        while _failures(stack) < 3 or (health := _health(w.http_port)) is None:  # three attempts, 0.5 + 1 s apart
            stack.check_workers()
            assert time.monotonic() < deadline, f"the sink did not report waiting:\n{w.tail()}"
            time.sleep(0.1)  # polling interval of a deadline loop
        assert health["status"] == "waiting" and health["paused"] and "Connection refused" in health["error"], health
        assert PW not in json.dumps(health)
        assert group_lag(stack.bootstrap, group, topics) == {t.scores: 5, t.alerts: 0}  # nothing committed
        assert stack.stop_worker("sink") == 0  # SIGTERM while waiting: a clean exit
        text = (tmp_path / "logs" / "sink.log").read_text()
        waiting = [json.loads(line) for line in text.splitlines()
                   if '"msg": "clickhouse unreachable at start-up: waiting"' in line]
        assert len(waiting) >= 3 and waiting[0]["clickhouse"] == url.replace(PW, MASK)
        assert [r["retry_in_s"] for r in waiting[:3]] == [0.5, 1.0, 2.0]  # the back-off
        assert PW not in text
        assert group_lag(stack.bootstrap, group, topics) == {t.scores: 5, t.alerts: 0}
    finally:
        stack.stop()


def _failures(stack: LocalStack) -> int:
    text = (stack.data_dir / "logs" / "sink.log").read_text(errors="replace")
    return text.count('"msg": "clickhouse unreachable at start-up: waiting"')
