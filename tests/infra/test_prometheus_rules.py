"""infra/prometheus: `promtool check rules` / `check config` and the rules' unit tests (`promtool test rules`,
infra/prometheus/alerts_test.yml). promtool comes from Debian's `prometheus` package (`make deps-system`)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

DIR = Path(__file__).resolve().parents[2] / "infra" / "prometheus"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not on PATH: `make deps-system` installs Debian's prometheus package")


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], cwd=DIR, capture_output=True, text=True, timeout=120)


@needs_promtool
def test_alerting_rules_pass_promtool_check():
    res = promtool("check", "rules", "alerts.yml")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout


@needs_promtool
def test_the_compose_scrape_config_passes_promtool_check():
    res = promtool("check", "config", "prometheus.yml")
    assert res.returncode == 0, res.stdout + res.stderr


@needs_promtool
def test_alerting_rules_pass_their_unit_tests():
    res = promtool("test", "rules", "alerts_test.yml")
    assert res.returncode == 0, res.stdout + res.stderr


def test_every_alert_is_unit_tested_firing_and_has_a_severity_and_a_summary():
    rules = [r for g in yaml.safe_load((DIR / "alerts.yml").read_text())["groups"] for r in g["rules"]]
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
    cases = yaml.safe_load((DIR / "alerts_test.yml").read_text())["tests"]
    fired = {c["alertname"] for t in cases for c in t["alert_rule_test"] if c.get("exp_alerts")}
    assert fired == set(names)


def test_every_threshold_is_justified_by_a_comment():
    """Each alert is preceded by a comment (the benchmark figure its threshold rests on, or why any is bad)."""
    lines = (DIR / "alerts.yml").read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"\s*- alert: ", line):
            above = [x.strip() for x in lines[max(0, i - 3):i]]
            assert any(x.startswith("#") for x in above), line.strip()
