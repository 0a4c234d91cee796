"""Dashboard SQL as Grafana and its ClickHouse plugin send it: used by the panel test and ``bench history``.

A panel target's ``rawSql`` goes through three steps before it reaches ClickHouse
(``grafana-clickhouse-datasource`` v4, ``src/data/CHDatasource.ts`` and ``pkg/macros/macros.go``):

1. the plugin's front end replaces ``$__conditionalAll(condition, $var)`` by ``1=1`` when ``var`` is "All";
2. Grafana's template service replaces variables: ``$var``, ``${var}``, ``${var:format}`` (``singlequote``,
   ``doublequote``, ``sqlstring``, ``csv``, ``raw``, ``pipe``); a multi-value without a format becomes
   ``'a','b'`` (the plugin's formatter); "All" stands for every option of the variable; also Grafana's
   ``$__interval``, ``$__interval_ms``, ``$__from``, ``$__to`` (epoch ms);
3. the plugin's back end expands its macros: ``$__timeFilter(col)``, ``$__timeFilter_ms(col)``, ``$__dateFilter(col)``,
   ``$__dateTimeFilter(d, t)`` / ``$__dt``, ``$__fromTime``, ``$__toTime`` (``_ms`` variants), ``$__timeInterval(col)``,
   ``$__timeInterval_ms(col)``, ``$__interval_s``.

The interval is Grafana's: the time range over ``max_data_points`` (the panel's width in pixels, 1,000 here),
at least the panel's ``interval`` ("1m"), rounded to Grafana's steps (``rangeutil.roundInterval``).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ALL", "Expansion", "expand", "expanded_targets", "interval_ms", "parse_duration_ms", "resolve_variables",
           "targets", "template_queries"]

#: the value of a variable set to "All" (Grafana's ``$__all``)
ALL = "$__all"
MAX_DATA_POINTS = 1000

# Grafana's rangeutil.roundInterval: (below this many ms, use this interval)
_ROUND = ((15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500), (1_500, 1_000), (3_500, 2_000),
          (7_500, 5_000), (12_500, 10_000), (17_500, 15_000), (25_000, 20_000), (45_000, 30_000),
          (90_000, 60_000), (210_000, 120_000), (450_000, 300_000), (750_000, 600_000), (1_050_000, 900_000),
          (1_500_000, 1_200_000), (2_700_000, 1_800_000), (5_400_000, 3_600_000), (9_000_000, 7_200_000),
          (16_200_000, 10_800_000), (32_400_000, 21_600_000), (86_400_000, 43_200_000),
          (604_800_000, 86_400_000), (1_814_400_000, 604_800_000), (3_628_800_000, 2_592_000_000))
_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def parse_duration_ms(text: str) -> int:
    """``"1m"`` -> 60000 (Grafana's interval syntax: a number and ms/s/m/h/d/w)."""
    m = re.fullmatch(r"\s*(\d+)\s*(ms|s|m|h|d|w)\s*", text)
    if not m:
        raise ValueError(f"not a Grafana interval: {text!r}")
    return int(m.group(1)) * _UNITS_MS[m.group(2)]


def interval_ms(from_ms: int, to_ms: int, min_interval: str | None = None,
                max_data_points: int = MAX_DATA_POINTS) -> int:
    """The ``$__interval`` Grafana computes for a panel: range / points, at least ``min_interval``, rounded."""
    raw = max(1, (to_ms - from_ms) // max(1, max_data_points))
    if min_interval:
        raw = max(raw, parse_duration_ms(min_interval))
    for below, step in _ROUND:
        if raw < below:
            return step
    return 31_536_000_000


def _format_ms(ms: int) -> str:
    for unit in ("w", "d", "h", "m", "s"):
        if ms % _UNITS_MS[unit] == 0:
            return f"{ms // _UNITS_MS[unit]}{unit}"
    return f"{ms}ms"


@dataclass(frozen=True)
class Expansion:
    """A time range, the variables' values and their options (for "All"), and the panel's interval."""

    from_ms: int
    to_ms: int
    values: Mapping[str, str | Sequence[str]] = field(default_factory=dict)   #: name -> value(s) or ALL
    options: Mapping[str, Sequence[str]] = field(default_factory=dict)        #: name -> every option
    min_interval: str | None = None

    @property
    def interval_ms(self) -> int:
        return interval_ms(self.from_ms, self.to_ms, self.min_interval)

    def selected(self, name: str) -> list[str]:
        v = self.values[name]
        if v == ALL or (not isinstance(v, str) and list(v) == [ALL]):
            return [str(o) for o in self.options.get(name, [])]
        return [v] if isinstance(v, str) else [str(x) for x in v]

    def is_all(self, name: str) -> bool:
        v = self.values.get(name)
        return v in ("", ALL) or (v is not None and not isinstance(v, str) and list(v) in ([], [ALL]))


def _macro_args(sql: str, open_at: int) -> tuple[list[str], int]:
    """The comma-separated arguments of the call whose ``(`` is at ``open_at``; and the index after ``)``."""
    depth, args, start = 0, [], open_at + 1
    quote = None
    for i in range(open_at, len(sql)):
        ch = sql[i]
        if quote:
            if ch == quote and sql[i - 1] != "\\":
                quote = None
            continue
        if ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                args.append(sql[start:i])
                return [a.strip() for a in args], i + 1
        elif ch == "," and depth == 1:
            args.append(sql[start:i])
            start = i + 1
    raise ValueError(f"unbalanced parentheses after position {open_at}: {sql[open_at:open_at + 60]!r}")


def _conditional_all(sql: str, x: Expansion) -> str:
    token = "$__conditionalAll("
    while (at := sql.rfind(token)) != -1:
        args, end = _macro_args(sql, at + len(token) - 1)
        if len(args) != 2:
            raise ValueError(f"$__conditionalAll takes 2 arguments, got {len(args)}")
        m = re.search(r"\$\{(\w+)[^}]*\}|\$(\w+)", args[1])
        name = (m.group(1) or m.group(2)) if m else None
        phrase = "1=1" if name and x.is_all(name) else args[0]
        sql = sql[:at] + phrase + sql[end:]
    return sql


def _format(values: list[str], fmt: str | None) -> str:
    if fmt in (None, "singlequote") and (fmt or len(values) != 1):
        return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)
    if fmt is None:
        return values[0]
    if fmt == "sqlstring":
        return ",".join("'" + v.replace("'", "''") + "'" for v in values)
    if fmt == "doublequote":
        return ",".join('"' + v.replace('"', '\\"') + '"' for v in values)
    if fmt in ("csv", "raw"):
        return ",".join(values)
    if fmt == "pipe":
        return "|".join(values)
    raise ValueError(f"variable format {fmt!r} is not supported by this expander")


def _variables(sql: str, x: Expansion) -> str:
    builtin = {"__interval": _format_ms(x.interval_ms), "__interval_ms": str(x.interval_ms),
               "__from": str(x.from_ms), "__to": str(x.to_ms)}

    def sub(m: re.Match) -> str:
        name, fmt = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), None)
        if name in builtin:
            return builtin[name]
        if name.startswith("__"):
            return m.group(0)  # a plugin macro: step 3
        if name not in x.values:
            raise KeyError(f"the dashboard has no variable {name!r} (or the test gave it no value)")
        return _format(x.selected(name), fmt)

    return re.sub(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)", sub, sql)


