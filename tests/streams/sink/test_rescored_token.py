"""The dedup token of scores_rescored inserts (pure)."""
from emowatch.streams.sink.rescored import dedup_token


def rec(seq, version="v2", call="c1"):
    return {"call_id": call, "role": "CUSTOMER", "seq": seq, "model": {"name": "m", "version": version}}


def test_the_token_is_deterministic_and_names_the_model_version():
    batch = [rec(s) for s in range(3)]
    assert dedup_token(batch) == dedup_token([rec(s) for s in range(3)])
    assert dedup_token(batch).startswith("rescore-v2-3-")


def test_another_model_or_other_chunks_give_another_token():
    base = dedup_token([rec(0), rec(1)])
    assert dedup_token([rec(0, "v3"), rec(1, "v3")]) != base
    assert dedup_token([rec(0), rec(2)]) != base
    assert dedup_token([rec(0), rec(1, call="c2")]) != base
