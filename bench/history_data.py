"""A realistic score/alert history generated inside ClickHouse, for the dashboard tests and ``bench history``.

Everything is ``INSERT ... SELECT`` over ``numbers()`` with deterministic hash functions (``cityHash64`` of a
seed and the row's coordinates), so a million chunk rows take a minute, not an hour of Python loops, and
the same seed gives the same history. Inserting into ``scores`` fires the ``emotion_steps`` and
``emotion_minute`` materialized views exactly as the sink's inserts do.

The history (``rows`` chunk rows, 1 s chunks of 50 frames x 9 logits, both roles of every call):

* a **call plan** (a Memory table in a scratch database): calls numbered 0, 1, ... with a log-normal
  duration (median ``median_s``, 10 s .. 60 min), a business line, one of :data:`AGENTS` agents
  (``attributes['agent_id']``), a start time uniform over the :data:`DAYS` days before ``now_ms``; calls are
  taken until the chunk rows reach ``rows`` (so there are at least ``rows``, at most one call more);
* call 0 is the **longest** (60 min, or ``rows / 8`` s when that is less); calls 1..:data:`LIVE_CALLS` are
  **live**: still running at ``now_ms`` (their last chunk is seconds old, no ``end_of_call``); calls 1-3 of
  them escalate, so "calls at risk now" has rows;
* a share (:data:`ESCALATING_PCT` %, and calls 0-3) **escalates**: from a point at 30-70 % of the call the
  customer's ``angry`` logit rises over 30 s until anger is the top emotion; others keep a neutral base
  with a call-level secondary mood and frame noise;
* **alerts** consistent with that: per escalating call a FIRING ``angry-sustained`` (HIGH) or
  ``angry-critical`` (CRITICAL) on the customer 8 s after the escalation starts and, unless the call is live,
  its RESOLVED 20-80 s later (at the latest when the call ends); an ``agent-stressed`` (MEDIUM) episode on
  the agent of every tenth call; a replayed copy (``replay_id`` set, excluded by every production read) of
  every fourth escalating call's FIRING;
* **re-deliveries**: ~0.2 % of the chunks are inserted a second time (as after a sink crash: same natural
  key, later ``inserted_at``, other offsets), so reads must deduplicate to count right.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from emowatch.topics.model_io import EMOTIONS

__all__ = ["AGENTS", "BUSINESS_LINES", "DAYS", "HistoryPlan", "SIZES", "generate"]

#: chunk rows per size: ``bench history`` (full / --quick) and the dashboard test
SIZES = {"full": 1_000_000, "quick": 100_000, "test": 2_000}
BUSINESS_LINES = ("retail", "aftersales", "vip", "collections", "default")
AGENTS = 200
DAYS = 30
LIVE_CALLS = 6
ESCALATING_PCT = 15
DUPLICATE_PER_MILLE = 2
FRAMES, FRAME_MS = 50, 20
LONGEST_S = 3600
MODEL, MODEL_VERSION = "iic/emotion2vec_plus_large", "bench-history-1"
GEN_DB = "emowatch_history_gen"
ROLES = ("CUSTOMER", "AGENT")

_N = len(EMOTIONS)
_IDX = {e: i + 1 for i, e in enumerate(EMOTIONS)}  # ClickHouse arrays are 1-based


@dataclass(frozen=True)
class HistoryPlan:
    """What :func:`generate` wrote."""

    rows: int                 #: distinct chunk rows (both roles)
    duplicates: int           #: chunk rows inserted a second time (re-deliveries)
    calls: int
    live_calls: int
    escalating_calls: int
    alert_events: int         #: alert rows, replayed copies included
    now_ms: int               #: the history's end (live calls' last chunks are just before it)
    longest_call: str
    longest_s: int
    typical_call: str         #: the call whose duration is nearest 5 minutes
    typical_s: int
    seconds: float            #: wall time of the generation

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _u(k: int) -> str:
    """A uniform [0, 1) number per plan row, stream ``k``."""
    return f"(cityHash64({{seed:UInt64}}, number, {k}) / 18446744073709551616.0)"


def _plan_sql(db: str) -> str:
    bl = "[" + ", ".join(f"'{b}'" for b in BUSINESS_LINES) + "]"
    z = f"(sqrt(-2 * log({_u(1)} + 1e-12)) * cos(2 * pi() * {_u(2)}))"
    return f"""
