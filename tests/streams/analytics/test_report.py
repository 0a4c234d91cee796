"""The call report picture: a PNG of the expected size, the same bytes for the same call, the class colours
where the call has those emotions, alerts drawn; `emowatch report call` writes that picture."""
from __future__ import annotations

import io

import numpy as np
import pytest
from analytics_history import DB
from typer.testing import CliRunner

from emowatch.models.timeline import COLORS
from emowatch.streams.analytics.call_summary import load_call
from emowatch.streams.analytics.report import PNG_METADATA, render_call_png
from emowatch.streams.cli.main import app

pytestmark = pytest.mark.integration  # the embedded ClickHouse (chDB)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _pixels(png: bytes) -> np.ndarray:
    from matplotlib.image import imread

    return (imread(io.BytesIO(png), format="png")[..., :3] * 255).round().astype(int)


def _share_of(png: bytes, color: str) -> float:
    """Share of the picture's pixels that are exactly ``color``."""
    rgb = [int(color[i:i + 2], 16) for i in (1, 3, 5)]
    return float(np.all(_pixels(png) == rgb, axis=-1).mean())


@pytest.fixture(scope="module")
def calls(history):
    return {c: load_call(history.client, DB, c) for c in ("c-1", "c-2", "c-3")}


def test_a_png_of_one_panel_per_role_the_same_bytes_each_time(calls):
    png = render_call_png(calls["c-1"])
    assert png.startswith(PNG_SIGNATURE) and 10_000 < len(png) < 1_000_000
    assert png == render_call_png(calls["c-1"])
    img = _pixels(png)
    assert img.shape[1] == 1200 and img.shape[0] == round((1.2 + 2.9 * 2) * 100)  # two roles
    assert _pixels(render_call_png(calls["c-3"])).shape[0] == round((1.2 + 2.9 * 1) * 100)
    assert b"emowatch report" in png and b"matplotlib version" not in png  # fixed metadata
    assert PNG_METADATA["Software"] == "emowatch report"


def test_the_class_colours_show_where_the_call_has_those_emotions(calls):
    pngs = {c: render_call_png(call) for c, call in calls.items()}
    share = {c: {e: _share_of(png, COLORS[e]) for e in ("angry", "happy", "unknown")} for c, png in pngs.items()}
    # every step stacks all nine classes: a class the call does not lean to is a thin band, one it does a block
    assert share["c-1"]["angry"] > 0.03 and share["c-1"]["angry"] > 5 * share["c-2"]["angry"]  # c-1: 1.0-2.6 s
    assert share["c-2"]["happy"] > 3 * share["c-3"]["happy"]  # c-2's customer opens happy; c-3 never is
    assert share["c-2"]["unknown"] > 3 * share["c-1"]["unknown"]  # c-2's re-scored chunk (the newer version)


def test_alerts_are_drawn_and_a_coarser_step_changes_the_picture(calls):
    call = calls["c-1"]
    without = render_call_png({**call, "alerts": []})
    assert without != render_call_png(call)
    alert_red = _share_of(render_call_png(call), "#b3261e")
    assert alert_red > 0 and _share_of(without, "#b3261e") == 0
    assert render_call_png(call, step_ms=1000) != render_call_png(call)
    with pytest.raises(ValueError, match="multiple of 200"):
        render_call_png(call, step_ms=300)


def test_a_call_without_roles_still_renders():
    png = render_call_png({"call_id": "x", "roles": {}, "labels": [], "alerts": [], "duration_ms": 0})
    assert png.startswith(PNG_SIGNATURE)


def test_report_command_writes_the_same_picture(history, calls, tmp_path):
    runner = CliRunner()
    env = {"EMOWATCH_SINK__DATA_DIR": str(history.data_dir)}
    out = tmp_path / "pics" / "c-1.png"
    res = runner.invoke(app, ["report", "call", "c-1", "--png", str(out)], env=env)
    assert res.exit_code == 0, res.output
    assert "wrote" in res.output and out.read_bytes() == render_call_png(calls["c-1"])
    res = runner.invoke(app, ["report", "call", "c-1", "--png", str(out), "--step-ms", "1000"], env=env)
    assert res.exit_code == 0 and out.read_bytes() == render_call_png(calls["c-1"], step_ms=1000)
    res = runner.invoke(app, ["report", "call", "nope", "--png", str(out)], env=env)
    assert res.exit_code == 1 and "no scores stored" in res.output
    res = runner.invoke(app, ["report", "call", "c-1", "--png", str(out), "--step-ms", "250"], env=env)
    assert res.exit_code == 2 and "multiple of 200" in res.output
