"""The non-editable install (wheel, Docker image) must ship every sub-package and data file."""
import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[2]
FOLDERS = {"streams", "models", "topics", "rules", "infra", "bench"}


def test_every_package_folder_is_listed_in_pyproject():
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(conf["packages"])
    found = {"emowatch." + ".".join(p.parent.relative_to(ROOT).parts)
             for top in FOLDERS for p in (ROOT / top).rglob("__init__.py") if "__pycache__" not in p.parts}
    assert found == listed, f"missing from pyproject packages: {found - listed}; stale: {listed - found}"
    assert {conf["package-dir"][f"emowatch.{t}"] for t in FOLDERS} == FOLDERS


def test_runtime_data_files_are_package_data():
    from importlib import resources

    for package, rel in [("emowatch.topics", "schemas/FrameScores.v1.avsc"), ("emowatch.models", "demo/model.pt"),
                         ("emowatch.rules", "default.yaml"), ("emowatch.infra", "clickhouse/schema.sql"),
                         ("emowatch.infra", "samples/manifest.json")]:
        assert resources.files(package).joinpath(rel).is_file(), (package, rel)
