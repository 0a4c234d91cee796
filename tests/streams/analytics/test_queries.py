"""The analyses on the embedded engine against an independent computation over the records inserted: exact with
duplicates not yet merged, filters, read-only SQL (writes refused by the check and by ClickHouse itself)."""
from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pytest
from analytics_history import DB, NOW_MS, OLD, RECENT

from emowatch.streams.analytics import queries as q
from emowatch.streams.analytics.call_summary import call_sections, load_call
from emowatch.streams.analytics.runner import AnalyticsError, check_read_only, run, run_sql

pytestmark = pytest.mark.integration  # the embedded ClickHouse (chDB)


def _top(rec) -> str:
    return rec["labels"][int(np.argmax(rec["chunk_probs"]))]


def _shares(counts: Counter) -> list[tuple]:
    total = sum(counts.values())
    return sorted(((e, n, round(n / total, 4)) for e, n in counts.items()), key=lambda r: (-r[1], r[0]))


def test_default_queries_name_each_command():
    queries = q.default_queries(NOW_MS)
    assert set(queries) == {"alerts", "distribution", "distribution_frame", "agents"}
    assert queries["alerts"].params["since"] == NOW_MS - q.DAY_MS
    for query in queries.values():
        assert "{db}." in query.sql and "%" not in query.sql


def test_alerts_are_distinct_events_newest_first_without_replays(history):
    got = run(history.client, q.alerts(since=NOW_MS - q.DAY_MS), DB).dicts()
    expected = sorted((a for a in history.alerts if not a["replay_id"] and a["event_time"] >= NOW_MS - q.DAY_MS),
                      key=lambda a: -a["event_time"])
    assert [(r["alert_id"], r["status"]) for r in got] == [(a["alert_id"], a["status"]) for a in expected]
    assert [(r["alert_id"], r["status"]) for r in got] == [("al-3", "FIRING"), ("al-1", "RESOLVED"),
                                                           ("al-1", "FIRING")]
    first = got[0]
    assert first["time"].timestamp() * 1000 == pytest.approx(RECENT + 120_000 + 1800)
    assert (first["priority"], first["rule_id"], first["business_line"], first["emotions"]) == \
        ("MEDIUM", "vip-angry", "vip", ["angry"])


@pytest.mark.parametrize("filters, ids", [
    ({"priority": ["HIGH"]}, [("al-1", "RESOLVED"), ("al-1", "FIRING")]),
    ({"status": ["FIRING"]}, [("al-3", "FIRING"), ("al-1", "FIRING"), ("al-4", "FIRING")]),
    ({"business_line": "vip"}, [("al-3", "FIRING")]),
    ({"rule_id": "fear"}, [("al-4", "FIRING")]),
    ({"call_id": "c-1", "limit": 1}, [("al-1", "RESOLVED")]),
    ({"since": OLD, "until": OLD + 60_000}, [("al-4", "FIRING")]),
])
def test_alert_filters(history, filters, ids):
    got = run(history.client, q.alerts(**filters), DB).dicts()
    assert [(r["alert_id"], r["status"]) for r in got] == ids


def test_distribution_per_chunk_counts_each_chunk_once(history):
    got = run(history.client, q.distribution(), DB).rows
    counts = Counter(t for rec in history.chunks.values() if (t := _top(rec)) not in q.DEFAULT_EXCLUDE)
    assert got == _shares(counts)
    assert dict(Counter({r[0]: r[1] for r in got}))["angry"] == 4  # c-1 x2 and c-3 x2, stored 1 + 3 more times
    assert "unknown" not in {r[0] for r in got}  # c-2's re-scored chunk is unknown now: excluded, its sad is gone
    assert "sad" not in {r[0] for r in got}


def test_distribution_per_step_and_filters(history):
    steps = list(history.steps())
    got = run(history.client, q.distribution(granularity="frame"), DB).rows
    assert got == _shares(Counter(e for _, _, e in steps if e not in q.DEFAULT_EXCLUDE))
    everything = run(history.client, q.distribution(granularity="frame", exclude=()), DB).rows
    assert sum(r[1] for r in everything) == len(steps) == 5 * len(history.chunks)
    only = run(history.client, q.distribution(role="CUSTOMER", business_line="retail", agent="ag-1",
                                              since=RECENT - 1), DB).rows
    assert only == _shares(Counter(t for rec in history.chunks.values() if rec["role"] == "CUSTOMER"
                                   and rec["business_line"] == "retail" and rec["attributes"].get("agent_id") == "ag-1"
                                   and (t := _top(rec)) not in q.DEFAULT_EXCLUDE))
    with pytest.raises(ValueError, match="granularity"):
        q.distribution(granularity="word")


def _expected_agents(history) -> list[tuple]:
    calls = defaultdict(list)
    for rec in history.chunks.values():
        calls[(rec["attributes"].get("agent_id", ""), rec["call_id"])].append(rec)
    fired = {a["call_id"] for a in history.alerts if a["status"] == "FIRING" and not a["replay_id"]}
    per = defaultdict(lambda: {"calls": 0, "ms": 0, "cust": [], "alerts": 0})
    for (agent, call_id), recs in calls.items():
        p = per[agent]
        p["calls"] += 1
        p["ms"] += max(r["start_ms"] + r["n_frames"] * r["frame_ms"] for r in recs) - min(r["start_ms"] for r in recs)
        p["cust"] += [r for r in recs if r["role"] == "CUSTOMER"]
        p["alerts"] += len({a["alert_id"] for a in history.alerts if a["call_id"] == call_id and a["status"] ==
                            "FIRING" and not a["replay_id"]}) if call_id in fired else 0
    out = []
    for agent, p in per.items():
        cust = p["cust"]
        anger = round(float(np.mean([r["chunk_probs"][r["labels"].index("angry")] for r in cust])), 4) if cust else None
        share = round(sum(_top(r) == "angry" for r in cust) / len(cust), 4) if cust else None
        counts = Counter(_top(r) for r in cust)
        top = min(counts, key=lambda e: (-counts[e], e)) if counts else ""
        out.append((agent, p["calls"], round(p["ms"] / 1000, 1), anger, share, p["alerts"], top))
    return sorted(out, key=lambda r: (r[3] is None, -(r[3] or 0), -r[5], r[0]))


