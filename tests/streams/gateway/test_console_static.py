"""The console's static files, checked without a browser: every page loads only files that exist in the
folder (no CDN, no external fonts: the console works offline), every name a module imports is exported by
the module it names, the emoji and colours are those of ``models/timeline.py``, files stay under 400 lines, and the
JavaScript parses (with node, when installed)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from emowatch.models.timeline import COLORS, EMOJI
from emowatch.streams.resources import gateway_static_dir

ROOT = Path(__file__).resolve().parents[3]
STATIC = gateway_static_dir()
PAGES = ("index.html", "live.html", "call.html", "alerts.html")
FILES = sorted(p for p in STATIC.iterdir() if p.suffix in (".html", ".js", ".css"))
JS = [p for p in FILES if p.suffix == ".js"]


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[str] = []
        self.modules: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for name in ("src", "href"):
            if a.get(name):
                self.refs.append(a[name])
        if tag == "script" and a.get("src"):
            assert a.get("type") == "module", f"<script src={a['src']}> must be a module"
            self.modules.append(a["src"])


def _refs(page: str) -> _Refs:
    parser = _Refs()
    parser.feed((STATIC / page).read_text(encoding="utf-8"))
    return parser


def test_the_four_pages_and_their_modules_are_there():
    assert {p.name for p in FILES} >= {*PAGES, "console.css", "common.js", "charts.js", "upload.js", "live.js",
                                       "call.js", "alerts.js"}


@pytest.mark.parametrize("page", PAGES)
def test_a_page_loads_only_files_of_the_folder(page):
    parsed = _refs(page)
    assert parsed.modules, f"{page} runs no script"
    for ref in parsed.refs:
        if ref.startswith("data:") or ref.endswith(".html"):
            continue
        assert "//" not in ref and not ref.startswith("/"), f"{page} loads {ref} from elsewhere"
        assert (STATIC / ref).is_file(), f"{page} loads {ref}, which is not in {STATIC}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_file_reaches_outside_the_gateway(path):
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"https?://|url\(\s*['\"]?(?!data:)|@import", text), f"{path.name} loads something remote"
    assert len(text.splitlines()) <= 400, f"{path.name} is over 400 lines"


def _exports(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    return set(re.findall(r"^export (?:async )?(?:function|const|let|class) ([\w$]+)", text, re.M))


@pytest.mark.parametrize("path", JS, ids=lambda p: p.name)
def test_every_imported_name_is_exported_by_its_module(path):
    text = path.read_text(encoding="utf-8")
    imports = re.findall(r"import\s*\{([^}]*)\}\s*from\s*\"\./([\w.]+)\"", text)
    for names, module in imports:
        target = STATIC / module
        assert target.is_file(), f"{path.name} imports {module}, which is missing"
        wanted = {n.strip() for n in names.split(",") if n.strip()}
        missing = wanted - _exports(target)
        assert not missing, f"{path.name} imports {sorted(missing)} that {module} does not export"
        body = re.sub(r"^import[^;]*;", "", text, flags=re.M)
        unused = {n for n in wanted if not re.search(rf"(?<![\w$]){re.escape(n)}(?![\w$])", body)}
        assert not unused, f"{path.name} imports {sorted(unused)} from {module} without using them"


def test_the_emoji_are_those_of_models_timeline():
    text = (STATIC / "common.js").read_text(encoding="utf-8")
    block = re.search(r"export const EMOJI = \{(.*?)\};", text, re.S).group(1)
    pairs = dict(re.findall(r"(\w+):\s*\"([^\"]+)\"", block))
    assert pairs == EMOJI


def test_the_colours_are_those_of_models_timeline():  # the call report picture draws with the same colours
    text = (STATIC / "common.js").read_text(encoding="utf-8")
    block = re.search(r"export const COLORS = \{(.*?)\};", text, re.S).group(1)
    assert dict(re.findall(r"(\w+):\s*\"(#[0-9a-f]{6})\"", block)) == COLORS


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed: JavaScript syntax not checked")
@pytest.mark.parametrize("path", JS, ids=lambda p: p.name)
def test_the_javascript_parses(path):
    proc = subprocess.run(["node", "--check", "--input-type=module"], input=path.read_text(encoding="utf-8"),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_the_package_ships_the_static_folder():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert json.dumps("emowatch.streams.gateway") + ' = ["static/*"]' in pyproject
