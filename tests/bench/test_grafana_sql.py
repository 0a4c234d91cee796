"""bench/grafana_sql.py: Grafana's variable interpolation and the ClickHouse plugin's macros, expanded as they
would reach ClickHouse (pure: no engine; the panel test runs the results on it)."""
from __future__ import annotations

import pytest

from emowatch.bench.grafana_sql import ALL, Expansion, expand, interval_ms, targets, template_queries

T0, T1 = 1_700_000_000_123, 1_700_086_400_456  # a day apart, with milliseconds


def x(**values) -> Expansion:
    return Expansion(T0, T1, values, {"bl": ["retail", "vip"], "agent": ["a-1", "a-2"]})


def test_time_macros_are_the_plugins():
    e = Expansion(T0, T1)
    assert expand("$__timeFilter(ts)", e) == "ts >= toDateTime(1700000000) AND ts <= toDateTime(1700086400)"
    assert expand("$__timeFilter_ms(ts)", e) == ("ts >= fromUnixTimestamp64Milli(1700000000123) AND "
                                                 "ts <= fromUnixTimestamp64Milli(1700086400456)")
    assert expand("$__fromTime $__toTime $__fromTime_ms $__toTime_ms", e) == (
        "toDateTime(1700000000) toDateTime(1700086400) fromUnixTimestamp64Milli(1700000000123) "
        "fromUnixTimestamp64Milli(1700086400456)")
    assert expand("$__dateFilter(d)", e) == "d >= toDate('2023-11-14') AND d <= toDate('2023-11-15')"
    assert expand("$__dt(d, t)", e) == expand("$__dateTimeFilter(d,t)", e) == (
        "(d >= toDate('2023-11-14') AND d <= toDate('2023-11-15')) AND "
        "(t >= toDateTime(1700000000) AND t <= toDateTime(1700086400))")
    # a day over 1,000 points = 86.4 s -> Grafana rounds to 1 minute
    assert expand("$__timeInterval(ts)", e) == "toStartOfInterval(toDateTime(ts), INTERVAL 60 second)"
    assert expand("$__timeInterval_ms(ts)", e) == "toStartOfInterval(toDateTime64(ts, 3), INTERVAL 60000 millisecond)"
    assert expand("$__interval_s $__interval $__interval_ms $__from $__to", e) == f"60 1m 60000 {T0} {T1}"
    assert expand("$__timeFilter(toDateTime(ts, 'UTC'))", e).startswith("toDateTime(ts, 'UTC') >= toDateTime(")


def test_interval_follows_range_and_panel_minimum():
    day = 86_400_000
    assert interval_ms(0, day) == 60_000
    assert interval_ms(0, 7 * day) == 600_000
    assert interval_ms(0, 3_600_000) == 5_000 and interval_ms(0, 3_600_000, "1m") == 60_000
    assert interval_ms(0, 400 * day) == 43_200_000


def test_variables_formats_all_and_conditional_all():
    sql = "business_line IN (${bl:singlequote}) AND agent IN ($agent) AND call = ${call} AND x = '${call:sqlstring}'"
    assert expand(sql, x(bl=ALL, agent=["a-2"], call="c'1")) == (
        "business_line IN ('retail','vip') AND agent IN (a-2) AND call = c'1 AND x = ''c''1''")
    assert expand("${bl:csv}|${bl:pipe}|${bl}|$bl", x(bl=["r", "v"])) == "r,v|r|v|'r','v'|'r','v'"
    assert expand("IN (${bl:singlequote})", x(bl=["o'b"])) == "IN ('o\\'b')"
    cond = "$__conditionalAll(agent IN (${agent:singlequote}), $agent) AND $__conditionalAll(f(a, b), ${bl})"
    assert expand(cond, x(agent=ALL, bl=["vip"])) == "1=1 AND f(a, b)"
    assert expand(cond, x(agent=["a-1"], bl=ALL)) == "agent IN ('a-1') AND 1=1"


def test_mistakes_raise():
    with pytest.raises(KeyError, match="no variable 'nope'"):
        expand("x = $nope", x())
    with pytest.raises(ValueError, match="unknown or malformed macro"):
        expand("$__timeFiltr(ts)", x())
    with pytest.raises(ValueError, match="unbalanced"):
        expand("$__timeFilter(ts", x())
    with pytest.raises(ValueError, match="not supported"):
        expand("${bl:percentencode}", x(bl=["a"]))


def test_targets_and_variable_queries_of_a_dashboard():
    dash = {"panels": [{"id": 1, "targets": [{"refId": "A", "rawSql": "SELECT 1"}, {"refId": "B"}]},
                       {"id": 2, "type": "row",
                        "panels": [{"id": 3, "targets": [{"refId": "A", "rawSql": "SELECT 3"}]}]}],
            "templating": {"list": [{"name": "a", "type": "query", "query": "SELECT 'a'"},
                                    {"name": "b", "type": "query", "query": {"rawSql": "SELECT 'b'"}},
                                    {"name": "c", "type": "custom", "query": "x,y"}]}}
    assert [(p["id"], t["refId"]) for p, t in targets(dash)] == [(1, "A"), (3, "A")]
    assert template_queries(dash) == {"a": "SELECT 'a'", "b": "SELECT 'b'"}
