"""The bundled synthetic sample calls (``infra/samples/*.wav`` + ``manifest.json``).

Regenerate with ``python -m emowatch.models.samples [out_dir]``; the output is
bit-for-bit reproducible (fixed seeds, stdlib ``wave`` writer, no metadata).

manifest.json is a list of objects::

    {"call_id": "demo-agitated-01", "file": "agitated_01.wav", "business_line": "collections",
     "role": "CUSTOMER", "expected_mood": "angry", "duration_s": 10.0, "sample_rate": 16000,
     "segments": [{"start_s": 0.0, "end_s": 10.0, "mood": "angry"}],
     "description": "...", "seed": 102, "synthetic": true, "attributes": {"agent_id": "agent-wang"}}

``expected_mood`` is the emowatch label the call should be flagged with (for
``escalating_01`` the mood it escalates to); ``segments`` is the ground-truth timeline;
``attributes`` are the call attributes the demo sends with it (the agent, 坐席, who took the
call: ClickHouse's ``agent`` column and the per-agent analyses).
Read it with :func:`emowatch.streams.resources.sample_manifest`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from emowatch.models.synth import synth_call, wav_bytes
from emowatch.streams.resources import samples_dir
from emowatch.topics.model_io import SAMPLE_RATE

__all__ = ["SampleSpec", "SAMPLES", "write_samples"]


@dataclass(frozen=True)
class SampleSpec:
    """One bundled call: consecutive (synth class, seconds) segments and its metadata."""

    call_id: str
    file: str
    business_line: str
    role: str
    expected_mood: str
    segments: tuple[tuple[str, float], ...]
    seed: int
    description: str
    agent: str


SAMPLES: tuple[SampleSpec, ...] = (
    SampleSpec("demo-calm-01", "calm_01.wav", "retail", "CUSTOMER", "neutral",
               (("neutral", 10.0),), 101, "calm customer, steady mid pitch and pace", "agent-li"),
    SampleSpec("demo-agitated-01", "agitated_01.wav", "collections", "CUSTOMER", "angry",
               (("angry", 10.0),), 102, "agitated customer: loud, high rising pitch, fast", "agent-wang"),
    SampleSpec("demo-escalating-01", "escalating_01.wav", "retail", "CUSTOMER", "angry",
               (("neutral", 7.0), ("angry", 7.0)), 103, "starts calm, escalates to agitated at 7 s", "agent-li"),
    SampleSpec("demo-sad-01", "sad_01.wav", "collections", "CUSTOMER", "sad",
               (("sad", 10.0),), 104, "sad customer: quiet, low falling pitch, slow, long pauses",
               "agent-wang"),
    SampleSpec("demo-quiet-01", "quiet_01.wav", "retail", "CUSTOMER", "unknown",
               (("unknown", 6.0),), 105, "no speech: line noise / hum / near silence", "agent-zhang"),
)


def _manifest_entry(spec: SampleSpec) -> dict:
    t = 0.0
    segs = []
    for mood, secs in spec.segments:
        segs.append({"start_s": round(t, 3), "end_s": round(t + secs, 3), "mood": mood})
        t += secs
    return {
        "call_id": spec.call_id,
        "file": spec.file,
        "business_line": spec.business_line,
        "role": spec.role,
        "expected_mood": spec.expected_mood,
        "duration_s": round(t, 3),
        "sample_rate": SAMPLE_RATE,
        "segments": segs,
        "description": spec.description,
        "seed": spec.seed,
        "synthetic": True,
        "attributes": {"agent_id": spec.agent},
    }


def write_samples(out_dir: str | Path | None = None) -> list[dict]:
    """Write every sample WAV and ``manifest.json`` into ``out_dir`` (default: the bundled
    samples folder); return the manifest."""
    out = samples_dir() if out_dir is None else Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = []
    for spec in SAMPLES:
        audio = synth_call(spec.segments, spec.seed)
        (out / spec.file).write_bytes(wav_bytes(audio))
        manifest.append(_manifest_entry(spec))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


if __name__ == "__main__":  # pragma: no cover
    for e in write_samples(sys.argv[1] if len(sys.argv) > 1 else None):
        print(f"{e['file']:20s} {e['duration_s']:5.1f} s  {e['expected_mood']}")
