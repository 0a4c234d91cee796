"""`emowatch export embeddings`: one float32 .npy per chunk equal to the stored embedding, recorded so that
emotion_records.embedding_path is the file; chunks without an embedding are counted; a re-export is idempotent."""
from __future__ import annotations

import numpy as np
import pytest
from analytics_history import DB, RECENT, embedding_of
from typer.testing import CliRunner

from emowatch.streams.cli.main import app

pytestmark = pytest.mark.integration  # the embedded ClickHouse (chDB)


def _export(history, *args):
    return CliRunner().invoke(app, ["export", "embeddings", *args],
                              env={"EMOWATCH_SINK__DATA_DIR": str(history.data_dir)})


def _paths(history, call_id):
    """(role, seq) -> embedding_path of the call's utterance rows (emotion_records has no seq: c-1's chunk
    seq starts at RECENT + seq s); each key once, or the assertion fails."""
    rows = history.client.query(
        f"SELECT role, toUnixTimestamp64Milli(timestamp) - {RECENT}, embedding_path FROM {DB}.emotion_records "
        "WHERE audio_id = {c:String} AND granularity = 'utterance'", parameters={"c": call_id}).result_rows
    out = {(r, ms // 1000): p for r, ms, p in rows}
    assert len(out) == len(rows)
    return out


def test_export_writes_each_stored_embedding_and_records_its_path(history, tmp_path):
    res = _export(history, "--call", "c-1", "--out", str(tmp_path))
    assert res.exit_code == 0, res.output
    assert "wrote 4 embedding file(s)" in res.output
    assert "1 of 5 chunk(s) have no stored embedding" in res.output and "EMOWATCH_MODEL__EMBEDDINGS" in res.output
    folder = tmp_path / "c-1"
    assert sorted(p.name for p in folder.iterdir()) == ["AGENT_0.npy", "CUSTOMER_0.npy", "CUSTOMER_1.npy",
                                                        "CUSTOMER_2.npy"]
    for (call_id, role, seq) in [k for k in history.chunks if k[0] == "c-1"]:
        expected = embedding_of(call_id, role, seq)
        path = folder / f"{role}_{seq}.npy"
        if expected is None:
            assert not path.exists()
            continue
        got = np.load(path)
        assert got.dtype == np.float32 and np.array_equal(got, np.asarray(expected, dtype=np.float32))
    paths = _paths(history, "c-1")  # c-1 CUSTOMER seq 1 is stored twice: still one utterance row
    assert paths == {("CUSTOMER", 0): str(folder.resolve() / "CUSTOMER_0.npy"),
                     ("CUSTOMER", 1): str(folder.resolve() / "CUSTOMER_1.npy"),
                     ("CUSTOMER", 2): str(folder.resolve() / "CUSTOMER_2.npy"),
                     ("AGENT", 0): str(folder.resolve() / "AGENT_0.npy"), ("AGENT", 1): ""}
    frames = history.client.query(f"SELECT DISTINCT embedding_path FROM {DB}.emotion_records "
                                  "WHERE audio_id = 'c-1' AND granularity = 'frame'").result_rows
    assert frames == [("",)]  # paths belong to the chunk (utterance) rows

    again = _export(history, "--call", "c-1", "--out", str(tmp_path))  # idempotent: same files, rows collapse
    assert again.exit_code == 0 and len(list(folder.iterdir())) == 4
    assert _paths(history, "c-1") == paths
    assert history.client.query(f"SELECT count() FROM {DB}.embedding_files FINAL").result_rows == [(4,)]


def test_export_one_role_and_calls_without_embeddings(history, tmp_path):
    res = _export(history, "--call", "c-1", "--out", str(tmp_path), "--role", "agent")
    assert res.exit_code == 0, res.output
    assert [p.name for p in (tmp_path / "c-1").iterdir()] == ["AGENT_0.npy"]
    none = _export(history, "--call", "c-2", "--out", str(tmp_path))
    assert none.exit_code == 0 and "3 of 3 chunk(s) have no stored embedding" in none.output
    assert not (tmp_path / "c-2").exists()


@pytest.mark.parametrize("call_id, code, text", [("no-such-call", 1, "no scores stored"),
                                                  ("../escape", 2, "cannot be a folder name")])
def test_export_refuses(history, tmp_path, call_id, code, text):
    res = _export(history, "--call", call_id, "--out", str(tmp_path))
    assert res.exit_code == code and text in res.output
    assert not any(tmp_path.iterdir())
