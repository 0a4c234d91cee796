"""Delivery guarantees of the inference agent across crashes, graceful stops and rebalances,
on the real local broker with 20 calls (60 with TEST_FULL=1) streamed at 2x real time while
agents come and go.

* kill -9 mid-run, restart: every chunk scored at least once (per-call seq coverage), and
  the restart resumes at the committed offset: only inputs at or after it are scored twice.
* SIGTERM mid-run, restart: drained, delivered and committed, so every chunk exactly once.
* a second agent joins mid-run (cooperative rebalance): the revoked partitions are drained
  and committed before the new owner starts, so every chunk exactly once.
"""
from __future__ import annotations

import json
import threading
import time
import urllib.request
import uuid
from collections import Counter, defaultdict

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from emowatch.streams.kafka.audio_publisher import AudioPublisher, CallSpec, call_records
from emowatch.streams.kafka.clients import group_name, serde_for, topics_for
from emowatch.streams.kafka.tail import TopicTail
from emowatch.streams.local.demo import demo_model_dir, load_calls, wait_for_lag_zero
from emowatch.streams.local.stack import LocalStack

pytestmark = pytest.mark.integration
DEADLINE = 240
REALTIME = 2.0  # the calls stream at twice real time: a 10 s call takes 5 s to publish


class Run:
    """A stack with a unique prefix, ``n_calls`` calls published in the background, a tail on the scores."""

    def __init__(self, broker, tmp_path, name: str, n_calls: int, realtime: float = REALTIME):
        self.realtime = realtime
        self.prefix = f"{name}{uuid.uuid4().hex[:8]}."
        self.stack = LocalStack(data_dir=tmp_path, broker=broker, topic_prefix=self.prefix).start()
        self.kafka = self.stack.kafka_settings()
        self.topics = topics_for(self.kafka)
        base = load_calls()
        self.calls = [CallSpec(f"{c.call_id}-{i}", c.path, c.business_line, c.role)
                      for i in range(n_calls // len(base)) for c in base]
        self.expected = {c.call_id: len(call_records(c, start_time_ms=0)) for c in self.calls}
        self.tail = TopicTail(self.kafka, {self.topics.scores: "FrameScores", self.topics.dlq: "DeadLetter"})
        self.scores: list[dict] = []
        self.dlq: list = []
        self._pub_error: list[BaseException] = []
        self.publishers: list[threading.Thread] = []
        self.publisher = self.publisher_of(self.calls)

    def publisher_of(self, calls: list[CallSpec]) -> threading.Thread:
        """A thread that publishes ``calls`` (not started); :meth:`drain` waits for every such thread started."""
        t = threading.Thread(target=self._publish, args=(calls,), daemon=True)
        self.publishers.append(t)
        return t

    def _publish(self, calls: list[CallSpec]) -> None:
        try:
            AudioPublisher(self.kafka).publish_calls(calls, realtime=self.realtime)
        except BaseException as exc:  # noqa: BLE001 - surfaced by check()
            self._pub_error.append(exc)

    def start_agent(self, name: str, wait: bool = True):
        """Start an agent; with ``wait``, return once it reports assigned partitions on /health."""
        w = self.stack.start_worker(name, ["infer"], env={"EMOWATCH_MODEL__MODEL": str(demo_model_dir())})
        deadline = time.monotonic() + DEADLINE
        while wait:
            self.check()
            try:
                health = _health(w)
                if health.get("partitions"):
                    break
            except (OSError, ValueError):  # not listening yet
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"agent {name} not ready within {DEADLINE}s:\n{w.tail()}")
            time.sleep(0.2)
        return w

    def check(self) -> None:
        if self._pub_error:
            raise self._pub_error[0]
        self.stack.check_workers()

    def collect_until(self, cond) -> None:
        def until(out):
            self.scores += out[self.topics.scores]
            self.dlq += out[self.topics.dlq]
            out[self.topics.scores].clear()
            out[self.topics.dlq].clear()
            return cond()
        self.tail.collect(until, DEADLINE, check=self.check)

    def drain(self) -> None:
        """Read everything the agents will ever write: once the publisher is done and the inference
        group has no lag on the audio topic (every chunk scored, delivered and committed), read the
        scores and DLQ topics up to their end offsets. A duplicate or dead letter written late lands
        in ``scores``/``dlq`` before the assertions, instead of after them."""
        for t in self.publishers:
            if t.ident is not None:
                t.join(DEADLINE)
                assert not t.is_alive(), "the publisher did not finish"
        self.check()
        wait_for_lag_zero(self.stack, group_name(self.kafka, "emowatch-infer"), [self.topics.audio], DEADLINE)
        out = self.tail.catch_up({self.topics.scores: [], self.topics.dlq: []}, DEADLINE)
        self.scores += out[self.topics.scores]
        self.dlq += out[self.topics.dlq]

    def covered(self) -> bool:
        seqs = defaultdict(set)
        for s in self.scores:
            seqs[s["call_id"]].add(s["seq"])
        return all(seqs[c] == set(range(n)) for c, n in self.expected.items())

    def committed(self) -> dict[int, int]:
        """The inference group's committed offset per audio partition."""
        c = Consumer({"bootstrap.servers": self.kafka.bootstrap_servers,
                      "group.id": group_name(self.kafka, "emowatch-infer"), "enable.auto.commit": False})
        try:
            parts = [TopicPartition(self.topics.audio, p) for p in range(self.stack.partitions)]
            return {tp.partition: tp.offset for tp in c.committed(parts, timeout=10)}
        finally:
            c.close()

    def input_offsets(self) -> dict[tuple[str, int], tuple[int, int]]:
        """(call_id, seq) -> (partition, offset) of every published audio chunk."""
        serde = serde_for(self.kafka, "AudioChunk")
        c = Consumer({"bootstrap.servers": self.kafka.bootstrap_servers, "group.id": f"read-{uuid.uuid4().hex}",
                      "enable.auto.commit": False, "enable.partition.eof": True})
        try:
            c.assign([TopicPartition(self.topics.audio, p, OFFSET_BEGINNING) for p in range(self.stack.partitions)])
            out, eof = {}, set()
            total = sum(self.expected.values())
            while len(out) < total or len(eof) < self.stack.partitions:
                for m in c.consume(500, timeout=1.0):
                    if m.error():
                        eof.add(m.partition())
                        continue
                    r = serde.decode(m.value(), topic=m.topic())
                    out[(r["call_id"], r["seq"])] = (m.partition(), m.offset())
            return out
        finally:
            c.close()

    def close(self) -> None:
        self.tail.close()
        self.stack.stop()


@pytest.fixture
def run_factory(broker, tmp_path, size):
    runs = []

    def make(name: str, realtime: float = REALTIME) -> Run:
        r = Run(broker, tmp_path / name, name, size(20, 60), realtime)
        runs.append(r)
        return r

    yield make
    for r in runs:
        r.close()


def test_kill_9_mid_run_then_restart_leaves_no_chunk_unscored(run_factory):
    run = run_factory("k9")
    total = sum(run.expected.values())
    run.start_agent("infer")
    run.publisher.start()
    run.collect_until(lambda: len(run.scores) >= 40)
    # kill only once a commit exists, so the restart has a position to resume from
    deadline = time.monotonic() + DEADLINE
    while not any(o > 0 for o in run.committed().values()):
        assert time.monotonic() < deadline, "the agent never committed"
        run.check()
    run.stack.stop_worker("infer", kill=True)  # SIGKILL: no drain, no final commit
    before = len(run.scores)
    assert before < total, "the agent finished before it was killed; nothing was tested"
    committed = run.committed()
    run.start_agent("infer-restarted")
    run.collect_until(run.covered)
    run.drain()
    assert run.covered() and run.dlq == []
    counts = Counter((s["call_id"], s["seq"]) for s in run.scores)
    assert set(counts) == {(c, q) for c, n in run.expected.items() for q in range(n)}
    # the restart resumed at the committed offsets: only uncommitted inputs were scored twice
    where = run.input_offsets()
    twice = [k for k, n in counts.items() if n > 1]
    assert all(where[k][1] >= committed[where[k][0]] for k in twice), (twice, committed)
    assert any(o > 0 for o in committed.values()), "nothing was committed before the kill"


def test_sigterm_mid_run_drains_delivers_and_commits_so_a_restart_scores_each_chunk_once(run_factory):
    run = run_factory("st")
    run.start_agent("infer")
    run.publisher.start()
    run.collect_until(lambda: len(run.scores) >= 40)
    # SIGTERM: graceful. The drain scores the whole queue first: at full size (60 calls at 2x real time on 2
    # cores) the agent is behind and ~430 chunks were queued, ~30 s of draining
    assert run.stack.stop_worker("infer", timeout_s=120) == 0
    assert len(run.scores) < sum(run.expected.values()), "the agent finished before it was stopped"
    run.start_agent("infer-restarted")
    run.collect_until(run.covered)
    run.drain()
    counts = Counter((s["call_id"], s["seq"]) for s in run.scores)
    assert run.covered() and run.dlq == []
    assert {k: n for k, n in counts.items() if n > 1} == {}


def test_rebalance_to_a_second_agent_mid_run_scores_each_chunk_once(run_factory):
    run = run_factory("rb", realtime=0.5)  # slower: the first half's calls are still streaming while b joins
    half = len(run.calls) // 2
    run.publisher, later = run.publisher_of(run.calls[:half]), run.publisher_of(run.calls[half:])
    first = run.start_agent("infer-a")
    run.publisher.start()
    run.collect_until(lambda: len(run.scores) >= 20)
    second = run.start_agent("infer-b")  # returns once b owns partitions: the rebalance is done
    later.start()  # so work remains for b however long it took to start (a slow machine: the first half is done)
    run.collect_until(run.covered)
    run.drain()
    counts = Counter((s["call_id"], s["seq"]) for s in run.scores)
    assert run.covered() and run.dlq == []
    assert {k: n for k, n in counts.items() if n > 1} == {}
    assert "partitions revoked: draining and committing" in first.tail(200)
    health_b = _health(second)
    assert health_b["partitions"] and health_b["scored"] > 0  # the new owner took over live calls


def _health(worker) -> dict:
    return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{worker.http_port}/health", timeout=5).read())
