"""Rule examples as tests: synthetic calls described in the rule file, and their expected events.

An example's ``scores`` is a timeline of steps ``{for: 2s, probs: {angry: 0.9}}`` (every
frame in the step has these probabilities; the remaining mass is spread evenly over the
other classes), ``{for: 3s, silent: true}`` (audio without speech) or ``{for: 1s, gap: true}``
(missing audio); ``tracks`` gives one such timeline per role (a stereo call). The timeline is cut into
FrameScores messages of ``chunk`` ms (logits = log(probs)), fed to :func:`step`, and the
events of the example's rule (plus rules named in ``expect``) must equal ``expect``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from emowatch.rules.durations import format_duration_ms
from emowatch.rules.engine import step
from emowatch.rules.errors import RuleFileError
from emowatch.rules.model import EMOTIONS, Example, Rule, RuleSet
from emowatch.topics.model_io import FRAME_MS

_FLOOR = 1e-6


def probs_to_logits(probs: dict[str, float]) -> np.ndarray:
    """Log-probabilities of all 9 classes; unlisted classes share the remaining mass."""
    missing = [e for e in EMOTIONS if e not in probs]
    rest = max(1.0 - sum(probs.values()), 0.0)
    share = rest / len(missing) if missing else 0.0
    full = np.array([probs.get(e, share) for e in EMOTIONS], dtype=np.float64)
    return np.log(np.maximum(full, _FLOOR))


def example_messages(example: Example, ruleset: RuleSet, call_id: str = "example-call") -> list[dict[str, Any]]:
    """The FrameScores dicts of an example call (1 chunk per message, ``chunk`` ms each; with ``tracks``, each
    role's messages, in call-time order). Messages carry ``speech`` (1 or 0 per frame: ``silent`` steps are 0)
    when the example has ``tracks`` or a ``silent`` step, else none (every frame counts as speech)."""
    timelines = example.timelines()
    with_speech = example.tracks is not None or any(s.silent for steps in timelines.values() for s in steps)
    out: list[tuple[int, int, dict[str, Any]]] = []
    for r, (role, steps) in enumerate(timelines.items()):
        for m in _track(example, ruleset, call_id, role, steps, with_speech):
            out.append((m["start_ms"], r, m))
    out.sort(key=lambda item: item[:2])
    return [m for _, _, m in out]


def _track(example: Example, ruleset: RuleSet, call_id: str, role: str, steps: list[Any],
           with_speech: bool) -> list[dict[str, Any]]:
    runs: list[tuple[int, np.ndarray, np.ndarray]] = []  # (offset of the run, frames x 9 logits, speech) per run
    offset, current, voice, current_start = 0, [], [], 0
    for item in steps:
        n = item.for_ // FRAME_MS
        if item.gap:
            if current:
                runs.append((current_start, np.vstack(current), np.concatenate(voice)))
            current, voice = [], []
            offset += item.for_
            current_start = offset
            continue
        current.append(np.tile(probs_to_logits(item.probs), (n, 1)))
        voice.append(np.full(n, 0.0 if item.silent else 1.0))
        offset += item.for_
    if current:
        runs.append((current_start, np.vstack(current), np.concatenate(voice)))
    business_line = example.business_line or (ruleset.business_line if ruleset.business_line != "*" else "default")
    per_chunk = example.chunk // FRAME_MS
    messages: list[dict[str, Any]] = []
    seq = 0
    for r, (run_start, frames, speech) in enumerate(runs):
        if r:
            seq += 1  # the missing chunk(s) used a sequence number
        for k in range(0, len(frames), per_chunk):
            block = frames[k:k + per_chunk]
            start_ms = run_start + k * FRAME_MS
            messages.append({
                "call_id": call_id, "role": role.upper(), "seq": seq, "start_ms": start_ms,
                "frame_ms": FRAME_MS, "n_frames": len(block), "labels": list(EMOTIONS),
                "logits": block.astype(np.float32).ravel().tolist(),
                "chunk_probs": _softmax(block.mean(axis=0)).tolist(),
                "model": {"name": "example", "version": "0"}, "business_line": business_line,
                "event_time": example.event_time + start_ms, "gap_before": r > 0 and k == 0,
                "end_of_call": False, "attributes": dict(example.attributes), "embedding": None,
                "speech": speech[k:k + per_chunk].tolist() if with_speech else None})
            seq += 1
    if messages and example.end_of_call:
        messages[-1]["end_of_call"] = True
    return messages


def run_example(ruleset: RuleSet, rule: Rule, example: Example) -> tuple[list[dict[str, Any]], str | None]:
    """Run one example; return all its events and a mismatch description (``None`` if it passes)."""
    state: dict[str, Any] | None = None
    events: list[dict[str, Any]] = []
    for message in example_messages(example, ruleset):
        state, out = step(state, message, ruleset)
        events.extend(out)
    watched = {rule.id} | {e.rule for e in example.expect if e.rule}
    got = sorted((e["fired_ms"], e["rule_id"], e["status"]) for e in events if e["rule_id"] in watched)
    want = sorted((e.at, e.rule or rule.id, e.status) for e in example.expect)
    if got == want:
        return events, None
    return events, f"expected {_fmt(want, rule.id)}, got {_fmt(got, rule.id)}"


def run_examples(ruleset: RuleSet) -> list[RuleFileError]:
    """Run every example of every enabled rule; one error (at the example's line) per failure."""
    errors = []
    for i, rule in enumerate(ruleset.rules):
        if not rule.enabled:
            continue
        for j, example in enumerate(rule.examples):
            _, problem = run_example(ruleset, rule, example)
            if problem is not None:
                errors.append(RuleFileError(ruleset.source_name, ruleset.line_of("rules", i, "examples", j), 0,
                                            f"example {example.name!r} of rule {rule.id!r}: {problem}"))
    return errors


def _fmt(items: list[tuple[int, str, str]], own: str) -> str:
    parts = [f"{status}@{format_duration_ms(at)}" + ("" if rid == own else f"({rid})") for at, rid, status in items]
    return "[" + ", ".join(parts) + "]"


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()
