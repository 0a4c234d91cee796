"""Every bundled file is found through emowatch.streams.resources, and that module stays a leaf."""
import ast
import json
from pathlib import Path

import pytest

from emowatch.streams import resources

DIRS = ["demo_model_dir", "rules_dir", "samples_dir", "grafana_dir", "schemas_dir", "gateway_static_dir",
        "clickhouse_migrations_dir"]
FILES = ["default_rules_file", "notify_config"]


@pytest.mark.parametrize("name", DIRS)
def test_folders_exist(name):
    path = getattr(resources, name)()
    assert isinstance(path, Path) and path.is_absolute() and path.is_dir() and any(path.iterdir())


@pytest.mark.parametrize("name", FILES)
def test_files_exist(name):
    path = getattr(resources, name)()
    assert isinstance(path, Path) and path.is_file() and path.stat().st_size > 0


def test_bundled_contents():
    assert {"config.yaml", "model.pt", "tokens.txt"} <= {p.name for p in resources.demo_model_dir().iterdir()}
    files = resources.rule_files()
    assert files == sorted(files) and resources.default_rules_file() in files
    assert all(p.suffix == ".yaml" for p in files)
    assert any(resources.schemas_dir().glob("FrameScores.v*.avsc"))


def test_sample_manifest_gives_absolute_wav_paths(tmp_path):
    entries = resources.sample_manifest()
    assert entries and all(Path(e["path"]).is_absolute() and Path(e["path"]).is_file() for e in entries)
    assert resources.sample_manifest(resources.samples_dir() / "manifest.json") == entries
    # a manifest elsewhere, in the {"calls": [...]} form: files are relative to it
    (tmp_path / "m.json").write_text(json.dumps({"calls": [{"call_id": "c", "file": "x.wav"}]}))
    assert resources.sample_manifest(tmp_path / "m.json") == [{"call_id": "c", "file": "x.wav",
                                                               "path": str((tmp_path / "x.wav").resolve())}]


def test_it_imports_only_the_standard_library():
    tree = ast.parse(Path(resources.__file__).read_text())
    modules = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert {m.split(".")[0] for m in modules} <= {"__future__", "json", "importlib", "pathlib", "typing"}


def test_production_code_finds_bundled_files_only_through_it():
    """No other production module locates package data by its own path or importlib.resources."""
    root = Path(__file__).parents[2]
    offenders = []
    for folder in ("streams", "models", "topics", "rules", "infra", "bench"):
        for path in (root / folder).rglob("*.py"):
            if path == Path(resources.__file__) or path.parent.name == "rules_worker":
                continue
            text = path.read_text(encoding="utf-8")
            if "importlib.resources" in text or "from importlib import resources" in text \
                    or "Path(__file__)" in text and ("demo" in text or "glob(" in text or "schemas" in text):
                offenders.append(str(path.relative_to(root)))
    assert not offenders, offenders


def test_cli_modules_do_not_import_the_local_stack_or_benchmarks_at_top_level():
    root = Path(__file__).parents[2] / "streams" / "cli"
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        names = [a.name for n in top if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in top if isinstance(n, ast.ImportFrom)]
        assert not [m for m in names if m.startswith(("emowatch.streams.local", "emowatch.bench"))], path.name
        if path.name not in ("local.py", "bench.py"):  # `demo`, `up` and `bench` import them when they run
            nested = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
            assert not [m for m in nested if m.startswith(("emowatch.streams.local", "emowatch.bench"))], path.name
