import numpy as np
import pytest

from emowatch.streams.audio.codec import encode_pcm_s16le
from emowatch.streams.infer.context import ContextStore
from emowatch.streams.infer.scoring import admit_chunk, frame_scores_record, parse_stereo_roles, release_expired
from emowatch.topics.call_ids import MAX_CALL_ID_CHARS


def rec(seq, *, role="MIXED", channels=1, audio=None, call="c1", end=False, encoding="PCM_S16LE"):
    if audio is None:
        audio = encode_pcm_s16le(np.full(16000 * channels, 0.1, np.float32))
    return {"call_id": call, "role": role, "seq": seq, "start_ms": seq * 1000, "event_time": 1000 + seq * 1000,
            "sample_rate": 16000, "encoding": encoding, "channels": channels, "audio": audio,
            "business_line": "retail", "end_of_call": end, "attributes": {"tier": "gold"}}


def admit(chunk, ctx, source=None, now=0.0, roles=("CUSTOMER", "AGENT")):
    return admit_chunk(chunk, source or f"msg{chunk['seq']}", ctx, max_chunk_s=5, stereo_roles=roles, now=now,
                       partition=0)


def test_parse_stereo_roles():
    assert parse_stereo_roles("customer, agent") == ("CUSTOMER", "AGENT")
    assert parse_stereo_roles("AGENT,CUSTOMER") == ("AGENT", "CUSTOMER")
    assert parse_stereo_roles("") is None and parse_stereo_roles("none") is None
    for bad in ("CUSTOMER", "CUSTOMER,CUSTOMER", "CALLER,AGENT", "A,B,C"):
        with pytest.raises(ValueError, match="stereo roles"):
            parse_stereo_roles(bad)


def test_empty_call_id_is_rejected_before_the_context():
    ctx = ContextStore()
    adm = admit(rec(0, call=""), ctx)
    assert adm.rejected is not None and adm.rejected.code == "empty_call_id" and not adm.refs and adm.outputs == 0


def test_call_id_longer_than_the_contract_is_rejected_and_the_longest_accepted():
    ctx = ContextStore()
    adm = admit(rec(0, call="c" * (MAX_CALL_ID_CHARS + 1)), ctx)
    assert adm.rejected is not None and adm.rejected.code == "call_id_too_long" and not adm.refs
    assert len(adm.call_id) < MAX_CALL_ID_CHARS  # the dead letter's call id is cut, the original bytes are kept
    ok = admit(rec(0, call="c" * MAX_CALL_ID_CHARS), ctx)
    assert ok.rejected is None and len(ok.refs) == 1



def test_negative_seq_is_rejected_not_dropped_as_old():
    ctx = ContextStore()
    adm = admit(rec(-3), ctx)
    assert adm.rejected is not None and adm.rejected.code == "negative_seq" and adm.call_id == "c1"
    assert not adm.refs and adm.outputs == 0 and adm.skipped == 0 and ctx.skipped == 0


def test_stereo_mixed_chunk_splits_into_configured_roles():
    left, right = np.full(16000, 0.5, np.float32), np.full(16000, -0.25, np.float32)
    audio = encode_pcm_s16le(np.stack([left, right], axis=1).reshape(-1))
    adm = admit(rec(0, channels=2, audio=audio), ContextStore(), roles=("AGENT", "CUSTOMER"))
    assert adm.outputs == 2 and adm.skipped == 0
    by_role = {r.role: r for r in adm.refs}
    assert set(by_role) == {"AGENT", "CUSTOMER"}
    assert np.allclose(by_role["AGENT"].window, 0.5, atol=1e-3)
    assert np.allclose(by_role["CUSTOMER"].window, -0.25, atol=1e-3)


def test_stereo_without_configured_roles_or_with_a_speaker_role_is_downmixed():
    audio = encode_pcm_s16le(np.tile(np.array([0.5, -0.25], np.float32), 16000))
    adm = admit(rec(0, channels=2, audio=audio), ContextStore(), roles=None)
    assert [r.role for r in adm.refs] == ["MIXED"] and np.allclose(adm.refs[0].window, 0.125, atol=1e-3)
    adm = admit(rec(0, role="AGENT", channels=2, audio=audio, call="c2"), ContextStore())
    assert [r.role for r in adm.refs] == ["AGENT"]


def test_rejections_carry_a_code_and_reason():
    adm = admit(rec(0, encoding="MP3"), ContextStore())
    assert adm.rejected.code == "unknown_encoding" and "MP3" in adm.rejected.reason
    assert adm.call_id == "c1" and adm.outputs == 0 and not adm.refs
    assert admit(rec(0, audio=b""), ContextStore()).rejected.code == "empty"


def test_held_chunk_is_released_with_its_own_source_and_metadata():
    ctx = ContextStore()
    a1 = admit(rec(1), ctx, source="m1")
    assert a1.refs == [] and a1.outputs == 1 and a1.held == 1
    a0 = admit(rec(0), ctx, source="m0")
    assert [(r.seq, r.source) for r in a0.refs] == [(0, "m0"), (1, "m1")]
    assert a0.refs[1].chunk["start_ms"] == 1000 and "audio" not in a0.refs[1].chunk
    dup = admit(rec(1), ctx, source="m1-again")
    assert dup.outputs == 0 and dup.skipped == 1 and not dup.refs


def test_release_expired_turns_held_chunks_into_refs():
    ctx = ContextStore(reorder_timeout_s=1.0)
    admit(rec(3), ctx, source="m3", now=0.0)
    assert release_expired(ctx, 0.5) == []
    refs = release_expired(ctx, 1.0)
    assert [(r.seq, r.source, r.gap_before) for r in refs] == [(3, "m3", True)]


def test_frame_scores_record_fields():
    ref = admit(rec(0, end=True), ContextStore()).refs[0]
    logits = np.arange(50 * 9, dtype=np.float32).reshape(50, 9)
    probs = np.full(9, 1 / 9, np.float32)
    r = frame_scores_record(ref, logits, probs, None, labels=[f"l{i}" for i in range(9)], model_name="m",
                            model_version="v", frame_ms=20)
    assert (r["call_id"], r["role"], r["seq"], r["n_frames"]) == ("c1", "MIXED", 0, 50)
    assert len(r["logits"]) == 450 and r["logits"][9] == 9.0 and r["end_of_call"] and not r["gap_before"]
    assert r["attributes"] == {"tier": "gold"} and r["business_line"] == "retail" and r["embedding"] is None