def test_agents(history):
    got = run(history.client, q.agents(), DB).rows
    expected = _expected_agents(history)
    assert [r[0] for r in got] == [r[0] for r in expected] == ["ag-2", "ag-1", ""]
    for g, e in zip(got, expected):
        assert g[:3] == e[:3] and g[5:] == e[5:]
        assert (g[3], g[4]) == pytest.approx((e[3], e[4]), abs=1e-4) if e[3] is not None else g[3] is g[4] is None
    assert got[1][1:3] == (2, 5.0) and got[1][5] == 1  # ag-1: c-1 (3 s) + c-2 (2 s), al-1 once
    recent = run(history.client, q.agents(since=RECENT - 1, business_line="retail"), DB).rows
    assert [r[0] for r in recent] == ["ag-1"]


def test_call_summary(history):
    call = load_call(history.client, DB, "c-1")
    roles, segments, alerts = call_sections(call)
    assert [r[3] for r in roles[1].rows] == ["AGENT", "CUSTOMER"]
    assert all(r[:3] == ("c-1", "retail", "ag-1") and r[5] == 3.0 for r in roles[1].rows)
    customer = roles[1].dicts()[1]
    assert customer["chunks"] == 3 and customer["summary"].startswith("0.0–1.0 s neutral → 1.0–")
    assert ("CUSTOMER", 1.0, 2.6, "angry") in [r[:4] for r in segments[1].rows]
    assert [(a["alert_id"], a["status"]) for a in alerts[1].dicts()] == [("al-1", "FIRING"), ("al-1", "RESOLVED")]
    assert load_call(history.client, DB, "no-such-call") is None


def test_sql_reads_with_the_default_database(history):
    got = run_sql(history.client, "SELECT emotion, count() AS n FROM emotion_records WHERE granularity = 'utterance' "
                                  "AND emotion NOT IN ('unknown', 'other') GROUP BY emotion ORDER BY emotion", DB)
    counts = Counter(t for rec in history.chunks.values() if (t := _top(rec)) not in q.DEFAULT_EXCLUDE)
    assert got.columns == ["emotion", "n"] and got.rows == sorted(counts.items())
    assert run_sql(history.client, "  -- the tables\nSHOW TABLES LIKE 'emotion%';", DB).rows
    assert run_sql(history.client, "WITH 1 AS x SELECT x, 'a;b' AS s", DB).rows == [(1, "a;b")]


@pytest.mark.parametrize("sql", [
    "INSERT INTO scores (call_id) VALUES ('x')", "ALTER TABLE scores DELETE WHERE 1", "DROP TABLE alerts",
    "SELECT 1; DROP TABLE alerts", "SELECT 1 INTO OUTFILE '/tmp/x.csv'", "OPTIMIZE TABLE scores FINAL", "",
    "/* SELECT */ TRUNCATE TABLE scores",
])
def test_sql_refuses_writes_before_sending(sql):
    with pytest.raises(AnalyticsError):
        check_read_only(sql)


@pytest.mark.parametrize("sql", [
    "SELECT * FROM emotion_records SETTINGS readonly = 0",
    "WITH (SELECT 1) AS x SELECT * FROM file('/etc/hostname', 'LineAsString')",
    "SELECT * FROM url('http://127.0.0.1:9/', 'CSV', 'x String')",
])
def test_clickhouse_itself_refuses_what_the_check_lets_through(history, sql):
    before = history.client.query(f"SELECT count() FROM {DB}.scores").result_rows
    with pytest.raises(AnalyticsError, match="READONLY|readonly"):
        run_sql(history.client, sql, DB)
    assert history.client.query(f"SELECT count() FROM {DB}.scores").result_rows == before
    # the client is still writable for the sink's own work: only the user's query ran read-only
    history.client.command(f"SELECT count() FROM {DB}.embedding_files")


SMUGGLED = ["INSERT INTO scores (call_id) VALUES ('smuggled')", "ALTER TABLE scores DELETE WHERE 1",
            "INSERT INTO embedding_files (call_id) SELECT 'x'"]


@pytest.mark.parametrize("sql", SMUGGLED)
def test_readonly_is_honoured_by_the_engine_even_without_the_check(history, monkeypatch, sql):
    from emowatch.streams.analytics import runner

    monkeypatch.setattr(runner, "check_read_only", lambda text: text)  # as if the check let it through
    counts = [history.client.query(f"SELECT count() FROM {DB}.{t}").result_rows for t in ("scores", "embedding_files")]
    with pytest.raises(AnalyticsError, match="READONLY"):
        runner.run_sql(history.client, sql, DB)
    assert [history.client.query(f"SELECT count() FROM {DB}.{t}").result_rows
            for t in ("scores", "embedding_files")] == counts
