"""The ClickHouse schema on the embedded engine: idempotent DDL, dedup tokens, natural-key
collapse, the seed's emotion_records queries (the Grafana panels: test_grafana_panels.py)."""
import pytest

from emowatch.rules.examples import probs_to_logits
from emowatch.streams.sink.clickhouse import apply_schema, connect
from emowatch.streams.sink.rows import ALERTS_COLUMNS, SCORES_COLUMNS, alerts_row, scores_row
from emowatch.topics.examples import example_record

pytestmark = pytest.mark.integration  # the embedded ClickHouse (chDB)
DB = "emowatch"
VOICE = ("speech", "energy_db", "vad")  # the last columns of a scores row since migration 0006


@pytest.fixture
def ch(tmp_path):
    client = connect(None, tmp_path, DB)
    apply_schema(client, DB)
    apply_schema(client, DB)  # idempotent
    yield client
    client.close()


def scores(call_id, seq, top, now_ms):
    rec = example_record("FrameScores")
    probs = {top: 0.9}
    logits = probs_to_logits(probs)
    rec.update(call_id=call_id, role="CUSTOMER", seq=seq, start_ms=seq * 1000, event_time=now_ms + seq * 1000,
               n_frames=50, logits=list(logits) * 50, business_line="retail", embedding=None,
               chunk_probs=[0.9 if lab == top else 0.1 / 8 for lab in rec["labels"]])
    return rec


def insert(client, table, cols, rows, token):
    client.insert(table, rows, database=DB, column_names=cols, settings={"insert_deduplication_token": token})


def test_dedup_token_and_natural_key_make_redelivery_idempotent(ch):
    import time

    now = int(time.time() * 1000)
    rows = [scores_row(scores("c1", s, "angry", now), 0, s) for s in range(5)]
    insert(ch, "scores", SCORES_COLUMNS, rows, "t-0-0-4")
    insert(ch, "scores", SCORES_COLUMNS, rows, "t-0-0-4")  # retried identical batch: dropped
    assert ch.query(f"SELECT count() FROM {DB}.scores").result_rows[0][0] == 5
    # ... by the materialized views' targets too (no FINAL: a SummingMergeTree would add the repeat up)
    assert ch.query(f"SELECT sum(chunks) FROM {DB}.emotion_minute").result_rows[0][0] == 5
    assert ch.query(f"SELECT count() FROM {DB}.emotion_steps").result_rows[0][0] == 5 * 5
    # the same chunks re-produced upstream at new offsets (different batch): collapse on the natural key
    again = [scores_row(scores("c1", s, "angry", now), 0, 100 + s) for s in range(3)]
    insert(ch, "scores", SCORES_COLUMNS, again, "t-0-100-102")
    assert ch.query(f"SELECT count() FROM {DB}.scores FINAL").result_rows[0][0] == 5
    assert ch.query(f"SELECT chunks, top_emotion FROM {DB}.calls").result_rows == [(5, "angry")]


def test_seed_queries_run(ch):
    import time

    now = int(time.time() * 1000)
    insert(ch, "scores", SCORES_COLUMNS, [scores_row(scores("c2", s, e, now), 1, s)
                                          for s, e in enumerate(["neutral", "fearful", "angry", "angry"])], "a")
    alert = example_record("Alert")
    alert.update(call_id="c2", role="CUSTOMER", status="FIRING", fired_ms=2500, started_ms=2000, event_time=now + 2500,
                 business_line="retail", replay_id=None)
    insert(ch, "alerts", ALERTS_COLUMNS, [alerts_row(alert, 1, 7)], "b")
    today = ch.query(f"SELECT audio_id, emotion, alert_triggered FROM {DB}.emotion_records "
                     "WHERE alert_triggered = 1 AND toDate(timestamp) = today() ORDER BY timestamp DESC LIMIT 10")
    # both granularities: the chunk (utterance) and its 200 ms step (frame) that hold the alert's fired_ms
    assert sorted(today.result_rows) == [("c2", "angry", True), ("c2", "angry", True)]
    triggered = ch.query(f"SELECT granularity, start_ms FROM (SELECT granularity, timestamp, "
                         f"toUnixTimestamp64Milli(timestamp) - {now} AS start_ms FROM {DB}.emotion_records "
                         "WHERE alert_triggered) ORDER BY granularity").result_rows
    assert triggered == [("frame", 2400), ("utterance", 2000)]
    dist = dict(ch.query(f"SELECT emotion, count() FROM {DB}.emotion_records WHERE granularity = 'utterance' "
                         "AND emotion NOT IN ('unknown','other') GROUP BY emotion").result_rows)
    assert dist == {"neutral": 1, "fearful": 1, "angry": 2}
    steps = dict(ch.query(f"SELECT emotion, count() FROM {DB}.emotion_records WHERE granularity = 'frame' "
                          "GROUP BY emotion").result_rows)
    assert steps == {"neutral": 5, "fearful": 5, "angry": 10}  # 1 s chunks = five 200 ms steps each
    agents = ch.query(f"SELECT DISTINCT agent FROM {DB}.emotion_records").result_rows
    assert agents == [("agent-7",)]
    assert ch.query(f"SELECT sum(chunks) FROM {DB}.emotion_minute").result_rows[0][0] == 4


