"""``emowatch bench pipeline``: the call plan, the chunk that completes a condition, and one tiny run of the whole
local stack on the test broker (structure and accounting of the report, never its speed)."""
from __future__ import annotations

import pytest

from emowatch.bench.pipeline import levels, same_run_ratios
from emowatch.bench.pipeline_calls import ESCALATING, LEAD_S, pcm, plan, samples
from emowatch.bench.pipeline_observe import chunk_of


def test_a_step_keeps_every_line_busy_for_its_duration_with_varied_calls():
    catalog = samples()
    calls = plan(8, 60, "s0", catalog)
    for line in range(8):
        mine = [c for c in calls if c.call_id.startswith(f"s0-{line:04d}-")]
        assert sum(c.seconds for c in mine) == 60  # back to back, to the step's end
        assert mine[0].start_s == pytest.approx(LEAD_S + line / 8)
        assert all(b.start_s == pytest.approx(a.start_s + a.seconds) for a, b in zip(mine, mine[1:]))
    assert calls[0].sample in ESCALATING
    assert any(c.stereo for c in calls) and any(not c.stereo for c in calls)
    assert any(c.sample in ESCALATING for c in calls[1:]) and any(c.sample not in ESCALATING for c in calls)
    assert len({c.seconds for c in calls}) > 3
    assert plan(8, 60, "s0", catalog) == calls  # deterministic


def test_call_audio_is_the_calls_length_interleaved_for_stereo():
    catalog = samples()
    mono, stereo = (next(c for c in plan(6, 30, "s1", catalog) if c.stereo is s) for s in (False, True))
    assert len(pcm(mono, catalog)) == mono.seconds * 16000 * 2
    assert len(pcm(stereo, catalog)) == stereo.seconds * 16000 * 2 * 2


def test_the_chunk_completing_a_condition_is_the_one_whose_end_covers_it():
    assert [chunk_of(ms) for ms in (0, 200, 1000, 1200, 3000, 3001)] == [0, 0, 0, 1, 2, 3]


def test_load_steps_go_up_to_the_calls_asked_for():
    assert levels(100, quick=False) == [10, 25, 50, 75, 100]
    assert levels(100, quick=True) == [50, 100]
    assert levels(1, quick=True) == [1]


def test_targets_are_stated_as_ratios_of_the_same_step():
    step = {"calls": 30, "p99_alert_to_webhook_ms": 750.0,
            "machine_cpu": {"busy_cores": 1.5, "steal_cores": 0.1, "cores": 2, "unattributed_cores": 0.0}}
    assert same_run_ratios(step) == {"calls_to_target": 0.3, "p99_alert_to_webhook_to_target": 0.5,
                                     "calls_per_busy_core": 20.0, "steal_share": 0.05}
    # an older step without the machine's CPU, a step without alerts, no step at all
    bare = same_run_ratios({"calls": 50, "p99_alert_to_webhook_ms": None})
    assert bare == {"calls_to_target": 0.5, "p99_alert_to_webhook_to_target": None, "calls_per_busy_core": None,
                    "steal_share": None}
    assert same_run_ratios(None) == {}


@pytest.mark.integration
def test_a_tiny_run_through_the_whole_stack_accounts_for_every_chunk_and_alert(broker, unique):
    from emowatch.bench.pipeline import run

    res = run(calls=3, seconds=6, steps=[3], broker=broker, topic_prefix=f"t{unique}.")
    for key in ("sustained_calls", "p99_alert_to_webhook_ms", "lost", "duplicate_rows", "machine", "workload",
                "targets", "gpu", "steps"):
        assert key in res
    assert res["gpu"]["measured"] is False
    assert res["ratios"]["at_calls"] == 3 and res["ratios"]["calls_to_target"] == 0.03
    (step,) = res["steps"]
    assert step["calls"] == 3 and step["failed_calls"] == 0
    # chunks sent = acknowledged = scored = rows (a stereo second is two chunk records; the gateway may add a
    # 20 ms end-of-call marker to a call whose `end` came late, and it is scored and stored like any chunk)
    assert step["chunks_expected"] == step["chunks_sent"] == 3 * 6 + 6  # three 6 s calls, the third stereo
    assert step["chunks_acked"] == step["chunks_sent"] + step["end_markers"] == step["chunks_scored"]
    assert step["chunks_lost"] == 0
    assert step["rows"] == step["distinct_rows"] == step["chunks_acked"] and step["duplicate_rows"] == 0
    # every alert event on the topic reached the webhook receiver, once
    assert step["firing_alerts"] >= 1  # the first call is an escalating one
    assert step["alert_events_at_receiver"] == step["alert_events_on_topic"] and step["alert_events_lost"] == 0
    assert step["alert_events_repeated"] == 0
    assert step["alert_rows"] == step["alert_events_on_topic"]
    assert step["p99_alert_to_webhook_ms"] is not None and step["p99_chunk_to_score_ms"] is not None
    assert res["lost"] == 0 and res["duplicate_rows"] == 0
    assert {"broker", "gateway", "infer", "rules", "sink", "notify", "clients"} <= set(step["resources"])
    m = step["machine_cpu"]
    assert 0 < m["busy_cores"] <= m["cores"] + 0.05 and m["steal_cores"] >= 0
