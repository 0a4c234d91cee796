"""`emowatch rules convert` and `rules check`/`publish` of a file in the seed's format (no broker needed)."""
from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from emowatch.rules import check_files, load_ruleset
from emowatch.streams.cli.main import app

DATA = Path(__file__).resolve().parents[2] / "rules" / "data"
SEED = DATA / "seed_alert_rules.yaml"
GOLDEN = DATA / "seed_alert_rules.converted.yaml"
# An unreachable broker: any attempt to publish would fail with exit code 2, not 0 or 1.
ENV = {"EMOWATCH_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9"}


def test_convert_writes_the_emowatch_file_to_stdout() -> None:
    res = CliRunner().invoke(app, ["rules", "convert", str(SEED)])
    assert res.exit_code == 0, res.output
    assert res.stdout == GOLDEN.read_text(encoding="utf-8")
    assert "2 rule(s) -> rule set 'seed_alert_rules'" in res.stderr and "5 generated example(s) pass" in res.stderr


def test_convert_out_then_check_and_publish_dry_run(tmp_path: Path) -> None:
    out = tmp_path / "vip.yaml"
    res = CliRunner().invoke(app, ["rules", "convert", str(SEED), "--out", str(out), "--rule-set", "seed-vip",
                                   "--business-line", "vip"])
    assert res.exit_code == 0, res.output
    assert "no channels; webhook" in res.output  # the notes are printed, and in the file's header
    rs = load_ruleset(out)
    assert (rs.rule_set, rs.business_line, len(rs.rules)) == ("seed-vip", "vip", 2)
    assert check_files([out]) == []
    res = CliRunner().invoke(app, ["rules", "publish", str(out), "--dry-run"], env=ENV)
    assert res.exit_code == 0 and "valid" in res.output, res.output


def test_convert_reports_unconvertible_input_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "alert_rules.yaml"
    bad.write_text('rules:\n  - name: "a"\n    emotion: "angy"\n    threshold: 0.5\n'
                   '  - name: "b"\n    emotion: angry\n    threshold: 1.5\n', encoding="utf-8")
    res = CliRunner().invoke(app, ["rules", "convert", str(bad)])
    assert res.exit_code == 1
    assert res.stdout == ""  # nothing that looks like a rule file
    assert f"{bad}:3: rules[0].emotion: unknown emotion 'angy'" in res.stderr
    assert f"{bad}:7: rules[1].threshold: 1.5 is outside [0, 1]" in res.stderr
    assert "not converted: 2 problem(s)" in res.stderr


def test_convert_rejects_a_bad_option() -> None:
    res = CliRunner().invoke(app, ["rules", "convert", str(SEED), "--rule-set", "no spaces"])
    assert res.exit_code == 2 and "rule_set 'no spaces' is not a valid id" in res.stderr


def test_check_accepts_a_seed_file_with_a_note() -> None:
    res = CliRunner().invoke(app, ["rules", "check", str(SEED), str(GOLDEN)])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())  # rich wraps long lines
    assert "note:" in text and "converted from the seed's format" in text
    assert "run `emowatch rules convert" in text and "2 rule file(s) OK" in text


def test_check_of_a_broken_seed_file_fails(tmp_path: Path) -> None:
    bad = tmp_path / "alert_rules.yaml"
    bad.write_text("rules:\n  - {name: a, emotion: angry, threshold: 0.5, colour: red}\n", encoding="utf-8")
    res = CliRunner().invoke(app, ["rules", "check", str(bad)])
    assert res.exit_code == 1 and f"{bad}:2: unknown key 'colour' in rules[0]" in " ".join(res.output.split())


def test_publish_refuses_a_seed_file() -> None:
    res = CliRunner().invoke(app, ["rules", "publish", str(SEED), "--dry-run"], env=ENV)
    assert res.exit_code == 1
    text = " ".join(res.output.split())
    assert "not published" in text and "is in the seed's format" in text and "emowatch rules convert" in text
