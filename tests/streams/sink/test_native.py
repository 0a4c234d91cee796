"""Rows -> Native blocks (streams/sink/native.py): the wire pieces, and rows inserted as a Native block read
back exactly like the same rows inserted by clickhouse-connect (every column of scores and alerts), and a
batch repeated with its deduplication token is dropped."""
from __future__ import annotations

import time

import numpy as np
import pytest

from emowatch.streams.sink.batches import Batch
from emowatch.streams.sink.native import ENCODERS, _varint, native_block
from emowatch.streams.sink.rows import ALERTS_NATIVE, SCORES_NATIVE, alerts_row, scores_row
from emowatch.streams.sink.writer import SinkWriter
from emowatch.topics.examples import example_record


def test_varint_is_unsigned_leb128():
    assert [_varint(n) for n in (0, 1, 127, 128, 300, 16384)] == [
        b"\x00", b"\x01", b"\x7f", b"\x80\x01", b"\xac\x02", b"\x80\x80\x01"]


def test_strings_arrays_and_maps_on_the_wire():
    assert ENCODERS["String"](["", "ab", "é"]) == b"\x00\x02ab\x02\xc3\xa9"
    assert ENCODERS["String"](["x" * 200]) == b"\xc8\x01" + b"x" * 200
    offsets = np.array([2, 2, 3], "<u8").tobytes()
    assert ENCODERS["Array(String)"]([["a", "b"], [], ["c"]]) == offsets + b"\x01a\x01b\x01c"
    assert ENCODERS["Map(String, String)"]([{"k": "v", "q": "w"}, {}, {"z": ""}]) == \
        offsets + b"\x01k\x01q\x01z" + b"\x01v\x01w\x00"
    floats = ENCODERS["Array(Float32)"]([np.array([1, 2], "<f4"), [], [3.5]])
    assert floats == np.array([2, 2, 3], "<u8").tobytes() + np.array([1, 2, 3.5], "<f4").tobytes()


def test_a_block_is_columns_rows_then_name_type_data_per_column():
    block = native_block([("a", "Int64"), ("b", "String")], [[1, "x"], [2, "yz"]])
    assert block == (b"\x02\x02" + b"\x01a\x05Int64" + np.array([1, 2], "<i8").tobytes()
                     + b"\x01b\x06String" + b"\x01x\x02yz")


SPEECH = [0.0, 0.25, 0.5, 0.75, 1.0]  # FrameScores v3 voice activity of the example's 5 frames
ENERGY = [-100.0, -60.5, -30.25, -12.0, -3.0]


def _records(now: int) -> tuple[list[list], list[list]]:
    from emowatch.topics.serde import AvroSerde

    lists, arrays = AvroSerde("FrameScores"), AvroSerde("FrameScores", float_arrays="numpy")
    scores = []
    for i in range(6):
        rec = example_record("FrameScores", call_id=f"c-{i}", seq=i, event_time=now + i * 1001,
                             attributes={"agent_id": f"ag-{i}", "note": "é" * 70} if i % 2 else {},
                             embedding=[0.5, -1.25] if i == 3 else None, gap_before=i == 2, end_of_call=i == 5)
        if i in (0, 3):  # voice activity; the others have none (VAD off: energy only; or an older writer)
            rec.update(speech=SPEECH, energy_db=ENERGY, vad=f"silero-vad 6.2.3 context {i} ms")
        elif i == 4:
            rec.update(energy_db=ENERGY)
        data = (AvroSerde("FrameScores", version=1) if i == 5 else lists).encode(rec, topic="t")
        serde = arrays if i % 2 else lists  # numpy arrays and lists alike
        scores.append(scores_row(serde.decode(data, topic="t"), i % 3, 1000 + i))
    alerts = [alerts_row(example_record("Alert", call_id=f"c-{i}", alert_id=f"a-{i}", event_time=now + i,
                                        labels={"team": "x"} if i else {}, channels=["ops"] * i), 1, i)
              for i in range(3)]
    return scores, alerts


@pytest.mark.integration
def test_a_native_block_stores_what_clickhouse_connect_stores(tmp_path):
    from emowatch.streams.sink.clickhouse import apply_schema, connect

    client = connect(None, tmp_path, "emowatch")
    try:
        for db in ("viaconnect", "vianative"):
            apply_schema(client, db)
        scores, alerts = _records(int(time.time() * 1000))
        for table, spec, rows in (("scores", SCORES_NATIVE, scores), ("alerts", ALERTS_NATIVE, alerts)):
            names = [name for name, _type in spec]
            plain = [[v.tolist() if isinstance(v, np.ndarray) else v for v in row] for row in rows]
            client.insert(table, plain, database="viaconnect", column_names=names)
            client.raw_insert(f"vianative.{table}", names, insert_block=native_block(spec, rows), fmt="Native")
            query = f"SELECT * EXCEPT inserted_at FROM {{}}.{table} ORDER BY kafka_offset"
            want = client.query(query.format("viaconnect")).result_rows
            got = client.query(query.format("vianative")).result_rows
            assert len(got) == len(rows) and got == want
        query = "SELECT seq, speech, energy_db, vad FROM vianative.scores ORDER BY seq"
        assert client.query(query).result_rows == [
            (0, SPEECH, ENERGY, "silero-vad 6.2.3 context 0 ms"), (1, [], [], ""), (2, [], [], ""),
            (3, SPEECH, ENERGY, "silero-vad 6.2.3 context 3 ms"), (4, [], ENERGY, ""), (5, [], [], "")]
        frames = client.query("SELECT call_id, frame, speech, energy_db, vad FROM vianative.emotion_frames "
                              "WHERE seq IN (0, 4) ORDER BY call_id, frame").result_rows
        assert frames == [("c-0", f, SPEECH[f], ENERGY[f], "silero-vad 6.2.3 context 0 ms") for f in range(5)] + [
            ("c-4", f, None, ENERGY[f], "") for f in range(5)]
        apply_schema(client, "viawriter")  # the sink's writer: a repeated batch (same token) is dropped
        writer = SinkWriter(client, "viawriter", "g")
        for batch in (Batch("t", 0, 0, 5, scores), Batch("t", 0, 0, 5, scores), Batch("t", 0, 0, 6, scores[:1])):
            writer.insert("scores", SCORES_NATIVE, batch)
        assert client.query("SELECT count() FROM viawriter.scores").result_rows == [(7,)]
        # the topic deleted and re-created: other records at the offsets of a landed batch are stored
        now = int(time.time() * 1000)
        recreated = [scores_row(example_record("FrameScores", call_id="after-recreate", seq=seq, event_time=now),
                                0, seq) for seq in range(6)]
        writer.insert("scores", SCORES_NATIVE, Batch("t", 0, 0, 5, recreated))
        assert client.query("SELECT count() FROM viawriter.scores WHERE call_id = 'after-recreate'"
                            ).result_rows == [(6,)]
    finally:
        client.close()
