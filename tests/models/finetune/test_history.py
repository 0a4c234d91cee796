"""`--from-history`: training examples from the chunk embeddings the sink stored (embedded ClickHouse), per labelled
call, role and span, only of the model being fine-tuned and since a time; calls without usable chunks are named."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
from analytics_history import scores_record
from typer.testing import CliRunner

from emowatch.models.finetune.history import history_examples
from emowatch.models.finetune.run import finetune_head
from emowatch.models.quality.errors import QualityError
from emowatch.models.quality.labels import read_labels
from emowatch.models.synth import CLASSES, synth_clip
from emowatch.models.utterance import score_files
from emowatch.streams.cli.main import app
from emowatch.streams.sink.clickhouse import apply_schema, connect
from emowatch.streams.sink.rows import SCORES_COLUMNS, scores_row

pytestmark = pytest.mark.integration  # the embedded ClickHouse (chDB)

DB = "emowatch"
NOW = int(time.time() * 1000)
RECENT, OLD = NOW - 3_600_000, NOW - 40 * 86_400_000
SINCE = NOW - 30 * 86_400_000
CALLS_PER_CLASS, CHUNKS = 4, 3


class Stored:
    """What the fixture stored: the client, its data dir, the labels file and the embeddings per (call, role, seq)."""

    def __init__(self, client, data_dir, labels):
        self.client, self.data_dir, self.labels = client, data_dir, labels
        self.embeddings: dict[tuple[str, str, int], np.ndarray] = {}


@pytest.fixture(scope="module")
def stored(weak_model, tmp_path_factory):
    data = tmp_path_factory.mktemp("ft-history")
    client = connect(None, data, DB)
    apply_schema(client, DB)
    rng = np.random.default_rng(7)
    plan = []  # (call_id, role, t0, classes of its chunks, model version or None for no embedding)
    for cls in CLASSES:
        for i in range(CALLS_PER_CLASS):
            plan.append((f"{cls}-{i}", "CUSTOMER", RECENT + i * 60_000, [cls] * CHUNKS, weak_model.version))
    plan += [("angry-0", "AGENT", RECENT, ["neutral"] * CHUNKS, weak_model.version),  # the other role
             ("span-1", "CUSTOMER", RECENT, ["neutral", "angry", "neutral"], weak_model.version),
             ("old-1", "CUSTOMER", OLD, ["angry"] * CHUNKS, weak_model.version),
             ("other-1", "CUSTOMER", RECENT, ["sad"] * CHUNKS, "someone-else@1"),
             ("noemb-1", "CUSTOMER", RECENT, ["sad"] * CHUNKS, None)]
    clips = [synth_clip(c, 1.0, rng) for *_, classes, _v in plan for c in classes]
    embeddings = iter(r.embedding for r in score_files(weak_model.engine(), clips, embeddings=True))
    labels = tmp_path_factory.mktemp("ft-history-labels") / "calls.csv"
    s = Stored(client, data, labels)
    rows = []
    for call_id, role, t0, classes, version in plan:
        for seq, _cls in enumerate(classes):
            emb = next(embeddings)
            rec = scores_record(call_id, "retail", "ag-1", t0, role, seq, ("neutral", "neutral"),
                                None if version is None else emb.tolist())
            rec["model"] = {"name": "weak", "version": version or weak_model.version}
            s.embeddings[(call_id, role, seq)] = emb
            rows.append(scores_row(rec, 0, len(rows)))
    client.insert("scores", rows, database=DB, column_names=SCORES_COLUMNS)
    lines = ["call_id,role,start_s,end_s,label"]
    lines += [f"{cls}-{i},{'customer' if i == 0 else ''},,,{cls}" for cls in CLASSES for i in range(CALLS_PER_CLASS)]
    lines += ["span-1,,1.0,2.0,angry", "old-1,,,,angry", "other-1,,,,sad", "noemb-1,,,,sad"]
    labels.write_text("\n".join(lines) + "\n", encoding="utf-8")
    yield s
    client.close()


def test_examples_are_the_stored_chunks_of_each_row_in_its_span_role_and_model(stored, weak_model):
    items = read_labels(stored.labels)
    found = history_examples(stored.client, DB, items, model_version=weak_model.version, since_ms=SINCE)
    reasons = {m.key: m.reason for m in found.missing}
    assert reasons.keys() == {"old-1", "other-1", "noemb-1"}
    assert reasons["old-1"].startswith("no stored chunks of this call since --since")
    assert "model version(s) someone-else@1" in reasons["other-1"]
    assert "without an embedding" in reasons["noemb-1"] and "EMOWATCH_MODEL__EMBEDDINGS=true" in reasons["noemb-1"]
    assert (found.other_model, found.no_embedding) == ({"someone-else@1": CHUNKS}, CHUNKS)
    ex = found.examples
    assert len(ex) == len(CLASSES) * CALLS_PER_CLASS * CHUNKS + 1  # span-1: only the chunk of 1.0-2.0 s
    assert "span-1/CUSTOMER#1" in ex.keys and not {"span-1/CUSTOMER#0", "span-1/CUSTOMER#2"} & set(ex.keys)
    assert not any(k.startswith("angry-0/AGENT") for k in ex.keys)  # the row says role customer
    for key, x, label in zip(ex.keys, ex.x, ex.labels):
        call_role, seq = key.split("#")
        call_id, role = call_role.split("/")
        assert np.array_equal(x, stored.embeddings[(call_id, role, int(seq))])
        assert label == next(it.label for it in items if it.call_id == call_id)
    assert len(set(ex.groups.tolist())) == len(CLASSES) * CALLS_PER_CLASS + 1  # one group per labelled row
    everything = history_examples(stored.client, DB, items, model_version=weak_model.version)
    assert [m.key for m in everything.missing] == ["other-1", "noemb-1"]  # no --since: old-1 counts
    # a row without a role reads every role of the call
    loose = [it for it in items if it.call_id == "angry-1"]
    assert len(history_examples(stored.client, DB, loose, model_version=weak_model.version).examples) == CHUNKS


def test_a_head_trained_from_history_improves_and_missing_calls_stop_the_job(stored, weak_model, tmp_path):
    with pytest.raises(QualityError, match=r"3 labelled call row\(s\) have no usable stored embedding") as err:
        finetune_head(weak_model, stored.labels, tmp_path / "a", from_history=True, client=stored.client,
                      database=DB, since_ms=SINCE)
    assert "line 19 (old-1)" in str(err.value) and not (tmp_path / "a").exists()
    with pytest.raises(QualityError, match="need --from-history"):
        finetune_head(weak_model, stored.labels, tmp_path / "b")
    out = finetune_head(weak_model, stored.labels, tmp_path / "c", from_history=True, client=stored.client,
                        database=DB, since_ms=SINCE, since="30d", skip_missing=True)
    s = out.summary
    assert s["held_out"]["after"]["macro_f1"] > s["held_out"]["before"]["macro_f1"]
    assert s["examples"]["total"] == len(CLASSES) * CALLS_PER_CLASS * CHUNKS + 1
    assert len(s["history"]["missing"]) == 3 and "--from-history --since 30d" in s["command"]
    held_rows = set(s["split"]["held_out_lines"])
    assert held_rows and not held_rows & set(s["split"]["train_lines"])


def test_cli_from_history(stored, weak_dir, tmp_path):
    runner = CliRunner()
    env = {"EMOWATCH_SINK__DATA_DIR": str(stored.data_dir)}
    base = ["model", "finetune-head", "--labels", str(stored.labels), "--model", str(weak_dir), "--from-history",
            "--since", "30d"]
    res = runner.invoke(app, [*base, "--out", str(tmp_path / "x")], env=env)
    assert res.exit_code == 2 and "3 labelled call row(s)" in res.output and "old-1" in res.output
    res = runner.invoke(app, [*base, "--out", str(tmp_path / "y"), "--skip-missing", "--format", "json"], env=env)
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert got["from_history"] and got["since"] == "30d" and got["out"] == str(tmp_path / "y")
    assert got["examples"]["total"] == len(CLASSES) * CALLS_PER_CLASS * CHUNKS + 1
    assert got["held_out"]["after"]["macro_f1"] > got["held_out"]["before"]["macro_f1"]