def test_logit_sums_of_migration_0005_for_old_and_new_chunks(tmp_path):
    """0005 adds per-chunk logit sums (the console's call list reads them): chunks stored before the migration
    get them too, equal to summing the logits when read."""
    import time

    from emowatch.streams.sink.migrations import apply_migrations

    client = _deployed_until(tmp_path, 4)
    try:
        now = int(time.time() * 1000)
        old = [scores_row(scores("old", s, "sad", now), 0, s)[:-len(VOICE)] for s in range(3)]
        insert(client, "scores", SCORES_COLUMNS[:-len(VOICE)], old, "o")  # as the sink wrote rows before 0006
        assert 5 in apply_migrations(client, DB)
        insert(client, "scores", SCORES_COLUMNS, [scores_row(scores("new", s, "angry", now), 0, s) for s in range(2)],
               "n")
        rows = client.query(f"""
            SELECT call_id, logit_sums, arrayMap(k -> arraySum(arrayMap(f -> logits[f * length(labels) + k],
                                                                        range(n_frames))), range(1, 10)) AS summed
            FROM {DB}.scores ORDER BY call_id, seq""").result_rows
        assert [r[0] for r in rows] == ["new"] * 2 + ["old"] * 3
        for _, stored, summed in rows:
            assert len(stored) == 9 and stored == summed
        assert max(range(9), key=lambda k: rows[0][1][k]) == 0 and max(range(9), key=lambda k: rows[-1][1][k]) == 6
        assert "logit_sums" not in client.query(f"SELECT * FROM {DB}.scores LIMIT 1").column_names
    finally:
        client.close()


def test_voice_activity_columns_of_migration_0006(tmp_path):
    """0006 adds speech/energy_db/vad to scores and scores_rescored, and to emotion_frames per frame: rows stored
    before it read as empty arrays / '' (NULL per frame), rows of v3 records with their values."""
    import time

    from emowatch.streams.sink.migrations import apply_migrations, load_migrations

    assert tuple(SCORES_COLUMNS[-len(VOICE):]) == VOICE
    client = _deployed_until(tmp_path, 5)
    try:
        now = int(time.time() * 1000)
        insert(client, "scores", SCORES_COLUMNS[:-len(VOICE)],
               [scores_row(scores("old", 0, "sad", now), 0, 0)[:-len(VOICE)]], "o")
        assert apply_migrations(client, DB) == [m.version for m in load_migrations() if m.version >= 6]
        speech, energy = [0.0, 0.25, 0.5, 0.75, 1.0] * 10, [-100.0, -50.5, -20.0, -9.0, -3.0] * 10  # 50 frames
        new = dict(scores("new", 0, "angry", now), speech=speech, energy_db=energy,
                   vad="silero-vad 6.2.3 context 512 ms")
        insert(client, "scores", SCORES_COLUMNS, [scores_row(new, 0, 1)], "n")
        rows = client.query(f"SELECT call_id, speech, energy_db, vad FROM {DB}.scores ORDER BY call_id").result_rows
        assert rows == [("new", speech, energy, new["vad"]), ("old", [], [], "")]
        frames = client.query(f"SELECT call_id, frame, speech, energy_db FROM {DB}.emotion_frames "
                              "ORDER BY call_id, frame").result_rows
        assert frames == [("new", f, speech[f], energy[f]) for f in range(50)] + [("old", f, None, None)
                                                                                  for f in range(50)]
        cols = {r[0]: r[1] for r in client.query(
            f"SELECT name, type FROM system.columns WHERE database = '{DB}' AND table = 'scores_rescored'").result_rows}
        assert (cols["speech"], cols["energy_db"], cols["vad"]) == (
            "Array(Float32)", "Array(Float32)", "LowCardinality(String)")
    finally:
        client.close()


def test_a_cut_recorded_before_migration_0007_reads_back_without_its_first_key(tmp_path):
    """0007 adds sink_batches.first_key: a cut recorded by a sink of the version before reads back with '' (the
    batcher then takes it by offsets, as that version did); one recorded after it, with the key."""
    from emowatch.streams.sink.batches import Batch
    from emowatch.streams.sink.migrations import apply_migrations
    from emowatch.streams.sink.writer import STATE_TABLE, SinkWriter

    client = _deployed_until(tmp_path, 6)
    try:
        client.insert(STATE_TABLE, [["g", "scores", 0, 40, 47, 8]], database=DB,
                      column_names=["group_id", "topic", "partition", "first_offset", "last_offset", "rows"])
        assert 7 in apply_migrations(client, DB)
        writer = SinkWriter(client, DB, "g")
        assert writer.recorded("scores", 0) == (40, 47, "")
        writer.record(Batch("scores", 1, 0, 3, [["line", "call", "AGENT", 0, 0]], first_key="k0"))
        assert writer.recorded("scores", 1) == (0, 3, "k0")
    finally:
        client.close()


def _deployed_until(tmp_path, last: int):
    """An embedded database as a deployment of an older version left it: the migrations up to ``last`` applied."""
    import shutil

    from emowatch.streams.resources import clickhouse_migrations_dir
    from emowatch.streams.sink.migrations import apply_migrations

    before = tmp_path / "before"
    before.mkdir()
    for f in sorted(clickhouse_migrations_dir().glob("*.sql")):
        if int(f.name[:4]) <= last:
            shutil.copy(f, before / f.name)
    client = connect(None, tmp_path, DB)
    try:
        assert apply_migrations(client, DB, before) == list(range(1, last + 1))
    except BaseException:
        client.close()
        raise
    return client
