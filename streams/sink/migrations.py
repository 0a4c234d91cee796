"""Versioned ClickHouse schema: ordered migration files applied once each at start-up.

``infra/clickhouse/migrations/NNNN_name.sql`` (:func:`emowatch.streams.resources.clickhouse_migrations_dir`):
``NNNN`` is the version, files are applied in version order, ``{db}`` is replaced by the database and
statements are separated by lines holding only ``;``. Each applied migration is recorded in
``{db}.schema_migrations`` (version, name, checksum of the file, applied_at); a recorded migration is
never applied again, and a recorded one whose file changed since (another checksum) stops the start-up
with :class:`MigrationError`: never edit an applied migration, add a new one.

Concurrency: the record is written after the migration's statements, so two processes starting at the
same moment may both run a pending migration. Every migration is therefore written idempotently
(``CREATE ... IF NOT EXISTS``, ``ALTER ... ADD COLUMN IF NOT EXISTS``): running it twice is harmless. One
sink at a time is the supported deployment; non-idempotent data migrations would need a lock (not provided).

Databases made before versioned migrations (by the old ``schema.sql``) hold exactly what 0001 creates
with ``IF NOT EXISTS``: applying 0001 to them is a no-op that only records version 1.

On a ClickHouse cluster (``cluster``, ``EMOWATCH_SINK__CLUSTER``) the same files are applied in their cluster
form (:mod:`emowatch.streams.sink.cluster_ddl`: ON CLUSTER, Replicated and Distributed tables); the form is
a function of the file, and the file is what is checksummed.
"""
from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from emowatch.streams.resources import clickhouse_migrations_dir
from emowatch.topics.errors import EmowatchError

if TYPE_CHECKING:
    from emowatch.streams.sink.cluster_ddl import ClusterSpec

log = logging.getLogger(__name__)
FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
TABLE = "schema_migrations"
# What apply_migrations runs before reading the record: the database and the record's table.
START = ("CREATE DATABASE IF NOT EXISTS {db}",
         f"CREATE TABLE IF NOT EXISTS {{db}}.{TABLE} (version UInt32, name String, checksum String, "
         "applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = ReplacingMergeTree(applied_at) ORDER BY version")


class MigrationError(EmowatchError):
    """The migration files or the database's record of them are inconsistent (not retryable)."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    checksum: str
    sql: str

    @property
    def filename(self) -> str:
        return f"{self.version:04d}_{self.name}.sql"

    def statements(self, database: str) -> list[str]:
        body = "\n".join(line for line in self.sql.splitlines() if not line.lstrip().startswith("--"))
        return [s.strip().replace("{db}", database) for s in body.split("\n;") if s.strip()]


def load_migrations(folder: Path | None = None) -> list[Migration]:
    """The migration files of ``folder`` (default: the bundled ones), in version order."""
    folder = folder or clickhouse_migrations_dir()
    out = []
    for path in sorted(folder.glob("*.sql")):
        m = FILE_RE.match(path.name)
        if not m:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        sql = path.read_text(encoding="utf-8")
        out.append(Migration(int(m.group(1)), m.group(2), hashlib.sha256(sql.encode()).hexdigest(), sql))
    versions = [m.version for m in out]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a version: {versions}")
    return out


def applied(client, database: str) -> dict[int, str]:
    """version -> checksum of the migrations recorded in ``database``."""
    rows = client.query(f"SELECT version, argMax(checksum, applied_at) FROM {database}.{TABLE} GROUP BY version")
    return {int(v): c for v, c in rows.result_rows}


def plan(migrations: list[Migration], database: str,
         cluster: ClusterSpec | None = None) -> tuple[list[str], dict[int, list[str]]]:
    """The start-up statements and each migration's statements (by version): as written for one server, or
    in their cluster form (every migration is rendered, so a file without one fails every start-up)."""
    sources = [("start-up", list(START))] + [(m.filename, m.statements("{db}")) for m in migrations]
    if cluster is None:
        out = [[s.replace("{db}", database) for s in stmts] for _label, stmts in sources]
    else:
        from emowatch.streams.sink.cluster_ddl import render

        out = render(sources, database, cluster)
    return out[0], {m.version: stmts for m, stmts in zip(migrations, out[1:])}


def apply_migrations(client, database: str, folder: Path | None = None,
                     cluster: ClusterSpec | None = None) -> list[int]:
    """Apply the pending migrations to ``database`` (created if missing); the versions applied now.
    ``cluster``: in their cluster form (:mod:`emowatch.streams.sink.cluster_ddl`)."""
    migrations = load_migrations(folder)
    start, statements = plan(migrations, database, cluster)
    for stmt in start:
        client.command(stmt)
    done = applied(client, database)
    now = []
    for m in migrations:
        if m.version in done:
            if done[m.version] != m.checksum:
                raise MigrationError(f"migration {m.version:04d}_{m.name} was changed after it was applied to "
                                     f"{database} (checksum {done[m.version][:12]} recorded, {m.checksum[:12]} now)")
            continue
        for stmt in statements[m.version]:
            client.command(stmt)
        client.insert(TABLE, [[m.version, m.name, m.checksum]], database=database,
                      column_names=["version", "name", "checksum"])
        log.info("migration applied", extra={"database": database, "version": m.version, "migration": m.name})
        now.append(m.version)
    return now
