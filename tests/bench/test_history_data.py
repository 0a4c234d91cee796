"""``bench/history_data.py`` at a tiny size on the embedded engine: the promised rows and shape, alerts consistent
with the escalating calls, the same history for the same seed."""
from __future__ import annotations

import pytest

from emowatch.bench.history_data import AGENTS, BUSINESS_LINES, DAYS, LIVE_CALLS, generate
from emowatch.streams.sink.clickhouse import apply_schema, connect
from emowatch.topics.model_io import EMOTIONS

pytestmark = pytest.mark.integration  # the embedded ClickHouse (chDB)
DB = "emowatch"
ROWS = 3_000


@pytest.fixture(scope="module")
def hist(tmp_path_factory):
    client = connect(None, tmp_path_factory.mktemp("hist"), DB)
    apply_schema(client, DB)
    plan = generate(client, DB, ROWS, now_ms=1_790_000_000_000)
    yield client, plan
    client.close()


def q(client, sql: str) -> list[tuple]:
    return client.query(sql.replace("{db}", DB)).result_rows


def test_generated_history_has_the_promised_rows_and_shape(hist):
    client, plan = hist
    # at least the rows asked for, at most one call (both roles) more; each chunk once after dedup
    (stored, distinct, final), = q(client, "SELECT count(), uniqExact(call_id, role, seq), "
                                           "(SELECT count() FROM {db}.scores FINAL) FROM {db}.scores")
    assert ROWS <= plan.rows == distinct == final <= ROWS + 2 * plan.longest_s
    assert plan.duplicates > 0 and stored <= plan.rows + plan.duplicates  # re-delivered copies, until merged
    (frames, shape_ok, labels_ok, agents_ok, roles), = q(client, f"""
        SELECT uniqExact(n_frames * 1000 + frame_ms), min(length(logits) = n_frames * length(labels)),
               min(labels = {list(EMOTIONS)}), min(agent = attributes['agent_id'] AND agent != ''),
               groupUniqArray(role) FROM {{db}}.scores""")
    assert frames == 1 and shape_ok and labels_ok and agents_ok and sorted(roles) == ["AGENT", "CUSTOMER"]
    (calls, lines, agents, first, last, both), = q(client, """
        SELECT uniqExact(call_id), groupUniqArray(business_line), uniqExact(agent),
               min(toUnixTimestamp64Milli(ts)), max(toUnixTimestamp64Milli(ts)),
               (SELECT min(r) FROM (SELECT uniqExact(role) AS r FROM {db}.scores GROUP BY call_id))
        FROM {db}.scores""")
    assert calls == plan.calls >= 20 and set(lines) <= set(BUSINESS_LINES) and len(lines) >= 3
    assert 10 <= agents <= AGENTS and both == 2
    assert plan.now_ms - DAYS * 86_400_000 <= first and last < plan.now_ms
    # live calls: chunks in the last minute and no end of call; every other call ends once per role
    (live, ended_once), = q(client, f"""
        SELECT countIf(recent AND NOT ended), countIf(NOT recent AND ended_roles = 2) FROM (
            SELECT call_id, max(ts) >= fromUnixTimestamp64Milli({plan.now_ms}) - INTERVAL 1 MINUTE AS recent,
                   max(end_of_call) AS ended, uniqExactIf(role, end_of_call) AS ended_roles
            FROM {{db}}.scores FINAL GROUP BY call_id)""")
    assert live == plan.live_calls == LIVE_CALLS and ended_once == plan.calls - LIVE_CALLS
    # the materialized views fired as for the sink's inserts: five 200 ms steps per stored chunk
    (steps,), = q(client, "SELECT count() FROM {db}.emotion_steps FINAL")
    assert steps == 5 * plan.rows
    assert q(client, "SELECT sum(chunks) FROM {db}.emotion_minute") == [(plan.rows + plan.duplicates,)]


def test_escalating_calls_turn_angry_and_have_consistent_alerts(hist):
    client, plan = hist
    rows = dict(q(client, """
        SELECT status, count() FROM {db}.alerts WHERE replay_id = '' AND rule_id LIKE 'angry%' GROUP BY status"""))
    escalating_live = 3  # live calls 1-3 escalate: FIRING, not yet RESOLVED
    assert rows == {"FIRING": plan.escalating_calls, "RESOLVED": plan.escalating_calls - escalating_live}
    (ordered,), = q(client, """
        SELECT min(r.ts > f.ts AND r.fired_ms = f.fired_ms) FROM {db}.alerts AS f
        JOIN {db}.alerts AS r ON f.alert_id = r.alert_id AND f.replay_id = r.replay_id
        WHERE f.status = 'FIRING' AND r.status = 'RESOLVED'""")
    assert ordered
    # the customer's anger rises at the alert: mean angry probability after it fired vs before it started
    (after, before, calm), = q(client, """
        SELECT avgIf(s.probs[1], s.start_ms >= a.fired_ms), avgIf(s.probs[1], s.start_ms < a.started_ms),
               (SELECT avg(top_emotion = 'angry') FROM {db}.scores
                WHERE call_id NOT IN (SELECT call_id FROM {db}.alerts WHERE rule_id LIKE 'angry%'))
        FROM {db}.scores AS s JOIN {db}.alerts AS a ON s.call_id = a.call_id AND s.role = a.role
        WHERE a.status = 'FIRING' AND a.replay_id = '' AND a.rule_id LIKE 'angry%'""")
    assert after > before + 0.2 and calm < 0.05
    assert q(client, "SELECT count() > 0 FROM {db}.alerts WHERE replay_id != ''") == [(True,)]


def test_the_same_seed_gives_the_same_history(hist):
    client, plan = hist
    digest = "SELECT groupBitXor(cityHash64(call_id, role, seq, ts, logits, attributes)) FROM {db}.scores FINAL"
    apply_schema(client, "emowatch_again")  # a second database in the same engine (one per process)
    again = generate(client, "emowatch_again", ROWS, now_ms=plan.now_ms)
    assert (again.rows, again.calls, again.alert_events) == (plan.rows, plan.calls, plan.alert_events)
    assert q(client, digest.replace("{db}", "emowatch_again")) == q(client, digest)
