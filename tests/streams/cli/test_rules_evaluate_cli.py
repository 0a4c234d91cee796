"""`emowatch rules evaluate` through typer's CliRunner: recordings scored by the bundled demo model and the same
calls stored in the embedded ClickHouse (as the sink stores them) give the same fired rules; the JSON's counts
equal the ones computed from its per-call table; the table format; errors with the CSV's line."""
from __future__ import annotations

import json
import time

import pytest
from model_fixtures import bundled_model  # noqa: F401 - fixture
from rule_eval_cases import MONO, RULES, counts_of, write_case
from typer.testing import CliRunner

from emowatch.streams.cli.main import app
from emowatch.streams.replay.audio_source import AudioCalls
from emowatch.streams.resources import demo_model_dir
from emowatch.streams.settings import Settings
from emowatch.streams.sink.clickhouse import apply_schema, connect
from emowatch.streams.sink.rows import SCORES_COLUMNS, scores_row

pytestmark = pytest.mark.integration  # the embedded ClickHouse (chDB)
DB = "emowatch"
FILES = [*MONO, "stereo.wav"]
# one rule more: the same sadness, but only over speech (the default); the voice-activity detector hears little
# speech in the quiet synthetic sad voice, so it does not fire - from ClickHouse too only if `speech` is stored and
# read back (without it every frame would count as speech and it would fire like `sad`)
SPEECH_RULE = "  - id: sad-speech\n    when: {emotion: sad, above: 0.6}\n    for: 2s\n    speech_only: true\n"


def stored_id(name: str) -> str:
    return "S-" + name.removesuffix(".wav")


@pytest.fixture(scope="module")
def case(tmp_path_factory, bundled_model):  # noqa: F811
    """The recordings and rule file; the same calls scored and stored in ClickHouse under ``S-<name>``."""
    folder = tmp_path_factory.mktemp("rule_eval")
    write_case(folder)
    (folder / "rules.yaml").write_text(RULES + SPEECH_RULE, encoding="utf-8")
    audio = AudioCalls(bundled_model, Settings(), capture_start_ms=int(time.time() * 1000) - 3_600_000)
    data = folder / "data"
    client = connect(None, data, DB)
    apply_schema(client, DB)
    records = [rec for name in FILES for rec in audio.score(folder / name, call_id=stored_id(name))]
    rows = [scores_row(rec, 0, offset) for offset, rec in enumerate(records)]  # offsets in the order read
    client.insert("scores", rows, database=DB, column_names=SCORES_COLUMNS)
    env = {"EMOWATCH_MODEL__MODEL": str(demo_model_dir()), "EMOWATCH_MODEL__DEVICE": "cpu",
           "EMOWATCH_MODEL__PRECISION": "fp32", "EMOWATCH_SINK__DATA_DIR": str(data)}
    yield folder, env
    client.close()


def evaluate(case, csv_text: str, *args: str, code: int = 0, rules: str = "rules.yaml"):
    folder, env = case
    (folder / "calls.csv").write_text(csv_text, encoding="utf-8")
    res = CliRunner().invoke(app, ["rules", "evaluate", "--labels", str(folder / "calls.csv"),
                                   "--rules", str(folder / rules), *args], env=env)
    assert res.exit_code == code, res.output
    return res


EXPECTED = {"calm.wav": "none", "escalating.wav": "angry", "sad.wav": "sad-speech", "angry.wav": "angry;sad",
            "stereo.wav": "angry;customer-angry"}