INSERT INTO {db}.plan
SELECT call_no, call_id, business_line, agent, dur, start_ms, escalates, esc_at, critical, live, agent_alert,
       resolve_after, cum
FROM (
    SELECT number AS call_no,
           concat('hist-', lower(hex(cityHash64({{seed:UInt64}}, number, 0))), '-', toString(number)) AS call_id,
           {bl}[1 + cityHash64({{seed:UInt64}}, number, 3) % {len(BUSINESS_LINES)}] AS business_line,
           concat('agent-', leftPad(toString(cityHash64({{seed:UInt64}}, number, 4) % {AGENTS}), 3, '0')) AS agent,
           toUInt32(if(number = 0, {{longest:UInt32}},
                       greatest(10, least({LONGEST_S}, round({{median:Float64}} * exp(0.8 * {z})))))) AS dur,
           number BETWEEN 1 AND {LIVE_CALLS} AS live,
           if(live, {{now_ms:Int64}} - (dur - 1) * 1000 - number * 2000,
              {{now_ms:Int64}} - {DAYS * 86_400_000}
              + toInt64({_u(5)} * greatest(0, {DAYS * 86_400} - dur - 600)) * 1000) AS start_ms,
           number <= 3 OR cityHash64({{seed:UInt64}}, number, 6) % 100 < {ESCALATING_PCT} AS escalates,
           toUInt32(dur * (0.3 + 0.4 * {_u(7)})) AS esc_at,
           cityHash64({{seed:UInt64}}, number, 8) % 3 = 0 AS critical,
           number % 10 = 9 AS agent_alert,
           toUInt32(20 + cityHash64({{seed:UInt64}}, number, 9) % 61) AS resolve_after,
           sum(2 * dur) OVER (ORDER BY number ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cum
    FROM numbers({{candidates:UInt64}})
)
WHERE cum - 2 * dur < {{rows:UInt64}}
"""


def _chunks_select(db: str, where: str) -> str:
    """The scores rows of the plan's calls with ``cum`` in ``(lo, hi]`` that also pass ``where``."""
    labels = "[" + ", ".join(f"'{e}'" for e in EMOTIONS) + "]"
    a, h, n, s, f = _IDX["angry"], _IDX["happy"], _IDX["neutral"], _IDX["sad"], _IDX["fearful"]
    # per chunk: base logits (neutral, a call-level secondary mood drifting slowly, escalation to anger on the
    # customer side and some fear/sadness on the agent's), then 50 frames of uniform noise around them
    base = (f"arrayMap(k -> (k = {n}) * 2.0"
            f" + (k = mood) * (0.8 + 0.8 * sin(seq / 23.0 + call_no))"
            f" + (k = {a}) * if(role = 'CUSTOMER', ramp * 4.5, 0)"
            f" + (k IN ({f}, {s})) * if(role = 'AGENT', ramp * 1.2, 0),"
            f" range(1, {_N + 1}))")
    return f"""
SELECT business_line, call_id, role, toInt64(seq) AS seq, toInt64(seq) * 1000 AS start_ms,
       fromUnixTimestamp64Milli(p_start + toInt64(seq) * 1000, 'UTC') AS ts, {FRAME_MS} AS frame_ms,
       {FRAMES} AS n_frames, {labels} AS labels, probs, labels[top] AS top_emotion, probs[top] AS top_prob,
       logits, [] AS embedding, false AS gap_before, (NOT live AND seq + 1 = dur) AS end_of_call,
       '{MODEL}' AS model, '{MODEL_VERSION}' AS model_version, map('agent_id', agent) AS attributes,
       toUInt16(cityHash64(call_id) % 12) AS kafka_partition,
       toInt64(call_no * 20000 + seq * 2 + (role = 'AGENT')) + {{offset_base:Int64}} AS kafka_offset
FROM (
    SELECT business_line, call_id, agent, call_no, dur, live, start_ms AS p_start, seq, role,
           [{h}, {s}, {_IDX['surprised']}][call_no % 3 + 1] AS mood,
           if(escalates, least(greatest((toInt64(seq) - esc_at) / 30.0, 0), 1), 0) AS ramp,
           cityHash64({{seed:UInt64}}, call_no, seq, role) AS rh,
           {base} AS b,
           arrayMap(i -> toFloat32(b[i % {_N} + 1] + (cityHash64(rh, i) % 3001) / 1000.0 - 1.5),
                    range({FRAMES * _N})) AS logits,
           arrayMap(k -> arrayAvg(arrayMap(fr -> logits[fr * {_N} + k], range({FRAMES}))),
                    range(1, {_N + 1})) AS mean,
           arrayMap(x -> exp(x - arrayMax(mean)), mean) AS e,
           arrayMap(x -> toFloat32(x / arraySum(e)), e) AS probs,
           indexOf(probs, arrayMax(probs)) AS top
    FROM {GEN_DB}.plan
    ARRAY JOIN range(dur) AS seq
    ARRAY JOIN {list(ROLES)} AS role
    WHERE cum > {{lo:UInt64}} AND cum <= {{hi:UInt64}} AND {where}
)
"""


def _alerts_sql(db: str) -> str:
    """FIRING/RESOLVED events of the escalating calls and the agent episodes, plus replayed copies."""
    cols = ("business_line, call_id, ts, alert_id, status, rule_id, rule_version, rule_set, priority, action, "
            "role, emotions, value, threshold, started_ms, fired_ms, channels, labels, replay_id, kafka_partition, "
            "kafka_offset")

    def event(status: str, rule: str, prio: str, role: str, emotions: str, start: str, fire: str, at: str,
              where: str, replay: str = "''", salt: int = 0) -> str:
        return f"""
    SELECT business_line, call_id, fromUnixTimestamp64Milli(start_ms + ({at}) * 1000, 'UTC') AS ts,
           lower(hex(cityHash64({{seed:UInt64}}, call_no, {rule}))) AS alert_id, '{status}' AS status,
           {rule} AS rule_id, 'sha256:bench' AS rule_version, 'default' AS rule_set, {prio} AS priority,
           'ALERT' AS action, '{role}' AS role, {emotions} AS emotions,
           0.7 + (cityHash64(call_no, {salt}) % 250) / 1000.0 AS value, 0.7 AS threshold,
           toInt64({start}) * 1000 AS started_ms, toInt64({fire}) * 1000 AS fired_ms,
           ['webhook'] AS channels, map('rule_name', {rule}) AS labels, {replay} AS replay_id,
           toUInt16(cityHash64(call_id) % 12) AS kafka_partition, toInt64(call_no * 8 + {salt}) AS kafka_offset
    FROM {GEN_DB}.plan WHERE {where}"""

    esc_rule = "if(critical, 'angry-critical', 'angry-sustained')"
    esc_prio = "if(critical, 'CRITICAL', 'HIGH')"
    fire = "least(esc_at + 8, dur - 1)"
    resolve = f"least({fire} + resolve_after, dur)"  # at the latest when the call ends
    agent_fire = "least(intDiv(dur, 2) + 5, dur - 1)"
    parts = [
        event("FIRING", esc_rule, esc_prio, "CUSTOMER", "['angry']", "esc_at", fire, fire, "escalates", salt=0),
        event("RESOLVED", esc_rule, esc_prio, "CUSTOMER", "['angry']", "esc_at", fire, resolve,
              "escalates AND NOT live", salt=1),
        event("FIRING", "'agent-stressed'", "'MEDIUM'", "AGENT", "['fearful', 'sad']", "intDiv(dur, 2)",
              agent_fire, agent_fire, "agent_alert", salt=2),
        event("RESOLVED", "'agent-stressed'", "'MEDIUM'", "AGENT", "['fearful', 'sad']", "intDiv(dur, 2)",
              agent_fire, f"least({agent_fire} + 20, dur)", "agent_alert AND NOT live", salt=3),
        event("FIRING", esc_rule, esc_prio, "CUSTOMER", "['angry']", "esc_at", fire, fire,
              "escalates AND call_no % 4 = 0", replay="'bench-replay-1'", salt=4),
    ]
    return f"INSERT INTO {db}.alerts ({cols})\nSELECT * FROM (" + "\n    UNION ALL".join(parts) + "\n)"


_COLUMNS = ("business_line, call_id, role, seq, start_ms, ts, frame_ms, n_frames, labels, probs, top_emotion, "
            "top_prob, logits, embedding, gap_before, end_of_call, model, model_version, attributes, "
            "kafka_partition, kafka_offset")
_PLAN_TABLE = """
CREATE TABLE {gen}.plan (call_no UInt64, call_id String, business_line String, agent String, dur UInt32,
    start_ms Int64, escalates Bool, esc_at UInt32, critical Bool, live Bool, agent_alert Bool,
    resolve_after UInt32, cum UInt64) ENGINE = Memory"""


def _median_s(rows: int) -> float:
    """Median call length: ~4 min, shorter for small histories so that they still hold dozens of calls."""
    return float(min(240, max(10, rows // 80)))


def generate(client: Any, db: str, rows: int, *, now_ms: int | None = None, seed: int = 14,
             batch_rows: int = 50_000, progress: bool = False) -> HistoryPlan:
    """Fill ``db`` (migrated, empty) with a history of at least ``rows`` chunk rows ending at ``now_ms``
    (default: now) and its alerts; what was written. ``progress`` shows a rich progress bar."""
    t0 = time.perf_counter()
    now_ms = int(time.time() * 1000) if now_ms is None else int(now_ms)
    params = {"seed": seed, "now_ms": now_ms, "rows": rows, "median": _median_s(rows),
              "longest": min(LONGEST_S, max(20, rows // 8)), "candidates": rows // 20 + LIVE_CALLS + 2,
              "offset_base": 0}
    client.command(f"DROP DATABASE IF EXISTS {GEN_DB}")
    client.command(f"CREATE DATABASE {GEN_DB}")
    client.command(_PLAN_TABLE.format(gen=GEN_DB))
    client.command(_plan_sql(GEN_DB), parameters=params)
    total = int(client.query(f"SELECT max(cum) FROM {GEN_DB}.plan").result_rows[0][0])
    bounds = list(range(0, total, batch_rows)) + [total]
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task(f"history: {total:,} chunk rows", total=total)
        for lo, hi in zip(bounds, bounds[1:]):
            client.command(f"INSERT INTO {db}.scores ({_COLUMNS})" + _chunks_select(db, "1"),
                           parameters={**params, "lo": lo, "hi": hi})
            bar.update(task, completed=hi)
        dup_where = f"cityHash64(rh, 'dup') % 1000 < {DUPLICATE_PER_MILLE}"
        client.command(f"INSERT INTO {db}.scores ({_COLUMNS})" + _chunks_select(db, dup_where),
                       parameters={**params, "lo": 0, "hi": total, "offset_base": 10**12})
        client.command(_alerts_sql(db), parameters=params)
    q = client.query(f"""
        SELECT count(), countIf(live), countIf(escalates),
               argMax(call_id, dur), max(dur),
               argMin(call_id, abs(toInt64(dur) - 300)), argMin(dur, abs(toInt64(dur) - 300))
        FROM {GEN_DB}.plan""").result_rows[0]
    dups = int(client.query(f"""
        SELECT count() FROM {GEN_DB}.plan ARRAY JOIN range(dur) AS seq ARRAY JOIN {list(ROLES)} AS role
        WHERE {dup_where.replace('rh', 'cityHash64({seed:UInt64}, call_no, seq, role)')}""",
                            parameters=params).result_rows[0][0])
    alerts = int(client.query(f"SELECT count() FROM {db}.alerts").result_rows[0][0])
    client.command(f"DROP DATABASE IF EXISTS {GEN_DB}")
    return HistoryPlan(rows=total, duplicates=dups, calls=int(q[0]), live_calls=int(q[1]),
                       escalating_calls=int(q[2]), alert_events=alerts, now_ms=now_ms, longest_call=q[3],
                       longest_s=int(q[4]), typical_call=q[5], typical_s=int(q[6]),
                       seconds=round(time.perf_counter() - t0, 2))
