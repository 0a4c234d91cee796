"""Where the files bundled with emowatch are: the one way to find them.

Demo model, rule files, sample calls, ClickHouse schema, Grafana provisioning and Avro
schemas ship as package data (``pyproject.toml`` ``[tool.setuptools.package-data]``).
Every module finds them here, through ``importlib.resources.files``, so the same code
works from the repository (editable install) and from an installed wheel. The package
must be installed as directories (a wheel or editable install; not run from a zip).

A leaf module: standard library only, so ``models/``, ``rules/`` and ``topics/`` may
import it. Asking for a location imports the package that owns it (e.g.
``emowatch.rules`` for :func:`rules_dir`), nothing else.
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "clickhouse_migrations_dir", "default_rules_file", "demo_model_dir", "gateway_static_dir", "grafana_dir",
    "notify_config",
    "rule_files",
    "rules_dir",
    "sample_manifest", "samples_dir", "schemas_dir",
]


def _package_path(package: str, *parts: str) -> Path:
    return Path(str(resources.files(package).joinpath(*parts)))


def demo_model_dir() -> Path:
    """The committed pipeline-demo checkpoint (``models/demo``: config.yaml, model.pt, tokens.txt)."""
    return _package_path("emowatch.models", "demo")


def rules_dir() -> Path:
    """The folder of the bundled rule files (``rules/*.yaml``)."""
    return _package_path("emowatch.rules")


def rule_files() -> list[Path]:
    """The bundled rule files, sorted by name."""
    return sorted(rules_dir().glob("*.yaml"))


def default_rules_file() -> Path:
    """The rule file a rules worker uses when none is configured (``rules/default.yaml``)."""
    return rules_dir() / "default.yaml"


def samples_dir() -> Path:
    """The bundled synthetic sample calls (``infra/samples``: WAV files + ``manifest.json``)."""
    return _package_path("emowatch.infra", "samples")


def sample_manifest(path: str | Path | None = None) -> list[dict[str, Any]]:
    """The entries of a sample manifest, each with ``path``: its WAV file's absolute path (str).

    ``path`` is a ``manifest.json`` or a folder holding one (default: the bundled samples).
    The file is a JSON list of entries (format in :mod:`emowatch.models.samples`) or an
    object with the list under ``"calls"``; ``file`` is relative to the manifest's folder.
    """
    p = Path(path) if path is not None else samples_dir()
    manifest = p / "manifest.json" if p.is_dir() else p
    data = json.loads(manifest.read_text(encoding="utf-8"))
    entries = data["calls"] if isinstance(data, dict) else data
    folder = manifest.parent.resolve()
    return [{**e, "path": str(folder / e["file"])} for e in entries]


def clickhouse_migrations_dir() -> Path:
    """The ClickHouse schema as ordered migrations the sink applies at start-up
    (``infra/clickhouse/migrations/NNNN_name.sql``, :mod:`emowatch.streams.sink.migrations`)."""
    return _package_path("emowatch.infra", "clickhouse", "migrations")


def grafana_dir() -> Path:
    """Grafana provisioning: datasource and dashboards (``infra/grafana``)."""
    return _package_path("emowatch.infra", "grafana")


def notify_config() -> Path:
    """The bundled example notifier configuration (``infra/notify/notify.yaml``, docs/notify.md)."""
    return _package_path("emowatch.infra", "notify", "notify.yaml")


def notify_demo_config() -> Path:
    """The local demo's notifier configuration (``infra/notify/demo.yaml``: log + local signed webhook)."""
    return _package_path("emowatch.infra", "notify", "demo.yaml")


def schemas_dir() -> Path:
    """The Avro schemas of the topics (``topics/schemas/<Name>.v<N>.avsc``)."""
    return _package_path("emowatch.topics", "schemas")


def gateway_static_dir() -> Path:
    """The web console's static files, served by the gateway at ``/console/`` (``streams/gateway/static``)."""
    return _package_path("emowatch.streams.gateway", "static")