def test_recordings_and_their_stored_scores_fire_alike_and_the_counts_add_up(case):
    text = "audio,call_id,expected\n" + "".join(f"{n},,{e}\n" for n, e in EXPECTED.items()) + "".join(
        f",{stored_id(n)},{e}\n" for n, e in EXPECTED.items())
    res = evaluate(case, text, "--format", "json")
    rep = json.loads(res.stdout)  # stdout holds the JSON alone (the model's messages went to stderr)
    rows = {(row["source"], row["call"]): row for row in rep["calls"]}
    for name in FILES:
        assert rows[("audio", name)]["fired"] == rows[("history", stored_id(name))]["fired"], name
    fired = {row["call"]: set(row["fired"]) for row in rep["calls"]}
    assert fired["escalating.wav"] >= {"angry"} and fired["sad.wav"] == {"sad"} and fired["calm.wav"] == set()
    assert set(rows[("history", "S-sad")]["fired"]) == {"sad"}  # not sad-speech: the stored speech was read back
    assert rows[("history", "S-sad")]["business_line"] == "default"  # the stored call's own
    expected = {row["call"]: set(row["expected"]) for row in rep["calls"]}
    assert len(expected) == rep["n_calls"] == 10
    for r in rep["rules"]:
        assert {k: r[k] for k in ("tp", "fp", "fn", "tn")} == counts_of(expected, fired, r["rule"]), r["rule"]
    by = {r["rule"]: r for r in rep["rules"]}
    assert by["sad"]["fp"] == 2 and by["sad"]["fn"] == 2 and by["angry"]["tp"] == 6 and by["sad-speech"]["fn"] == 2
    assert [r["rule"] for r in rep["rules"]] == ["angry", "sad", "customer-angry", "fear", "sad-speech"]
    assert rep["rule_set"] == "eval-test" and len(rep["models"]) == 1


def test_the_table_format(case):
    res = evaluate(case, "call_id,expected\nS-sad,none\nS-escalating,angry;sad\n")
    out = " ".join(res.stdout.split())
    assert "rule set eval-test" in out and "over 2 labelled call(s)" in out and "scores by model emowatch-demo" in out
    assert "per rule" in out and "per call" in out and "(all rules, micro)" in out and "(call alerted at all)" in out
    assert "│ fear │ 0 │ 0 │ 0 │ 2 │ 0.00* │ 0.00* │ 0.00* │" in out and "zero division, reported as 0" in out
    assert "│ sad │ 0 │ 1 │ 1 │ 0 │ 0.00 │ 0.00 │ 0.00* │" in out
    assert "extra sad" in out and "missed sad" in out


@pytest.mark.parametrize("csv_text, said", [
    ("call_id,expected\nS-sad,none\nS-calm,angry;anger\n", "calls.csv:3: unknown rule id(s) 'anger' in expected"),
    ("call_id,expected\nnope,none\n", "calls.csv:2: no scores stored for call 'nope'"),
    ("call_id,expected,business_line\nS-sad,none,vip\n",
     "calls.csv:2: call 'S-sad' is stored with business line 'default', not 'vip'"),
])
def test_errors_name_the_csv_line(case, csv_text, said):
    res = evaluate(case, csv_text, code=2)
    assert said in " ".join(res.output.split())


def test_a_stored_call_of_a_line_the_rule_set_does_not_serve(case):
    folder, _env = case
    (folder / "vip.yaml").write_text(RULES.replace('business_line: "*"', "business_line: vip"), encoding="utf-8")
    res = evaluate(case, "call_id,expected\nS-sad,none\n", rules="vip.yaml", code=2)
    assert ("calls.csv:2: call 'S-sad' is of business line 'default', which the rule set (business line 'vip') "
            "does not serve") in " ".join(res.output.split())


def test_a_bad_rule_file_gives_the_loaders_file_and_line(case):
    folder, _env = case
    (folder / "bad.yaml").write_text(RULES.replace("above: 0.6", "above: 1.6", 1), encoding="utf-8")
    res = evaluate(case, "call_id,expected\nS-sad,none\n", rules="bad.yaml", code=2)
    out = " ".join(res.output.split())
    assert "bad.yaml:8:" in out and "invalid rule file" in out
    res = evaluate(case, "call_id,expected\nS-sad,none\n", "--format", "xml", code=2)
    assert "--format must be table or json" in res.output
