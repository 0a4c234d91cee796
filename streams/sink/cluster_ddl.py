"""The versioned schema on a ClickHouse cluster: each migration statement in its cluster form. Pure (no I/O).

``EMOWATCH_SINK__CLUSTER`` names a cluster of the servers' ``remote_servers``; the migration files stay as
they are (their checksums too) and :func:`render` turns their statements, in order, into:

* ``CREATE DATABASE`` -> the same ``ON CLUSTER``;
* a MergeTree-family table ``T`` -> ``T_local ON CLUSTER`` with the ``Replicated*`` engine (same engine
  arguments after the Keeper path and replica name; same columns, PARTITION BY, ORDER BY, TTL and settings,
  less ``non_replicated_deduplication_window``: replicated tables deduplicate inserts themselves, within
  ``replicated_deduplication_window``), plus ``T ON CLUSTER AS T_local ENGINE = Distributed(cluster, db,
  T_local, key)``. The key is ``cityHash64(call_id)`` when the table has ``call_id`` (a call's rows, and every
  version of each, on one shard: ``FINAL`` and per-call GROUP BY are exact per shard), else a hash of the
  ORDER BY columns (the rows a Replacing/SummingMergeTree collapses meet on one shard), else ``rand()``.
  ``CREATE TABLE x AS y`` becomes ``x_local AS y_local`` (plus its Distributed ``x``);
* a materialized view ``TO T`` reading ``S`` -> ``ON CLUSTER``, ``TO T_local`` reading ``S_local``: each shard
  aggregates the rows inserted on it (a JOIN inside it sees that shard's rows only: join on call_id);
* a view (``CREATE [OR REPLACE] VIEW``) -> ``ON CLUSTER``, its SQL unchanged (it reads the Distributed names);
  one that reads sharded tables more than once (a JOIN or IN over a subquery) gets
  ``SETTINGS distributed_product_mode = 'local'``: each shard joins its own rows, exact because every
  table it reads is sharded by call_id (otherwise ClickHouse refuses the double-distributed subquery);
* ``ALTER TABLE T ADD COLUMN ...`` -> the same ``ON CLUSTER`` on ``T_local``, then on ``T``;
  ``ALTER TABLE T ADD/MATERIALIZE INDEX|PROJECTION ...``, ``MATERIALIZE COLUMN`` and ``MODIFY SETTING ...``
  -> on ``T_local`` only (a Distributed table holds no data); ``MODIFY SETTING
  non_replicated_deduplication_window`` is dropped (the Replicated tables deduplicate by themselves), and a
  statement left with nothing to do is omitted;
* the bookkeeping tables (``schema_migrations``, ``sink_batches``) -> ``ON CLUSTER``, same name, Replicated
  on one Keeper path for the whole cluster (``{shard}`` of the path replaced by ``all``, replica name
  ``{shard}-{replica}``): every server holds all of it, so a sink reads its own record on whichever server
  it reaches (after ``SYSTEM SYNC REPLICA``, :class:`emowatch.streams.sink.writer.SinkWriter`).

Anything else (DROP, INSERT, other ALTERs, other engines, a materialized view without ``TO``) raises
:class:`MigrationError` naming the file and the statement: nothing reaches a cluster unconverted.

Inserts go through the Distributed tables with :data:`CLIENT_SETTINGS` (``connect``): the insert is forwarded
to the shards before it returns (foreground), with its settings, ``insert_deduplication_token`` included. A
batch is split by the sharding key, which is deterministic, so a retried batch reaches each shard as the
same block with the same token, and a shard that already has it drops it (README "History on a ClickHouse
cluster").
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from emowatch.streams.sink.migrations import TABLE as MIGRATIONS_TABLE
from emowatch.streams.sink.migrations import MigrationError
from emowatch.streams.sink.writer import STATE_TABLE

LOCAL = "_local"
UNSHARDED = frozenset({MIGRATIONS_TABLE, STATE_TABLE})
# Session settings of every client in cluster mode: Distributed inserts are sent to the shards before the
# INSERT returns (insert_distributed_sync, alias of distributed_foreground_insert), deduplicated there, and
# the materialized views' target blocks are deduplicated as well (a retried batch adds nothing anywhere).
CLIENT_SETTINGS = {"insert_distributed_sync": 1, "insert_deduplicate": 1,
                   "deduplicate_blocks_in_dependent_materialized_views": 1}
PRODUCT_MODE = "distributed_product_mode = 'local'"
_FAMILY = re.compile(r"(Replacing|Summing|Aggregating|Collapsing|VersionedCollapsing|Coalescing|Graphite)?MergeTree")
_DROPPED = {"non_replicated_deduplication_window"}
_NAME = r"\{db\}\.(\w+)"
_DB_CREATE = re.compile(r"CREATE\s+DATABASE\s+(?:IF\s+NOT\s+EXISTS\s+)?\{db\}\s*$", re.I)
_TABLE = re.compile(r"CREATE\s+TABLE\s+(IF\s+NOT\s+EXISTS\s+)?" + _NAME, re.I)
_MV = re.compile(r"CREATE\s+MATERIALIZED\s+VIEW\s+(?:IF\s+NOT\s+EXISTS\s+)?" + _NAME + r"\s+TO\s+" + _NAME
                 + r"\s+AS\b", re.I)
_VIEW = re.compile(r"CREATE\s+(?:OR\s+REPLACE\s+VIEW|VIEW\s+(?:IF\s+NOT\s+EXISTS\s+)?)\s*" + _NAME + r"\s+AS\b", re.I)
_ALTER = re.compile(r"ALTER\s+TABLE\s+" + _NAME + r"\s+", re.I)
_ADD_COLUMN = re.compile(r"ADD\s+COLUMN\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", re.I)
_LOCAL_ONLY = re.compile(r"(?:ADD|MATERIALIZE|DROP)\s+(?:INDEX|PROJECTION)\b|MATERIALIZE\s+COLUMN\b|MODIFY\s+SETTING\b",
                         re.I)
_DEDUP_SETTING = re.compile(r"MODIFY\s+SETTING\s+non_replicated_deduplication_window\s*=\s*\d+\s*$", re.I)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class ClusterSpec:
    """A cluster of the servers' ``remote_servers`` and the Keeper path template of its replicated tables."""
    name: str
    replica_path: str


