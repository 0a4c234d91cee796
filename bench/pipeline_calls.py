"""The calls of ``emowatch bench pipeline``: who calls when, with which audio.

A load step of N calls keeps N *lines* busy for the step's duration: each line plays calls back to back, its
first call starting at ``LEAD_S + i / N`` s (live calls are not aligned), each call's length drawn between
``MIN_CALL_S`` and ``MAX_CALL_S`` (the last one of a line stretched or cut to the step's end), so call starts
and ends are spread over the whole step while N calls are live at any time. Every call's audio is one of the
bundled sample calls (:func:`emowatch.streams.resources.sample_manifest`), looped to the call's length;
the samples whose customer gets angry (``ESCALATING``) fire the bundled default rules. Every
``STEREO_EVERY``-th call is stereo: the sample on the left channel (the customer, with the gateway's default
``EMOWATCH_GATEWAY__STEREO_ROLES``) and the calm sample on the right (the agent), so it produces two chunk
records per second. Deterministic for a seed.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emowatch.streams.audio.chunking import read_wav
from emowatch.streams.audio.codec import encode_pcm_s16le
from emowatch.topics.model_io import SAMPLE_RATE

LEAD_S = 3.0  # the first frames leave this long after the plan's time zero (every client connected)
MIN_CALL_S, MAX_CALL_S = 6, 20
STEREO_EVERY = 3
ESCALATING = ("demo-agitated-01", "demo-escalating-01")  # the samples whose customer gets angry
AGENT_SIDE = "demo-calm-01"  # the agent's channel of a stereo call
ESCALATING_SHARE = 0.4


@dataclass(frozen=True)
class PlannedCall:
    call_id: str
    start_s: float  # offset of the first frame from the plan's time zero
    seconds: int
    sample: str  # call id of the bundled sample on the customer's side
    stereo: bool
    business_line: str
    agent_id: str

    @property
    def roles(self) -> tuple[str, ...]:
        return ("CUSTOMER", "AGENT") if self.stereo else ("CUSTOMER",)


def samples() -> dict[str, tuple[np.ndarray, dict]]:
    """Bundled sample call id -> (mono float32 signal at the model rate, manifest entry)."""
    from emowatch.streams.resources import sample_manifest

    out = {}
    for e in sample_manifest():
        x, rate = read_wav(Path(e["path"]))
        if rate != SAMPLE_RATE:
            raise ValueError(f"bundled sample {e['call_id']} is {rate} Hz, the bench sends {SAMPLE_RATE} Hz")
        out[e["call_id"]] = (x.mean(axis=1).astype(np.float32) if x.shape[1] > 1 else x[:, 0], e)
    return out


def plan(calls: int, seconds: int, step_tag: str, catalog: dict[str, tuple[np.ndarray, dict]],
         seed: int = 0) -> list[PlannedCall]:
    """The calls of one load step: ``calls`` lines busy for ``seconds`` s. Call ids are ``<step_tag>-<line>-<n>``;
    the first call of the step is an escalating one (so even a tiny step fires a rule)."""
    rng = random.Random(f"{seed}-{step_tag}")
    escalating = [s for s in ESCALATING if s in catalog]
    others = [s for s in catalog if s not in escalating] or escalating
    out: list[PlannedCall] = []
    n = 0
    for line in range(calls):
        t, k = line / calls, 0
        while seconds - (t - line / calls) >= 1:
            left = int(seconds - (t - line / calls))
            length = rng.randint(MIN_CALL_S, MAX_CALL_S)
            if left - length < MIN_CALL_S:  # the line's last call runs to the step's end
                length = left
            pick = escalating if (n == 0 or rng.random() < ESCALATING_SHARE) and escalating else others
            sample = pick[0] if n == 0 else rng.choice(pick)
            entry = catalog[sample][1]
            out.append(PlannedCall(call_id=f"{step_tag}-{line:04d}-{k}", start_s=LEAD_S + t, seconds=length,
                                   sample=sample, stereo=n % STEREO_EVERY == STEREO_EVERY - 1,
                                   business_line=entry.get("business_line", "default"),
                                   agent_id=(entry.get("attributes") or {}).get("agent_id", "agent-bench")))
            t, k, n = t + length, k + 1, n + 1
    return out


def pcm(call: PlannedCall, catalog: dict[str, tuple[np.ndarray, dict]]) -> bytes:
    """The call's audio as PCM_S16LE (interleaved left/right for a stereo call), ``seconds`` long."""
    total = call.seconds * SAMPLE_RATE

    def looped(name: str) -> np.ndarray:
        x = catalog[name][0]
        return np.resize(x, total)  # repeats the sample to the call's length

    left = looped(call.sample)
    x = np.stack([left, looped(AGENT_SIDE if AGENT_SIDE in catalog else call.sample)], axis=1) if call.stereo \
        else left[:, None]
    return encode_pcm_s16le(x.reshape(-1))  # row-major: interleaved
