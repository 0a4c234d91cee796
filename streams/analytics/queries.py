"""The seed's analyses as SQL: one builder per ``emowatch query`` command. Pure (no client, no I/O).

Each builder returns a :class:`Query` whose SQL names the database as ``{db}`` (the runner substitutes the
configured one) and takes every value as a clickhouse-connect server-side parameter ``{name:Type}``: user
input is never formatted into SQL. The same SQL runs on a ClickHouse server and on the embedded chDB.

Duplicates: the tables are ReplacingMergeTree on their natural key, and a chunk or alert delivered twice
stays two rows until a background merge. Every count here is exact before that merge:

* chunk and step counts read ``FINAL`` (the table's own collapse on its sorting key, newest insert wins);
  measured on chDB 26.9 over 1M chunks with 3% duplicates unmerged (2 cores): ``FINAL`` 29 ms, ``argMax``
  per natural key 291 ms, ``uniqExact`` 202 ms (and not exact when two versions of a chunk differ), ``LIMIT 1
  BY`` 115 ms; over 5M steps ``FINAL`` 138 ms, ``argMax`` 1045 ms. ClickHouse reads non-intersecting parts
  of a ``FINAL`` query without merging them, so the price of ``FINAL`` is paid only where duplicates may be.
* alert counts are ``uniqExact(alert_id)`` of the FIRING events (an id fires once), without ``FINAL``.

Time filters use ``ts`` (part of every sorting key, and the partition key's source), business line
filters the sorting key's first column.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["DAY_MS", "DEFAULT_EXCLUDE", "GRANULARITIES", "Query", "agents", "alerts", "call_info", "default_queries",
           "distribution"]

DAY_MS = 24 * 3600 * 1000
#: the seed's distribution query: ``WHERE emotion NOT IN ('unknown', 'other')``
DEFAULT_EXCLUDE = ("unknown", "other")
#: utterance = one row per stored chunk (``scores``); frame = one row per 200 ms step (``emotion_steps``)
GRANULARITIES = ("utterance", "frame")
CUSTOMER = "CUSTOMER"
_SINCE = "ts >= fromUnixTimestamp64Milli({since:Int64}, 'UTC')"
_UNTIL = "ts < fromUnixTimestamp64Milli({until:Int64}, 'UTC')"


@dataclass(frozen=True)
class Query:
    """One analysis: ``sql`` with ``{db}`` and ``{name:Type}`` placeholders, ``params`` their values."""

    name: str
    sql: str
    params: dict[str, Any] = field(default_factory=dict)


def _where(conds: list[tuple[Any, str, str]], params: dict[str, Any], base: list[str] | None = None) -> str:
    """``WHERE`` of the fixed conditions in ``base`` and each ``(value, name, condition)`` whose value is given."""
    parts = list(base or [])
    for value, name, cond in conds:
        if value is not None:
            parts.append(cond)
            params[name] = value
    return ("WHERE " + " AND ".join(parts)) if parts else ""


def alerts(*, since: int | None = None, until: int | None = None, business_line: str | None = None,
           priority: list[str] | None = None, status: list[str] | None = None, rule_id: str | None = None,
           call_id: str | None = None, limit: int = 100) -> Query:
    """Alert events (FIRING and RESOLVED; replays excluded), newest first. Times are epoch ms; ``since``
    inclusive, ``until`` exclusive; ``priority``/``status`` upper-case lists."""
    params: dict[str, Any] = {"limit": int(limit)}
    where = _where([(since, "since", _SINCE), (until, "until", _UNTIL),
                    (business_line, "bl", "business_line = {bl:String}"),
                    (priority, "prio", "priority IN {prio:Array(String)}"),
                    (status, "status", "status IN {status:Array(String)}"),
                    (rule_id, "rule", "rule_id = {rule:String}"),
                    (call_id, "call", "call_id = {call:String}")], params, ["replay_id = ''"])
    return Query("alerts", f"""
        SELECT ts AS time, status, priority, rule_id, business_line, call_id, role, emotions,
               round(value, 4) AS value, threshold, started_ms, fired_ms, alert_id
        FROM {{db}}.alerts FINAL {where}
        ORDER BY ts DESC, alert_id, status LIMIT {{limit:UInt32}}""", params)


def distribution(*, granularity: str = "utterance", exclude: tuple[str, ...] | list[str] = DEFAULT_EXCLUDE,
                 role: str | None = None, business_line: str | None = None, agent: str | None = None,
                 since: int | None = None, until: int | None = None) -> Query:
    """Records per emotion and their share of the records counted (the seed's ``GROUP BY emotion``), most
    frequent first. ``utterance``: the top emotion of each stored chunk; ``frame``: of each 200 ms step."""
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {', '.join(GRANULARITIES)}, not {granularity!r}")
    table, emotion = ("scores", "top_emotion") if granularity == "utterance" else ("emotion_steps", "emotion")
    params: dict[str, Any] = {}
    where = _where([(list(exclude) if exclude else None, "exclude", f"{emotion} NOT IN {{exclude:Array(String)}}"),
                    (role, "role", "role = {role:String}"), (business_line, "bl", "business_line = {bl:String}"),
                    (agent, "agent", "agent = {agent:String}"), (since, "since", _SINCE), (until, "until", _UNTIL)],
                   params)
    return Query(f"distribution_{granularity}", f"""
        SELECT emotion, records, round(records / sum(records) OVER (), 4) AS share
        FROM (SELECT {emotion} AS emotion, count() AS records FROM {{db}}.{table} FINAL {where} GROUP BY emotion)
        ORDER BY records DESC, emotion""", params)


def agents(*, since: int | None = None, until: int | None = None, business_line: str | None = None,
           limit: int = 1000) -> Query:
    """Per agent (the call attribute ``agent_id``; '' = calls without one): calls, talk time (the sum of its
    calls' durations, first chunk start to last chunk end), customer anger (mean ``angry`` probability of the
    CUSTOMER role's chunks on its calls, and the share of those chunks whose top emotion is angry), alerts
    fired (distinct FIRING alert ids on its calls, replays excluded), the customer's most frequent top emotion
    (ties: alphabetical). Angriest customers first; agents without customer chunks last."""
    params: dict[str, Any] = {"customer": CUSTOMER, "limit": int(limit)}
    where = _where([(since, "since", _SINCE), (until, "until", _UNTIL),
                    (business_line, "bl", "business_line = {bl:String}")], params)
    return Query("agents", f"""
        SELECT agent, count() AS calls, round(sum(duration_ms) / 1000, 1) AS talk_s,
               round(sum(c_angry) / nullIf(sum(c_chunks), 0), 4) AS customer_anger,
               round(sum(c_angry_top) / nullIf(sum(c_chunks), 0), 4) AS angry_share,
               sum(fired) AS alerts_fired,
               if(empty((sumMap(c_emotions) AS m).2), '', m.1[indexOf(m.2, arrayMax(m.2))]) AS customer_top_emotion
        FROM (
            SELECT agent, call_id,
                   max(start_ms + n_frames * frame_ms) - min(start_ms) AS duration_ms,
                   countIf(role = {{customer:String}}) AS c_chunks,
                   sumIf(probs[indexOf(labels, 'angry')], role = {{customer:String}}) AS c_angry,
                   countIf(role = {{customer:String}} AND top_emotion = 'angry') AS c_angry_top,
                   sumMapIf([toString(top_emotion)], [toUInt64(1)], role = {{customer:String}}) AS c_emotions
            FROM {{db}}.scores FINAL {where}
            GROUP BY agent, call_id
        ) AS c
        LEFT JOIN (
            SELECT call_id, uniqExact(alert_id) AS fired FROM {{db}}.alerts
            WHERE status = 'FIRING' AND replay_id = '' GROUP BY call_id
        ) AS a ON c.call_id = a.call_id
        GROUP BY agent
        ORDER BY customer_anger DESC NULLS LAST, alerts_fired DESC, agent
        LIMIT {{limit:UInt32}}""", params)


def call_info(call_id: str) -> Query:
    """Per role of one call: agent, business line, chunks, first event time, call-time start and end (ms)."""
    return Query("call", """
        SELECT role, any(agent) AS agent, any(business_line) AS business_line, count() AS chunks,
               min(ts) AS first_time, min(start_ms) AS from_ms, max(start_ms + n_frames * frame_ms) AS to_ms
        FROM {db}.scores FINAL WHERE call_id = {call:String}
        GROUP BY role ORDER BY role""", {"call": call_id})


def default_queries(now_ms: int) -> dict[str, Query]:
    """Each command's default invocation (``emowatch query NAME`` without options): alerts of the last day,
    the distribution at both granularities over all history, the agents over all history. ``call`` needs an
    id (:func:`call_info`); ``sql`` is the user's."""
    return {
        "alerts": alerts(since=now_ms - DAY_MS),
        "distribution": distribution(),
        "distribution_frame": distribution(granularity="frame"),
        "agents": agents(),
    }