@dataclass
class _Table:
    columns: set[str]
    tail: str  # ENGINE ... to the end, as written (for CREATE TABLE x AS y without an engine)
    key: str  # the Distributed sharding key; "" for the bookkeeping tables (not sharded)


def render(sources: list[tuple[str, list[str]]], database: str, cluster: ClusterSpec) -> list[list[str]]:
    """The cluster form of each source's statements; ``sources`` are (file name, statements with ``{db}``)
    in the order they are applied (a table must be created before it is referred to)."""
    if not _IDENT.fullmatch(database):
        raise MigrationError(f"database {database!r}: a cluster schema needs a plain name ([A-Za-z_][A-Za-z0-9_]*)")
    r = _Renderer(cluster)
    out = []
    for label, statements in sources:
        done = []
        for i, stmt in enumerate(statements, 1):
            try:
                done += r.statement(stmt.strip())
            except _Unsupported as exc:
                first = " ".join(stmt.split())[:90]
                raise MigrationError(f"{label}, statement {i} ({first}...): {exc} - no cluster form "
                                     "(EMOWATCH_SINK__CLUSTER); see streams/sink/cluster_ddl.py") from None
        out.append([s.replace("{db}", database) for s in done])
    return out


class _Unsupported(MigrationError):
    """A statement :func:`render` has no cluster form for (reported as a MigrationError)."""


