"""`emowatch rules publish`: validation happens before anything is written (no broker needed here)."""
from __future__ import annotations

from typer.testing import CliRunner

from emowatch.rules import load_ruleset
from emowatch.rules.loader import bundled_rule_files
from emowatch.streams.cli.main import app

VIP = next(p for p in bundled_rule_files() if p.stem == "vip")
# An unreachable broker: any attempt to publish would fail with exit code 2, not 0 or 1.
ENV = {"EMOWATCH_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9"}


def test_dry_run_validates_and_reports_the_version():
    res = CliRunner().invoke(app, ["rules", "publish", str(VIP), "--dry-run"], env=ENV)
    assert res.exit_code == 0, res.output
    assert "valid" in res.output and load_ruleset(VIP).version in res.output and "not published" in res.output


def test_invalid_file_is_not_published(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(VIP.read_text().replace("emotion: fearful", "emotion: feerful"))
    res = CliRunner().invoke(app, ["rules", "publish", str(bad)], env=ENV)
    assert res.exit_code == 1
    assert "unknown emotion 'feerful'" in res.output and "not published" in res.output
