"""`make demo` itself: `emowatch demo` (the command the Makefile runs) in a fresh working directory
streams the bundled calls through the bundled model and rules, prints alerts and the summary,
exits 0 and leaves nothing running and nothing in its working directory but its data folder."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from emowatch.streams.local.demo import load_calls

pytestmark = pytest.mark.integration
MARKER = "DEMO_TEST_RUN_MARKER"  # no EMOWATCH_ prefix (unknown settings are refused); LocalStack passes it on


def _processes_with(marker: str) -> list[str]:
    """Processes whose environment holds ``marker`` (the broker and workers inherit the demo's environment)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if marker.encode() in (proc / "environ").read_bytes():
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{proc.name}: {cmdline}")
        except OSError:  # gone, or not ours
            continue
    return found


def _table(text: str) -> list[dict[str, str]]:
    """Rows of the rich table printed first in ``text``, by column name."""
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("┃"))
    cols = [c.strip() for c in header.strip("┃ ").split("┃")]
    start = lines.index(header)
    rows = []
    for line in lines[start + 1:]:
        if line.startswith("│"):
            rows.append(dict(zip(cols, (c.strip() for c in line.strip("│ ").split("│")))))
        elif line.startswith("└"):
            break
    return rows


def test_make_demo_runs_end_to_end_and_leaves_nothing_behind(tmp_path):
    makefile = (Path(__file__).parents[3] / "Makefile").read_text()
    pattern = r"^demo:.*\n(\t.*\n)*\t@\$\(VENV\)/bin/emowatch demo\n"
    assert re.search(pattern, makefile, re.M), "make demo runs something else"
    if not Path("/proc/self/environ").exists():
        pytest.skip("needs /proc to find left-over processes")
    token = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMOWATCH_")}
    env.update({MARKER: token, "PYTHONUNBUFFERED": "1"})
    # the console script is `emowatch = emowatch.streams.cli.main:main`, which `python -m emowatch.streams.cli` runs
    proc = subprocess.run([sys.executable, "-m", "emowatch.streams.cli", "demo", "--timeout-s", "300"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=420)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    m = re.search(r"^(\d+) chunks -> (\d+) score messages, (\d+) alert events, (\d+) dead letters, "
                  r"(\d+) notifications delivered$", out, re.M)
    assert m, out[-4000:]
    chunks, scores, alerts, dead, notified = map(int, m.groups())
    # The demo streams faster than real time: an episode may be over when the notifier reads it, and is
    # then delivered as RESOLVED (docs/notify.md); either way every delivery must carry a valid signature.
    delivered = re.findall(r"^delivered\s+(FIRING|RESOLVED) .* signature=(\w+)", out, re.M)
    assert notified >= 1 and len(delivered) == notified, out[-4000:]
    assert {sig for _status, sig in delivered} == {"ok"}, out[-4000:]
    assert chunks > 0 and scores == chunks and dead == 0
    assert alerts >= 1 and re.search(r"^FIRING\s+\S+\s+\S+", out, re.M), "the bundled rules fired no alert"
    assert "Summary (queried from ClickHouse)" in out
    summary = _table(out[out.index("Summary (queried from ClickHouse)"):])
    assert {r["call_id"] for r in summary} == {c.call_id for c in load_calls()}, summary  # the bundled calls
    assert sum(int(r["chunks"]) for r in summary) == chunks
    assert any(int(r["alerts_fired"]) >= 1 and r.get("rules") for r in summary), summary  # alerts reached ClickHouse
    assert _processes_with(f"{MARKER}={token}") == []
    assert [p.name for p in tmp_path.iterdir()] == [".emowatch"]  # no Faust "<app>-data" folder in the cwd
    assert (tmp_path / ".emowatch" / "demo" / "logs").is_dir()
