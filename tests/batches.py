"""``step`` one message after the other, and ``step_batch`` over random batches as the rules worker runs it (shared by
the batch-equality tests)."""
from __future__ import annotations

import json

import numpy as np

from emowatch.rules.batched import step_batch, stored_form
from emowatch.rules.engine import step
from emowatch.rules.errors import ScoresError


def one_by_one(crs_at, messages):
    """Every message through ``step`` (rule set ``crs_at(i)``): ``(states, results, every state seen)``."""
    states, results, seen = {}, [], []
    for i, m in enumerate(messages):
        try:
            states[m["call_id"]], ev = step(states.get(m["call_id"]), m, crs_at(i))
        except ScoresError as exc:
            results.append(str(exc))
            continue
        results.append(ev)
        seen.append(states[m["call_id"]])
    return states, results, seen


def in_batches(crs_at, messages, rng, reload_json, max_batch=300):
    """Messages in batches of random sizes below ``max_batch`` (a rule-set swap between two batches); the states
    stored as JSON and read back after every batch with ``reload_json``: ``(states, results)``."""
    states, results, i = {}, [], 0
    while i < len(messages):
        n = int(rng.integers(1, max_batch))
        if crs_at(i) is not crs_at(min(i + n, len(messages)) - 1):  # a rule-set swap falls between two batches
            n = next(k for k in range(n) if crs_at(i + k) is not crs_at(i))
        part = messages[i:i + n]
        for m, res in zip(part, step_batch(part, states.get, crs_at(i))):
            if isinstance(res, ScoresError):
                results.append(str(res))
                continue
            states[m["call_id"]], ev = res
            results.append(ev)
        if reload_json:  # as the worker stores the states, and as a restarted worker recovers them
            states = {c: json.loads(json.dumps(stored_form(s))) for c, s in states.items()}
        i += n
    return states, results


def both_ways(rules, reloaded, name, messages, seed, reload_rules, reload_json, max_batch=300):
    """The messages one by one and in random batches (rule set ``rules``; with ``reload_rules``, ``reloaded`` from
    the middle of the stream on): ``(states, results)`` of ``step`` one by one, then of ``step_batch``."""
    from emowatch.rules.compiler import compile_ruleset
    from emowatch.rules.loader import parse_ruleset

    first = compile_ruleset(parse_ruleset(rules, name))
    second = compile_ruleset(parse_ruleset(reloaded, name)) if reload_rules else first
    swap = len(messages) // 2

    def crs_at(i):
        return first if i < swap else second

    a_states, a_results, _ = one_by_one(crs_at, messages)
    b_states, b_results = in_batches(crs_at, messages, np.random.default_rng(seed), reload_json, max_batch)
    return a_states, a_results, b_states, b_results