class _Renderer:
    def __init__(self, cluster: ClusterSpec) -> None:
        self.c = cluster
        self.on = f" ON CLUSTER {_quote(cluster.name)}"
        self.tables: dict[str, _Table] = {}

    def statement(self, s: str) -> list[str]:
        if _DB_CREATE.match(s):
            return [s + self.on]
        for regex, method in ((_TABLE, self._table), (_MV, self._mv), (_VIEW, self._view), (_ALTER, self._alter)):
            if m := regex.match(s):
                return method(s, m)
        if re.match(r"CREATE\s+MATERIALIZED\s+VIEW\b", s, re.I):
            raise _Unsupported("a materialized view needs TO {db}.table (its target, sharded like any table)")
        raise _Unsupported("not a kind the cluster form knows (CREATE DATABASE, CREATE TABLE, CREATE [MATERIALIZED] "
                           "VIEW, CREATE OR REPLACE VIEW, ALTER TABLE ... ADD COLUMN)")

    # ---------------------------------------------------------------- tables
    def _table(self, s: str, m: re.Match) -> list[str]:
        name, rest = m.group(2), s[m.end():]
        if name.endswith(LOCAL) or name in self.tables:
            raise _Unsupported(f"table {name}: names ending in {LOCAL} are the cluster's, and a table is created once")
        lead = rest.lstrip()
        src = None
        if lead.startswith("("):
            start = len(rest) - len(lead)
            close = _close(rest, start)
            columns = {c.split()[0].strip("`") for c in _split(rest[start + 1:close]) if c.split()
                       and c.split()[0].upper() not in ("INDEX", "PROJECTION", "CONSTRAINT")}
            head, tail = s[:m.end()] + rest[:close + 1], rest[close + 1:].strip()
        elif am := re.match(r"\s*AS\s+" + _NAME + r"\s*", rest, re.I):
            src = am.group(1)
            if self.tables.get(src) is None or not self.tables[src].key:
                raise _Unsupported(f"table {name} is made AS {src}, which is not a sharded table made before")
            columns = set(self.tables[src].columns)
            head, tail = s[:m.end()] + rest[:am.end()].rstrip(), rest[am.end():].strip() or self.tables[src].tail
        else:
            raise _Unsupported(f"table {name}: only CREATE TABLE ... (columns) ENGINE and CREATE TABLE ... AS table")
        if not tail.upper().startswith("ENGINE"):
            raise _Unsupported(f"table {name} names no ENGINE")
        key = "" if name in UNSHARDED else _shard_key(columns, tail)
        self.tables[name] = _Table(columns, tail, key)
        if not key:  # bookkeeping: one replicated table on every server
            path = self.c.replica_path.replace("{shard}", "all")
            return [_rename(head, m, name, self.on) + "\n" + _replicated(tail, path, "{shard}-{replica}")]
        local = _rename(head, m, name + LOCAL, self.on)
        if src is not None:
            local = local[:len(local) - len(src)] + src + LOCAL
        ine = m.group(1) or ""
        dist = (f"CREATE TABLE {ine}{{db}}.{name}{self.on} AS {{db}}.{name}{LOCAL}\n"
                f"ENGINE = Distributed({_quote(self.c.name)}, {{db}}, {name}{LOCAL}, {key})")
        return [local + "\n" + _replicated(tail, self.c.replica_path, "{replica}"), dist]

    # ---------------------------------------------------------------- views
    def _mv(self, s: str, m: re.Match) -> list[str]:
        name, target = m.group(1), m.group(2)
        if not self._sharded(target):
            raise _Unsupported(f"materialized view {name} writes to {target}, not a sharded table made before")
        select = s[m.end():]
        for am in re.finditer(r"\b(ARRAY\s+)?(?:FROM|JOIN)\s+(\S+)", select, re.I):
            if not am.group(1) and not am.group(2).startswith(("{db}.", "(")):
                raise _Unsupported(f"materialized view {name} reads {am.group(2)}: write tables as {{db}}.name")
        reads = re.findall(_NAME, select)
        if not reads or not all(self._sharded(t) for t in reads):
            raise _Unsupported(f"materialized view {name} must read sharded tables only (it reads {reads})")
        select = re.sub(_NAME, lambda x: f"{{db}}.{x.group(1)}{LOCAL}", select)
        head = s[:m.start(2)] + target + LOCAL + s[m.end(2):m.end()]
        return [head[:m.end(1)] + self.on + head[m.end(1):] + select]

    def _view(self, s: str, m: re.Match) -> list[str]:
        name, body = m.group(1), s[m.end():]
        reads = [t for t in re.findall(_NAME, body) if self._sharded(t)]
        out = s[:m.end(1)] + self.on + s[m.end(1):]
        if len(reads) > 1:
            apart = sorted({t for t in reads if self.tables[t].key != _CALL_KEY})
            if apart:
                raise _Unsupported(f"view {name} reads sharded tables more than once, and {apart} are not sharded "
                                   "by call_id (each shard would join only its own rows)")
            if re.search(r"\bSETTINGS\b[^()]*$", body, re.I):
                raise _Unsupported(f"view {name} has its own SETTINGS: add {PRODUCT_MODE} to it")
            out += f"\nSETTINGS {PRODUCT_MODE}"
        return [out]

    # ---------------------------------------------------------------- alters
    def _alter(self, s: str, m: re.Match) -> list[str]:
        name, actions = m.group(1), s[m.end():]
        table = self.tables.get(name)
        if table is None:
            raise _Unsupported(f"ALTER of {name}, which is not a table made by the migrations before")
        columns, local_only = [], []
        for action in (a.strip() for a in _split(actions)):
            if am := _ADD_COLUMN.match(action):
                columns.append(am.group(1))
            elif _DEDUP_SETTING.match(action):
                continue  # replicated tables deduplicate inserts themselves
            elif _LOCAL_ONLY.match(action):
                local_only.append(action)
            else:
                raise _Unsupported(f"ALTER TABLE {name} {action[:40]}: only ADD COLUMN, ADD/MATERIALIZE/DROP "
                                   "INDEX|PROJECTION, MATERIALIZE COLUMN and MODIFY SETTING are converted")
        if columns and local_only:
            raise _Unsupported(f"ALTER TABLE {name}: put ADD COLUMN and index/projection/setting changes in separate "
                               "statements (columns go to both tables, the others to the local table only)")
        table.columns.update(columns)
        head = s[:m.end(1)]
        if not columns and not local_only:
            return []  # only the non-replicated dedup window: nothing to do on a cluster
        if local_only:
            body = ", ".join(local_only)
            return [f"{head}{LOCAL if table.key else ''}{self.on} {body}"]
        if not table.key:
            return [head + self.on + s[m.end(1):]]
        local = head + LOCAL + self.on + s[m.end(1):]
        return [local, head + self.on + s[m.end(1):]]

    def _sharded(self, name: str) -> bool:
        return name in self.tables and bool(self.tables[name].key)


