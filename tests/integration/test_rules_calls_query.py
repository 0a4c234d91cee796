"""/calls/<id> asked of any worker of a line answers for every call: the owner answers, the others forward.

Two rules workers of one business line (one consumer group) split the scores partitions; each
advertises its own URL (EMOWATCH_RULES__HTTP_BIND / ADVERTISED_URL, here loopback). Both must
return the same document for every call, whichever of them holds its partition. Then both are
killed (kill -9) and a third worker, which recovers every partition's table from the changelog, must
return the same documents: 300 calls, ~25 states per partition written in one flush (the local
broker's ListOffsets undercount once cut such a recovery short: 3-30 of 300 calls lost).
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
        # 300 open calls, on every partition, so both workers own some
        calls = [f"q-{i}" for i in range(300)]
        assert len({partition_of(c.encode(), stack.partitions) for c in calls}) == stack.partitions
        publish_scores(kafka, interleave([synthetic_call(c, [(3000, {"fearful": 0.8})], business_line="vip",
                                                         end_of_call=False) for c in calls]))
        args = ["rules", "--business-line", "vip", "--rules-file", str(VIP)]
        workers = [stack.start_worker(f"rules-{n}", args) for n in (1, 2)]
        wait_for_lag_zero(stack, f"{prefix}emowatch-rules-vip", [topics_for(kafka).scores], TIMEOUT)
        answers = _answers(stack, workers, calls)  # both web servers up, every call answered by both
        docs = {}
        for c in calls:
            docs[c], other = (answers[(c, w.http_port)] for w in workers)
            assert docs[c] == other and docs[c]["call_id"] == c and docs[c]["found"]
            assert [a["rule_id"] for a in docs[c]["active_alerts"]] == ["vip-fearful"]
        missing = {w.http_port: _safe_get(w.http_port, "/calls/never-seen")[0] for w in workers}
        assert set(missing.values()) == {404}
        for n in (1, 2):
            assert stack.stop_worker(f"rules-{n}", kill=True) == -9
        heir = stack.start_worker("rules-3", args)
        # its partitions can come in more than one rebalance (the killed members leave the group at their session
        # timeout), and a partition still recovering answers 404: wait until every document is back
        _answers(stack, [heir], calls, ok=lambda c, answer: answer == (200, docs[c]), what="states not recovered")
    finally:
        stack.stop()


def _answers(stack: LocalStack, workers: list, calls: list[str], ok=lambda _call, answer: answer[0] == 200,
             what: str = "calls not answered 200") -> dict[tuple[str, int], dict]:
    """Every worker's document for every call, once every answer is ``ok`` (by default 200: the web servers start
    after the table's recovery; a worker answers 503 while its group rebalances). Asked again only of the calls
    whose answer was not."""
    deadline = time.monotonic() + TIMEOUT
    answers: dict[tuple[str, int], tuple[int, dict]] = {}
    todo = [(c, w.http_port) for c in calls for w in workers]
    while True:
        stack.check_workers()
        answers.update({(c, port): _safe_get(port, f"/calls/{c}") for c, port in todo})
        todo = [(c, port) for c, port in todo if not ok(c, answers[(c, port)])]
        if not todo:
            return {k: doc for k, (_status, doc) in answers.items()}
        assert time.monotonic() < deadline, f"{len(todo)} of {len(answers)} {what}: {todo[:10]}"
        time.sleep(0.5)


def _safe_get(port: int, path: str) -> tuple[int, dict]:
    try:
        return _get(port, path)
    except OSError:
        return 0, {}
