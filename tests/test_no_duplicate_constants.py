"""Each shared constant and helper is defined in exactly one production module.

The model-I/O contract (sample rate, frame length, class order) lives in
``emowatch.topics.model_io``; the WAV reader in ``streams/audio/chunking.py``; the sample
manifest reader in ``streams/resources.py``; the process CPU-time reader in ``bench/machine.py``.
A second module-level definition of any of these names, a second spelling of the nine
classes or of the 16 kHz rate fails here.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

from emowatch.topics.model_io import EMOTIONS, SAMPLE_RATE

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("streams", "models", "topics", "rules", "infra", "bench")

#: name -> the one module allowed to define it at module level (None: defined nowhere any more)
CONSTANTS = {
    "FRAME_MS": "topics/model_io.py",
    "SAMPLE_RATE": "topics/model_io.py",
    "TARGET_RATE": None,
    "SR": None,
    "EMOTIONS": "topics/model_io.py",
    "LABELS": None,
    "EMOTION_LABELS": None,
    "CLASSES": "models/synth.py",  # the four classes the synthetic-speech generator can produce
}
FUNCTIONS = {
    "read_wav": "streams/audio/chunking.py",
    "load_manifest": None,
    "sample_manifest": "streams/resources.py",
    "process_cpu_seconds": "bench/machine.py",
}


def _sources() -> dict[str, ast.Module]:
    out = {}
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            out[path.relative_to(ROOT).as_posix()] = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return out


SOURCES = _sources()


def _module_level_names(tree: ast.Module) -> tuple[set[str], set[str]]:
    assigned, defined = set(), set()
    for node in tree.body:
        if isinstance(node, ast.Assign):
            assigned |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            assigned.add(node.target.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            defined.add(node.name)
    return assigned, defined


def test_sources_found():
    assert {"topics/model_io.py", "streams/resources.py", "bench/machine.py", "rules/model.py"} <= set(SOURCES)


@pytest.mark.parametrize("kind", ["constants", "functions"])
def test_each_name_is_defined_once_where_it_belongs(kind):
    table = CONSTANTS if kind == "constants" else FUNCTIONS
    where: dict[str, list[str]] = defaultdict(list)
    for rel, tree in SOURCES.items():
        assigned, defined = _module_level_names(tree)
        for name in table:
            if name in (assigned if kind == "constants" else defined):
                where[name].append(rel)
    wrong = {name: where[name] for name, home in table.items() if where[name] != ([home] if home else [])}
    assert not wrong, f"defined in the wrong place or more than once: {wrong} (homes: {table})"


def test_the_nine_classes_are_spelled_once():
    spelled = []
    for rel, tree in SOURCES.items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.Tuple, ast.List)) and len(node.elts) == len(EMOTIONS):
                values = [e.value for e in node.elts if isinstance(e, ast.Constant)]
                if [str(v).rsplit("/", 1)[-1] for v in values[:-1]] == list(EMOTIONS[:-1]):
                    spelled.append(f"{rel}:{node.lineno}")
    # the other is the model's own vocabulary (tokens.txt: 生气/angry ... <unk>), checked against EMOTIONS
    # in tests/models/test_checkpoint.py
    assert sorted(s.split(":")[0] for s in spelled) == ["models/checkpoint.py", "topics/model_io.py"], spelled


def test_the_model_rate_is_written_once():
    literal = [f"{rel}:{node.lineno}" for rel, tree in SOURCES.items() for node in ast.walk(tree)
               if isinstance(node, ast.Constant) and type(node.value) in (int, float) and node.value == SAMPLE_RATE]
    assert [s.split(":")[0] for s in literal] == ["topics/model_io.py"], literal


def test_process_stat_is_read_in_one_place():
    readers = sorted({rel for rel, tree in SOURCES.items() for node in ast.walk(tree)
                      if isinstance(node, ast.Constant) and isinstance(node.value, str)
                      and node.value.endswith("/stat")})
    assert readers == ["bench/machine.py"], readers
