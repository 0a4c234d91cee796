import numpy as np

from emowatch.streams.context import ContextStore


def chunk(v, n=16000):
    return np.full(n, v, np.float32)


def test_left_context_is_rolling_and_only_chunk_is_emitted():
    ctx = ContextStore(context_s=2.0)
    a0 = ctx.admit("c", "MIXED", 0, chunk(0), 0)
    assert a0.window.size == 16000 and a0.emit_samples == 16000 and not a0.gap_before
    ctx.admit("c", "MIXED", 1, chunk(1), 0)
    a2 = ctx.admit("c", "MIXED", 2, chunk(2), 0)
    a3 = ctx.admit("c", "MIXED", 3, chunk(3), 0)
    assert a2.window.size == 48000
    assert a3.window.size == 48000
    assert np.array_equal(a3.window[:16000], chunk(1)) and np.array_equal(a3.window[-16000:], chunk(3))


def test_duplicates_skipped_and_gaps_reset_context():
    ctx = ContextStore(context_s=1.0)
    ctx.admit("c", "AGENT", 0, chunk(0), 0)
    assert ctx.admit("c", "AGENT", 0, chunk(0), 0) is None
    assert ctx.skipped == 1
    gap = ctx.admit("c", "AGENT", 5, chunk(5), 0)
    assert gap.gap_before and gap.window.size == 16000
    assert ctx.admit("c", "AGENT", 3, chunk(3), 0) is None
    first_late = ContextStore().admit("late", "AGENT", 7, chunk(7), 0)
    assert first_late.gap_before


def test_roles_are_independent_and_memory_bounded():
    ctx = ContextStore(context_s=2.0)
    for seq in range(10):
        ctx.admit("c", "CUSTOMER", seq, chunk(seq), 0)
        ctx.admit("c", "AGENT", seq, chunk(seq), 0)
    assert len(ctx.contexts) == 2
    assert ctx.bytes_per_call() <= 32000 * 4 + 64
    ctx.end("c", "AGENT")
    assert list(ctx.contexts) == [("c", "CUSTOMER")]
    assert ctx.evict_idle(now=1000, idle_s=10) == 1 and not ctx.contexts