def _dt(ms: int) -> str:
    return f"toDateTime({ms // 1000})"


def _dt64(ms: int) -> str:
    return f"fromUnixTimestamp64Milli({ms})"


def _date(ms: int) -> str:
    import datetime as _d

    return "toDate('" + _d.datetime.fromtimestamp(ms / 1000, _d.UTC).strftime("%Y-%m-%d") + "')"


def _macros(sql: str, x: Expansion) -> str:
    f, t, iv = x.from_ms, x.to_ms, x.interval_ms
    def date_time(d: str, c: str) -> str:
        return f"({d} >= {_date(f)} AND {d} <= {_date(t)}) AND ({c} >= {_dt(f)} AND {c} <= {_dt(t)})"

    with_args = {
        "timeFilter": lambda c: f"{c} >= {_dt(f)} AND {c} <= {_dt(t)}",
        "timeFilter_ms": lambda c: f"{c} >= {_dt64(f)} AND {c} <= {_dt64(t)}",
        "dateFilter": lambda c: f"{c} >= {_date(f)} AND {c} <= {_date(t)}",
        "dateTimeFilter": date_time,
        "dt": date_time,
        "timeInterval": lambda c: f"toStartOfInterval(toDateTime({c}), INTERVAL {max(1, iv // 1000)} second)",
        "timeInterval_ms": lambda c: f"toStartOfInterval(toDateTime64({c}, 3), INTERVAL {max(1, iv)} millisecond)",
    }
    plain = {"fromTime": _dt(f), "toTime": _dt(t), "fromTime_ms": _dt64(f), "toTime_ms": _dt64(t),
             "interval_s": str(max(1, iv // 1000))}
    out, i = [], 0
    for m in re.finditer(r"\$__(\w+)", sql):
        if m.start() < i:
            continue
        name = m.group(1)
        out.append(sql[i:m.start()])
        if name in with_args and m.end() < len(sql) and sql[m.end()] == "(":
            args, end = _macro_args(sql, m.end())
            out.append(with_args[name](*args))
            i = end
        elif name in plain:
            out.append(plain[name])
            i = m.end()
        else:
            raise ValueError(f"unknown or malformed macro $__{name}")
    out.append(sql[i:])
    return "".join(out)


def expand(sql: str, x: Expansion) -> str:
    """``sql`` as ClickHouse receives it from Grafana for the time range and variables of ``x``."""
    return _macros(_variables(_conditional_all(sql, x), x), x)


def targets(dashboard: dict[str, Any]) -> Iterator[tuple[dict, dict]]:
    """(panel, target) for every SQL target of every panel (rows' nested panels included)."""
    for panel in dashboard.get("panels", []):
        for p in [panel, *panel.get("panels", [])]:
            for t in p.get("targets", []):
                if t.get("rawSql"):
                    yield p, t


def template_queries(dashboard: dict[str, Any]) -> dict[str, str]:
    """name -> SQL of every query variable, in dashboard order (later ones may use earlier ones)."""
    out = {}
    for v in dashboard.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v.get("query")
            out[v["name"]] = q.get("rawSql", "") if isinstance(q, dict) else q
    return out


def resolve_variables(dashboard: dict[str, Any], from_ms: int, to_ms: int, values: Mapping[str, Any],
                      run: Callable[[str], list[tuple]]) -> tuple[Expansion, dict[str, str]]:
    """The dashboard's query variables run in order, as Grafana does when it loads the dashboard (each may use
    the ones before it): an :class:`Expansion` with their options (first column) and ``values``; also each
    variable's expanded SQL. ``run`` executes SQL and returns rows."""
    options: dict[str, list[str]] = {}
    values = dict(values)
    sqls = {}
    for name, sql in template_queries(dashboard).items():
        sqls[name] = expand(sql, Expansion(from_ms, to_ms, values, options))
        options[name] = [str(r[0]) for r in run(sqls[name])]
        if values.get(name) is None:  # no value given: Grafana selects the first option
            values[name] = options[name][:1]
    return Expansion(from_ms, to_ms, values, options), sqls


def expanded_targets(dashboard: dict[str, Any], x: Expansion) -> list[tuple[str, str]]:
    """(``"<panel id>/<refId> <title>"``, SQL) of every panel target, expanded for ``x`` with the panel's
    own minimum interval."""
    out = []
    for panel, target in targets(dashboard):
        px = Expansion(x.from_ms, x.to_ms, x.values, x.options, panel.get("interval"))
        out.append((f"{panel['id']}/{target['refId']} {panel['title']}", expand(target["rawSql"], px)))
    return out
