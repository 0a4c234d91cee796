import numpy as np
import pytest

from emowatch.streams.infer.context import ContextStore


def chunk(v, n=16000):
    return np.full(n, v, np.float32)


def offer(ctx, seq, *, key=("c", "MIXED"), now=0.0, end=False, partition=0):
    return ctx.offer(key[0], key[1], seq, chunk(seq), now=now, token=f"tok{seq}", end_of_call=end,
                     partition=partition)


def seqs(released):
    return [a.seq for a in released]


def test_left_context_is_rolling_and_only_chunk_is_emitted():
    ctx = ContextStore(context_s=2.0)
    a0 = offer(ctx, 0).released[0]
    assert a0.window.size == 16000 and a0.emit_samples == 16000 and not a0.gap_before and a0.token == "tok0"
    offer(ctx, 1)
    a2 = offer(ctx, 2).released[0]
    a3 = offer(ctx, 3).released[0]
    assert a2.window.size == 48000 and a3.window.size == 48000
    assert np.array_equal(a3.window[:16000], chunk(1)) and np.array_equal(a3.window[-16000:], chunk(3))


def test_out_of_order_chunks_are_held_and_released_in_seq_order_without_gap():
    ctx = ContextStore(context_s=1.0, reorder_max=4)
    assert offer(ctx, 1).status == "held"  # seq 1 before seq 0 at the start of a call
    assert ctx.held_count() == 1
    r = offer(ctx, 0)
    assert r.status == "admitted" and seqs(r.released) == [0, 1]
    assert offer(ctx, 3).status == "held" and offer(ctx, 4).status == "held"
    r = offer(ctx, 2)
    assert seqs(r.released) == [2, 3, 4]
    assert not any(a.gap_before for a in r.released)
    # seq 3's window has seq 2 as left context: reordering does not lose context
    assert np.array_equal(r.released[1].window[:16000], chunk(2))
    assert ctx.gaps == 0 and ctx.reordered == 3 and ctx.held_count() == 0


def test_duplicates_of_scored_and_of_held_chunks_are_skipped_and_counted():
    ctx = ContextStore(context_s=1.0)
    offer(ctx, 0)
    assert offer(ctx, 0).status == "old"
    offer(ctx, 2)
    assert offer(ctx, 2).status == "duplicate"
    assert seqs(offer(ctx, 1).released) == [1, 2]
    assert offer(ctx, 1).status == "old"
    assert ctx.skipped == 3


def test_gap_becomes_final_when_too_many_chunks_wait():
    ctx = ContextStore(context_s=1.0, reorder_max=2)
    offer(ctx, 0)
    assert not offer(ctx, 2).released and not offer(ctx, 3).released
    r = offer(ctx, 4)  # three held > reorder_max: seq 1 is declared missing
    assert seqs(r.released) == [2, 3, 4] and r.status == "admitted"
    assert [a.gap_before for a in r.released] == [True, False, False]
    assert r.released[0].window.size == 16000  # context reset at the gap
    assert offer(ctx, 1).status == "old"  # too late now
    assert ctx.gaps == 1


def test_gap_becomes_final_after_the_reorder_timeout():
    ctx = ContextStore(context_s=1.0, reorder_max=8, reorder_timeout_s=1.0)
    offer(ctx, 0, now=0.0)
    offer(ctx, 3, now=0.2)
    offer(ctx, 2, now=0.5)
    assert ctx.next_hold_deadline() == pytest.approx(1.2)
    assert ctx.flush_expired(1.1) == []
    r = ctx.flush_expired(1.2)
    assert seqs(r) == [2, 3] and [a.gap_before for a in r] == [True, False]
    assert ctx.next_hold_deadline() is None


def test_first_chunk_after_restart_is_a_gap_once_its_hold_expires():
    ctx = ContextStore(reorder_timeout_s=1.0)
    assert offer(ctx, 7, now=5.0).status == "held"
    r = ctx.flush_expired(6.0)
    assert seqs(r) == [7] and r[0].gap_before
    assert seqs(offer(ctx, 8, now=6.1).released) == [8]


def test_reorder_max_zero_means_no_reordering():
    ctx = ContextStore(reorder_max=0)
    offer(ctx, 0)
    r = offer(ctx, 2)
    assert seqs(r.released) == [2] and r.released[0].gap_before


def test_end_of_call_ends_context_and_tombstone_skips_late_duplicates():
    ctx = ContextStore(context_s=1.0)
    offer(ctx, 0)
    assert offer(ctx, 2, end=True).status == "held"
    r = offer(ctx, 1)
    assert seqs(r.released) == [1, 2]
    assert ctx.contexts == {} and ("c", "MIXED") in ctx.ended
    assert offer(ctx, 1).status == "old" and offer(ctx, 2).status == "old"
    assert ctx.contexts == {}
    r = offer(ctx, 3)  # audio after the end (e.g. a resumed call): continues, with fresh context
    assert seqs(r.released) == [3] and not r.released[0].gap_before


def test_roles_are_independent_and_memory_bounded():
    ctx = ContextStore(context_s=2.0)
    for seq in range(10):
        offer(ctx, seq, key=("c", "CUSTOMER"))
        offer(ctx, seq, key=("c", "AGENT"))
    assert len(ctx.contexts) == 2
    assert 32000 * 4 <= ctx.bytes_per_call() <= 32000 * 4 + 1000
    ctx.end("c", "AGENT")
    assert list(ctx.contexts) == [("c", "CUSTOMER")]
    assert ctx.evict_idle(now=1000, idle_s=10) == 1 and not ctx.contexts and not ctx.ended


def test_held_chunks_count_in_memory_and_block_idle_eviction():
    ctx = ContextStore(context_s=0.0)
    offer(ctx, 0)
    base = ctx.total_bytes()
    offer(ctx, 2)
    assert ctx.total_bytes() == base + 16000 * 4
    assert ctx.evict_idle(now=1000, idle_s=10) == 0  # flush_expired releases it first
    assert seqs(ctx.flush_expired(1000)) == [2]
    assert ctx.evict_idle(now=2000, idle_s=10) == 1


def test_revoked_partitions_drop_contexts_tombstones_and_held_chunks():
    ctx = ContextStore()
    offer(ctx, 0, key=("a", "MIXED"), partition=1)
    offer(ctx, 2, key=("a", "MIXED"), partition=1)
    offer(ctx, 0, key=("b", "MIXED"), partition=2)
    offer(ctx, 0, key=("e", "MIXED"), partition=1, end=True)
    assert ctx.drop_partitions({1}) == ["tok2"]
    assert list(ctx.contexts) == [("b", "MIXED")] and ctx.ended == {} and ctx.held_count() == 0
    assert ctx.next_hold_deadline() is None
