"""Architecture boundaries, read from the source (AST) and checked at import time.

* Only the Kafka adapter folder (``streams/kafka/``) and the service entry points
  (``streams/<component>/service.py``) import Kafka clients (``confluent_kafka``, ``aiokafka``,
  ``faust``). ``topics/serde.py`` may import the Schema Registry client
  (``confluent_kafka.schema_registry`` / ``.serialization``, an HTTP client, not a Kafka one).
* Production code never imports demo, local-stack or benchmark code (``emowatch.streams.local``,
  ``emowatch.bench``); the ``demo``/``up`` and ``bench`` commands (``streams/cli/local.py``,
  ``streams/cli/bench.py``) load them inside their command functions only.
* No module over 400 lines; every error class derives from ``EmowatchError``.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCTION = ("streams", "models", "topics", "rules", "infra")
KAFKA_CLIENTS = ("confluent_kafka", "aiokafka", "faust", "mode")
REGISTRY_CLIENT = ("confluent_kafka.schema_registry", "confluent_kafka.serialization")
NOT_PRODUCTION = ("emowatch.streams.local", "emowatch.bench")
LAZY_LOADERS = {"streams/cli/local.py", "streams/cli/bench.py"}  # may import NOT_PRODUCTION inside functions
MAX_LINES = 400


def _modules(*tops: str) -> list[Path]:
    return sorted(p for top in tops for p in (ROOT / top).rglob("*.py") if "__pycache__" not in p.parts)


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _imports(path: Path) -> list[tuple[str, bool]]:
    """``(module imported, at module level?)`` for every import statement of a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, id(node) in top_level) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, id(node) in top_level))
    return found


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _kafka_allowed(rel: str, module: str) -> bool:
    if rel.startswith("streams/kafka/"):
        return True
    if rel.startswith("streams/") and rel.endswith("/service.py"):
        return True
    return rel == "topics/serde.py" and _under(module, REGISTRY_CLIENT)


def kafka_violations(files: list[Path]) -> list[str]:
    return [f"{_rel(p)} imports {m}" for p in files for m, _top in _imports(p)
            if _under(m, KAFKA_CLIENTS) and not _kafka_allowed(_rel(p), m)]


def production_violations(files: list[Path]) -> list[str]:
    out = []
    for p in files:
        rel = _rel(p)
        if rel.startswith("streams/local/"):
            continue  # the local stack itself
        for m, top in _imports(p):
            if _under(m, NOT_PRODUCTION) and (top or rel not in LAZY_LOADERS):
                out.append(f"{rel} imports {m}" + (" at module level" if top else ""))
    return out


def test_only_adapters_and_services_import_kafka_clients():
    assert kafka_violations(_modules(*PRODUCTION)) == []


def test_production_code_never_imports_demo_local_or_bench_code():
    assert production_violations(_modules(*PRODUCTION)) == []


def test_the_boundary_checks_catch_violations(tmp_path, monkeypatch):
    """The checks above would fail on the old layout's mistakes (a rules module importing faust,
    the rules worker's CLI path importing the demo)."""
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "rules").mkdir()
    (tmp_path / "streams" / "cli").mkdir(parents=True)
    (tmp_path / "rules" / "engine.py").write_text("import faust\n")
    (tmp_path / "streams" / "cli" / "main.py").write_text("def f():\n    from emowatch.streams.local.demo import x\n")
    (tmp_path / "streams" / "cli" / "local.py").write_text("from emowatch.streams.local import stack\n")
    files = _modules("rules", "streams")
    assert kafka_violations(files) == ["rules/engine.py imports faust"]
    assert production_violations(files) == [
        "streams/cli/local.py imports emowatch.streams.local at module level",
        "streams/cli/main.py imports emowatch.streams.local.demo"]


def test_starting_a_worker_loads_no_demo_local_or_bench_module():
    """What `emowatch worker infer|rules|sink` imports before it runs (the CLI and the services)."""
    code = ("import sys\n"
            "import emowatch.streams.cli.main, emowatch.streams.infer.service, emowatch.streams.sink.service\n"
            "import emowatch.streams.rules_worker.service\n"
            "print('\\n'.join(m for m in sys.modules if m.startswith(('emowatch.streams.local', 'emowatch.bench'))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == []


@pytest.mark.parametrize("path", _modules(*PRODUCTION, "bench", "tests"), ids=_rel)
def test_no_module_over_400_lines(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{_rel(path)} has {lines} lines; split it by role"


def test_every_error_class_derives_from_the_root_error():
    from emowatch.topics.errors import EmowatchError

    strays = []
    for path in _modules(*PRODUCTION):
        if path.name == "__main__.py":
            continue
        name = "emowatch." + ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        module = importlib.import_module(name)
        for cls_name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == name and issubclass(cls, BaseException) and not issubclass(cls, EmowatchError):
                strays.append(f"{name}.{cls_name}")
    assert strays == []
