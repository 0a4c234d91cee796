"""A small labelled set for `emowatch rules evaluate`: synthetic calls (``models/synth.py``), a rule file, a CSV.

The bundled demo model scores the synthetic styles with ~0.9 confidence, so the rules below fire where the
styles say (``speech_only: false``: the synthetic voice's pauses do not interrupt them). The labels are chosen so
that every outcome occurs: ``escalating`` and ``stereo`` are true positives of ``angry``, ``sad`` is a false
positive of ``sad`` (labelled "no alert"), ``angry`` a false negative of ``sad`` (labelled with it) and
``customer-angry`` is expected on the stereo call (its CUSTOMER channel is the angry one); ``fear`` is in the file
but never expected nor fired.
"""
from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from emowatch.models.synth import synth_call, to_int16, write_wav
from emowatch.rules.engine import step

RULES = """\
rule_set: eval-test
business_line: "*"
defaults:
  role: any
  speech_only: false
rules:
  - id: angry
    when: {emotion: angry, above: 0.6}
    for: 2s
  - id: sad
    when: {emotion: sad, above: 0.6}
    for: 2s
  - id: customer-angry
    when: {emotion: angry, above: 0.6}
    for: 2s
    role: customer
  - id: fear
    when: {emotion: fearful, above: 0.9}
    for: 2s
"""
MONO = {  # file -> (segments, seed)
    "calm.wav": ([("neutral", 5)], 11),
    "escalating.wav": ([("neutral", 3), ("angry", 5)], 12),
    "sad.wav": ([("sad", 5)], 13),
    "angry.wav": ([("angry", 5)], 14),
}
CSV = """\
audio,expected,business_line
calm.wav,none,
escalating.wav,angry,
sad.wav,,
angry.wav,angry; sad,retail
stereo.wav,angry;customer-angry,
"""


def write_stereo(path: Path) -> Path:
    """Left channel (CUSTOMER) angry, right channel (AGENT) neutral, 5 s."""
    x = np.stack([synth_call([("angry", 5)], 15), synth_call([("neutral", 5)], 16)], axis=1)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(to_int16(x).tobytes())
    return path


def write_case(folder: Path) -> tuple[Path, Path]:
    """The recordings, ``rules.yaml`` and ``calls.csv`` under ``folder``; (calls.csv, rules.yaml)."""
    for name, (segments, seed) in MONO.items():
        write_wav(folder / name, synth_call(segments, seed))
    write_stereo(folder / "stereo.wav")
    (folder / "rules.yaml").write_text(RULES, encoding="utf-8")
    (folder / "calls.csv").write_text(CSV, encoding="utf-8")
    return folder / "calls.csv", folder / "rules.yaml"


def fired_one_by_one(records: list[dict], ruleset) -> set[str]:
    """The rules with a FIRING event when ``records`` go through ``rules.engine.step`` one at a time (the oracle)."""
    state, fired = None, set()
    for rec in records:
        state, events = step(state, rec, ruleset)
        fired |= {ev["rule_id"] for ev in events if ev["status"] == "FIRING"}
    return fired


def counts_of(expected: dict[str, set[str]], fired: dict[str, set[str]], rule: str) -> dict[str, int]:
    """tp/fp/fn/tn of ``rule`` over the calls (keys of ``expected``)."""
    out = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
    for call, exp in expected.items():
        e, f = rule in exp, rule in fired[call]
        out["tp" if e and f else "fp" if f else "fn" if e else "tn"] += 1
    return out
