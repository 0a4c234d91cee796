"""/calls/<id> asked of any worker of a line answers for every call: the owner answers, the others forward.

Two rules workers of one business line (one consumer group) split the scores partitions; each
advertises its own URL (EMOWATCH_RULES__HTTP_BIND / ADVERTISED_URL, here loopback). Both must
return the same document for every call, whichever of them holds its partition.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from emowatch.rules.loader import bundled_rule_files
from emowatch.rules.testing import interleave, synthetic_call
from emowatch.streams.kafka.clients import topics_for
from emowatch.streams.kafka.scores_publisher import publish_scores
from emowatch.streams.local.demo import wait_for_lag_zero
from emowatch.streams.local.stack import LocalStack
from emowatch.topics.registry import partition_of

pytestmark = pytest.mark.integration
TIMEOUT = 240
VIP = next(p for p in bundled_rule_files() if p.stem == "vip")


def _get(port: int, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=15) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_any_worker_of_a_line_answers_for_every_call(broker, tmp_path, unique):
    prefix = f"cq{unique}."
    stack = LocalStack(data_dir=tmp_path, broker=broker, topic_prefix=prefix).start()
    try:
        kafka = stack.kafka_settings()
        # one open call on every partition, so both workers own some
        calls: dict[int, str] = {}
        for i in range(200):
            calls.setdefault(partition_of(f"q-{i}".encode(), stack.partitions), f"q-{i}")
        assert len(calls) == stack.partitions
        publish_scores(kafka, interleave([synthetic_call(c, [(3000, {"fearful": 0.8})], business_line="vip",
                                                         end_of_call=False) for c in calls.values()]))
        args = ["rules", "--business-line", "vip", "--rules-file", str(VIP)]
        workers = [stack.start_worker(f"rules-{n}", args) for n in (1, 2)]
        wait_for_lag_zero(stack, f"{prefix}emowatch-rules-vip", [topics_for(kafka).scores], TIMEOUT)
        deadline = time.monotonic() + TIMEOUT
        while True:  # both web servers up, and every call answered identically by both
            stack.check_workers()
            answers = {(c, w.http_port): _safe_get(w.http_port, f"/calls/{c}") for c in calls.values() for w in workers}
            if all(status == 200 for status, _ in answers.values()):
                break
            assert time.monotonic() < deadline, {k: v[0] for k, v in answers.items()}
            time.sleep(0.5)
        for c in calls.values():
            docs = [answers[(c, w.http_port)][1] for w in workers]
            assert docs[0] == docs[1] and docs[0]["call_id"] == c and docs[0]["found"]
            assert [a["rule_id"] for a in docs[0]["active_alerts"]] == ["vip-fearful"]
        missing = {w.http_port: _safe_get(w.http_port, "/calls/never-seen")[0] for w in workers}
        assert set(missing.values()) == {404}
    finally:
        stack.stop()


def _safe_get(port: int, path: str) -> tuple[int, dict]:
    try:
        return _get(port, path)
    except OSError:
        return 0, {}
