"""The rules package is pure: no Kafka/Faust imports and no clock reads."""

from __future__ import annotations

import ast
from pathlib import Path

import emowatch.rules

PACKAGE = Path(emowatch.rules.__file__).parent
SOURCES = sorted(PACKAGE.glob("*.py"))
FORBIDDEN_ROOTS = {"confluent_kafka", "faust", "aiokafka", "kafka", "mode", "time"}


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append(node.module or "")
    return names


def test_sources_found() -> None:
    assert {"engine.py", "loader.py", "model.py", "windows.py"} <= {p.name for p in SOURCES}


def test_no_kafka_faust_or_time_imports() -> None:
    for path in SOURCES:
        bad = [n for n in _imports(path) if n.split(".")[0] in FORBIDDEN_ROOTS]
        assert not bad, f"{path.name} imports {bad}"


def test_no_wall_clock_calls() -> None:
    for path in SOURCES:
        text = path.read_text()
        for call in ("datetime.now(", "datetime.utcnow(", "date.today(", "time.time(", "monotonic("):
            assert call not in text, (path.name, call)