_CALL_KEY = "cityHash64(call_id)"


def _shard_key(columns: set[str], tail: str) -> str:
    if "call_id" in columns:
        return _CALL_KEY
    om = re.search(r"\bORDER\s+BY\s+(.+?)\s*(?:\bPRIMARY\s+KEY\b|\bSAMPLE\s+BY\b|\bTTL\b|\bSETTINGS\b|\bCOMMENT\b|$)",
                   tail, re.I | re.S)
    order = om.group(1).strip() if om else ""
    if order.startswith("(") and _close(order, 0) == len(order) - 1:
        order = order[1:-1].strip()
    return f"cityHash64({order})" if order and order.lower() != "tuple()" else "rand()"


def _rename(head: str, m: re.Match, new: str, on: str) -> str:
    """``head`` (which starts with the CREATE TABLE matched by ``m``) with the table renamed ``new`` + ON CLUSTER."""
    return head[:m.start(2)] + new + on + head[m.end(2):]


def _replicated(tail: str, path: str, replica: str) -> str:
    """``ENGINE = XMergeTree[(args)] ...`` -> ``ENGINE = ReplicatedXMergeTree('path', 'replica'[, args]) ...``,
    without the settings a replicated table does not take."""
    em = re.match(r"ENGINE\s*=\s*(\w+)", tail, re.I)
    engine = em.group(1) if em else ""
    if not _FAMILY.fullmatch(engine):
        raise _Unsupported(f"engine {engine or tail[:30]!r} is not of the MergeTree family")
    pos, args = em.end(), ""
    nxt = len(tail) - len(tail[pos:].lstrip())
    if tail[nxt:nxt + 1] == "(":
        close = _close(tail, nxt)
        pos, args = close + 1, tail[nxt + 1:close].strip()
    params = ", ".join([_quote(path), _quote(replica)] + ([args] if args else []))
    return f"ENGINE = Replicated{engine}({params})" + _drop_settings(tail[pos:])


def _drop_settings(clauses: str) -> str:
    sm = re.search(r"\bSETTINGS\b", clauses, re.I)
    if not sm:
        return clauses
    kept = [x.strip() for x in _split(clauses[sm.end():]) if x.split("=")[0].strip().lower() not in _DROPPED]
    return clauses[:sm.start()] + "SETTINGS " + ", ".join(kept) if kept else clauses[:sm.start()].rstrip()


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _outside_quotes(text: str, start: int = 0):
    """(index, char, depth) of each character of ``text`` from ``start`` that is not inside quotes; depth counts
    the open parentheses and brackets before it."""
    depth, quote, escaped = 0, "", False
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
            continue
        if ch in "'`\"":
            quote = ch
            continue
        if ch in ")]":
            depth -= 1
        yield i, ch, depth
        if ch in "([":
            depth += 1


def _close(text: str, start: int) -> int:
    """Index of the parenthesis closing the one at ``start``."""
    for i, ch, depth in _outside_quotes(text, start):
        if ch == ")" and depth == 0:
            return i
    raise _Unsupported("unbalanced parentheses")


def _split(text: str) -> list[str]:
    """``text`` split at its top-level commas (not inside parentheses or quotes)."""
    cuts = [i for i, ch, depth in _outside_quotes(text) if ch == "," and depth == 0]
    bounds = [-1, *cuts, len(text)]
    return [p for a, b in zip(bounds, bounds[1:]) if (p := text[a + 1:b]).strip()]
