"""The replay core: the same events as the rule engine run message by message, a canonical order whatever
the partitions' interleaving, the call window, the business-line scope, bad messages counted."""
from __future__ import annotations

import random

import numpy as np
from replay_cases import T0, mixed_calls, ruleset

from emowatch.rules.engine import step
from emowatch.streams.replay.params import Scope, Window
from emowatch.streams.replay.runner import ReplayRequest, dumps, run_replay


def _direct(rs, messages):
    states, events = {}, []
    for m in messages:
        states[m["call_id"]], out = step(states.get(m["call_id"]), m, rs)
        events += out
    return events


def _request(rs, **kw):
    return ReplayRequest(rs, "case.yaml", kw.pop("window", Window(T0)), kw.pop("scope", Scope("*")), "kafka", **kw)


def test_replay_equals_the_engine_run_message_by_message_with_a_replay_id():
    rs = ruleset()
    messages = mixed_calls(T0)
    out = run_replay(_request(rs), messages)
    expected = _direct(rs, messages)
    assert len(expected) >= 20 and out.alerts >= 10
    by_call = {}
    for ev in expected:
        by_call.setdefault(ev["call_id"], []).append(ev)
    canonical = [ev for c in sorted(by_call) for ev in by_call[c]]
    assert [{**e, "replay_id": None} for e in out.events] == canonical
    assert {e["replay_id"] for e in out.events} == {out.replay_id} and out.replay_id.startswith("r-")
    assert out.totals.messages == len(messages) and len(out.totals.calls) == 12
    assert out.totals.model_versions == {"synthetic:0"}


def test_two_replays_are_byte_identical_whatever_the_partition_interleaving():
    rs = ruleset()
    messages = mixed_calls(T0)
    per_call = {}
    for m in messages:
        per_call.setdefault(m["call_id"], []).append(m)
    shuffled = []  # another interleaving across calls (partitions), each call's own order kept
    rng = random.Random(3)
    queues = [list(v) for v in per_call.values()]
    while queues:
        q = rng.choice(queues)
        shuffled.append(q.pop(0))
        if not q:
            queues.remove(q)
    assert shuffled != messages
    a, b = run_replay(_request(rs), messages), run_replay(_request(rs), shuffled)
    doc_a = dumps({"replay": a.summary(), "events": a.events})
    assert doc_a == dumps({"replay": b.summary(), "events": b.events})
    assert doc_a.count('"alert_id"') == len(a.events) > 0


def test_calls_that_started_before_the_window_are_left_out_and_calls_are_cut_at_its_end():
    rs = ruleset()
    messages = mixed_calls(T0)
    window = Window(T0 + 700, T0 + 6_500)   # mix-00 started before it, mix-10 and mix-11 after its end
    out = run_replay(_request(rs, window=window), messages)
    assert sorted(out.totals.calls) == [f"mix-{i:02d}" for i in range(1, 10)]
    inside = [m for m in messages if window.holds(m["event_time"], m["start_ms"])]
    assert out.totals.messages == len(inside) and out.totals.skipped["outside_window"] == len(messages) - len(inside)
    assert out.events == run_replay(_request(rs, window=window, replay_id=out.replay_id), inside).events
    assert out.events and all(e["event_time"] < window.to_ms + 1000 for e in out.events)  # <= a chunk past --to


def test_business_line_and_calls_scope():
    rs = ruleset()
    messages = mixed_calls(T0)
    vip = run_replay(_request(rs, scope=Scope("vip")), messages)
    assert {e["business_line"] for e in vip.events} == {"vip"} and vip.totals.skipped["other_business_line"] > 0
    one = run_replay(_request(rs, scope=Scope("*", frozenset({"mix-03"}))), messages)
    assert {e["call_id"] for e in one.events} == {"mix-03"} and len(one.totals.calls) == 1
    specific = ruleset(**{'business_line: "*"': "business_line: vip"})  # its step() skips other lines itself
    same = run_replay(_request(specific, scope=Scope("vip")), messages).events
    assert [dict(e, rule_version="", replay_id="") for e in same] == [
        dict(e, rule_version="", replay_id="") for e in vip.events]


def test_bad_messages_are_counted_and_skipped_like_dead_letters():
    rs = ruleset()
    messages = mixed_calls(T0)[:40]
    bad = dict(messages[5], logits=np.zeros(3, dtype=np.float32), seq=999)
    out = run_replay(_request(rs), [*messages, bad, {"call_id": "x"}])
    assert out.totals.skipped["invalid"] == 2
    assert out.events == run_replay(_request(rs), messages).events
