"""The non-editable install (wheel, Docker image) must ship every sub-package and data file.

The editable install used by the tests maps ``emowatch.*`` onto the source folders, so it finds
every file whether or not pyproject.toml packages it. These tests build the real wheel from the
tracked files (as from a fresh clone) and look inside it.
"""
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
FOLDERS = {"streams", "models", "topics", "rules", "infra", "bench"}
# Runtime data: every tracked file in these folders must be in the wheel (a new one needs no test change,
# but a pyproject package-data glob).
DATA_FOLDERS = ["topics/schemas", "models/demo", "infra/clickhouse", "infra/samples", "infra/grafana", "infra/notify"]
DATA_GLOBS = ["rules/*.yaml"]


def _tracked(*pathspecs: str) -> list[str]:
    out = subprocess.run(["git", "ls-files", "--", *pathspecs], cwd=ROOT, capture_output=True, text=True, check=True)
    return [line for line in out.stdout.splitlines() if line]


def _in_wheel(path: str) -> str:
    """Repository path -> its path in the wheel (the top folders are sub-packages of ``emowatch``)."""
    return f"emowatch/{path}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> set[str]:
    """Names in the wheel built from the tracked files (a copy of the checkout: the build writes
    build/ and egg-info)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout (the expected files come from git ls-files)")
    src = tmp_path_factory.mktemp("src")
    for rel in _tracked():
        if (ROOT / rel).is_file():  # a tracked file deleted in the working tree is not built
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    dist = tmp_path_factory.mktemp("dist")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "--disable-pip-version-check", "-q", "-w", str(dist), str(src)],
                           capture_output=True, text=True, timeout=240)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (whl,) = dist.glob("emowatch-*.whl")
    with zipfile.ZipFile(whl) as z:
        return set(z.namelist())


def test_every_package_folder_is_listed_in_pyproject():
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(conf["packages"])
    found = {"emowatch." + ".".join(p.parent.relative_to(ROOT).parts)
             for top in FOLDERS for p in (ROOT / top).rglob("__init__.py") if "__pycache__" not in p.parts}
    assert found == listed, f"missing from pyproject packages: {found - listed}; stale: {listed - found}"
    assert {conf["package-dir"][f"emowatch.{t}"] for t in FOLDERS} == FOLDERS


def test_the_wheel_holds_every_package_and_module(wheel):
    modules = [p for p in _tracked(*(f"{top}/*.py" for top in FOLDERS))
               if (ROOT / p).parent.joinpath("__init__.py").is_file()]
    inits = [p for p in modules if p.endswith("/__init__.py")]
    assert len(inits) >= len(FOLDERS)  # the walk found the packages
    missing = sorted(p for p in modules if _in_wheel(p) not in wheel)
    assert missing == [], f"modules missing from the wheel: {missing}"
    assert "emowatch/__init__.py" not in wheel  # emowatch stays a namespace package


def test_the_wheel_holds_every_runtime_data_file(wheel):
    data = _tracked(*DATA_FOLDERS, *DATA_GLOBS)
    for needed in ("topics/schemas/FrameScores.v1.avsc", "models/demo/model.pt", "rules/default.yaml",
                   "infra/clickhouse/migrations/0001_initial.sql", "infra/samples/manifest.json"):
        assert needed in data  # the expected list is the real one, not empty
    assert any(p.endswith(".wav") for p in data) and any(p.startswith("infra/grafana/") for p in data)
    missing = sorted(p for p in data if _in_wheel(p) not in wheel)
    assert missing == [], f"data files missing from the wheel (add a package-data glob in pyproject.toml): {missing}"
