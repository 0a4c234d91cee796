"""Malformed messages for the bad-input campaign (issue #17), built WITHOUT emowatch's serde.

Avro bodies are written with fastavro straight from the ``.avsc`` files, framed by hand with the
single-object header (``C3 01`` + the 8-byte CRC-64-AVRO fingerprint fastavro computes) or the
Confluent header (``00`` + 4-byte schema id); everything else is hand-built bytes. One seed gives
one campaign: :func:`campaign` is deterministic.

Each :class:`Bad` names its topic (logical), its category and what the product must do with it
(``expect``): ``dlq`` (a dead letter from every service that consumes the topic; ``dlq_by_sink``: from the
sink only), ``scored``
(accepted by design: the agent scores it like any chunk), ``no_effect`` (accepted by design: a
well-formed control record that changes nothing, e.g. an ack of an alert that does not exist), or
``dlq_or_scored`` (a bit-flipped body that may still be a well-formed record).
"""
from __future__ import annotations

import functools
import io
import json
import random
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

SCHEMAS = Path(__file__).resolve().parents[2] / "topics" / "schemas"
LATEST = {"AudioChunk": 2, "FrameScores": 3, "Alert": 2, "RuleSet": 2, "Silence": 1, "Ack": 1}
RATE = 16000
NOW_MS = 1_767_225_600_000  # fixed: a campaign is the same bytes every run


def _strip_logical(node):
    if isinstance(node, dict):
        return {k: _strip_logical(v) for k, v in node.items() if k != "logicalType"}
    if isinstance(node, list):
        return [_strip_logical(v) for v in node]
    return node


class Schema:
    """One ``.avsc`` file: fastavro's parsed schema and its single-object header."""

    def __init__(self, name: str, version: int | None = None, *, mutate=None) -> None:
        raw = json.loads((SCHEMAS / f"{name}.v{version or LATEST[name]}.avsc").read_text())
        real = parse_schema(raw)
        self.header = b"\xc3\x01" + bytes.fromhex(fingerprint(to_parsing_canonical_form(real), "CRC-64-AVRO"))
        self.parsed = parse_schema(_strip_logical(mutate(raw) if mutate else raw))

    def body(self, record: dict) -> bytes:
        out = io.BytesIO()
        schemaless_writer(out, self.parsed, record)
        return out.getvalue()

    def framed(self, record: dict) -> bytes:
        return self.header + self.body(record)

    def read(self, value: bytes) -> dict | None:
        """The record in a single-object framed ``value`` (None unless it is exactly one record)."""
        if value[:10] != self.header:
            return None
        buf = io.BytesIO(value[10:])
        try:
            rec = schemaless_reader(buf, self.parsed, None)
        except Exception:  # noqa: BLE001 - anything fastavro cannot read is simply not a record
            return None
        return rec if buf.tell() == len(value) - 10 else None


def _extra_encoding(raw: dict) -> dict:
    """AudioChunk with two more Encoding symbols: a writer of a format this build does not know."""
    raw = json.loads(json.dumps(raw))
    for f in raw["fields"]:
        if f["name"] == "encoding":
            f["type"]["symbols"] += ["MULAW", "OPUS"]
    return raw


AUDIO, SCORES, ALERT = Schema("AudioChunk"), Schema("FrameScores"), Schema("Alert")
RULESET, SILENCE, ACK = Schema("RuleSet"), Schema("Silence"), Schema("Ack")
AUDIO_NEW_ENCODING = Schema("AudioChunk", mutate=_extra_encoding)
EMOTIONS = ("angry", "disgusted", "fearful", "happy", "neutral", "other", "sad", "surprised", "unknown")


@functools.lru_cache(maxsize=16)
def pcm(seconds: float, rate: int = RATE) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    x = 0.2 * np.sin(2 * np.pi * 180 * t) + 0.01 * np.random.default_rng(0).standard_normal(t.size)
    return (x * 32767).astype("<i2").tobytes()


def audio_record(call_id: str, seq: int = 0, **over) -> dict:
    rec = {"call_id": call_id, "role": "CUSTOMER", "seq": seq, "start_ms": 1000 * seq if 0 <= seq < 2**40 else 0,
           "event_time": NOW_MS,
           "sample_rate": RATE, "encoding": "PCM_S16LE", "channels": 1, "audio": pcm(0.2),
           "business_line": "collections", "end_of_call": False, "attributes": {"source": "badinput"},
           "trace_id": None}
    rec.update(over)
    return rec


def scores_record(call_id: str, seq: int = 0, n_frames: int = 5, **over) -> dict:
    rec = {"call_id": call_id, "role": "CUSTOMER", "seq": seq, "start_ms": 1000 * seq, "frame_ms": 20,
           "n_frames": n_frames, "labels": list(EMOTIONS), "logits": [0.1] * (9 * n_frames),
           "chunk_probs": [1 / 9] * 9, "model": {"name": "badinput", "version": "0"}, "business_line": "collections",
           "event_time": NOW_MS, "gap_before": False, "end_of_call": False, "attributes": {}, "embedding": None,
           "trace_id": None, "speech": None, "energy_db": None, "vad": None}
    rec.update(over)
    return rec


def ruleset_record(yaml_text: str, **over) -> dict:
    rec = {"rule_set": "default", "version": "forged", "business_line": "*", "source_yaml": yaml_text,
           "source_name": "badinput.yaml", "published_at": NOW_MS, "trace_id": None}
    rec.update(over)
    return rec


def silence_record(matchers: list[str], **over) -> dict:
    rec = {"id": "bad-silence", "matchers": matchers, "starts_at": NOW_MS - 3_600_000, "ends_at": NOW_MS + 3_600_000,
           "created_by": "badinput", "comment": "", "created_at": NOW_MS, "expired_at": None, "expired_by": None,
           "trace_id": None}
    rec.update(over)
    return rec


def ack_record(alert_id: str, **over) -> dict:
    rec = {"alert_id": alert_id, "by": "badinput", "comment": "", "at": NOW_MS, "call_id": None, "trace_id": None}
    rec.update(over)
    return rec


@dataclass
class Bad:
    idx: int
    topic: str  # logical topic: audio, scores, rules, silences, acks
    category: str
    key: bytes | None
    value: bytes | None
    expect: str  # dlq | dlq_by_sink | scored | no_effect | dlq_or_scored
    call_id: str | None = None  # where an accepted audio message's scores are found
    seq: int | None = None
    partition: int = -1  # where it landed (delivery report)
    offset: int = -1


# --- the categories: (topic, category, expect, build(rng, name) -> (key, value, call_id, seq)) -----------------

def _random_bytes(rng: random.Random, n_max: int = 400) -> bytes:
    data = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, n_max)))
    return b"\x7f" + data if data[:1] in (b"\x00", b"\xc3") else data  # a real random message, not a framing


def _truncate(rng: random.Random, value: bytes) -> bytes:
    return value[:rng.randint(1, len(value) - 1)]


def _flip(rng: random.Random, value: bytes, lo: int, hi: int) -> bytes:
    b = bytearray(value)
    i = rng.randrange(lo, min(hi, len(b)))
    b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def _floats(rng: random.Random, n: int, bad: float) -> bytes:
    x = np.full(n, 0.1, "<f4")
    x[rng.randrange(n)] = bad
    return x.tobytes()


def _audio(name: str, **over) -> tuple[bytes, bytes, str, int]:
    rec = audio_record(name, **over)
    return rec["call_id"].encode() or b"x", AUDIO.framed(rec), rec["call_id"], rec["seq"]


def _on_key(key: bytes, value: bytes) -> tuple[bytes, bytes, None, None]:
    return key, value, None, None


AUDIO_CASES = [
    ("random_bytes", "dlq", lambda r, n, k: _on_key(k, _random_bytes(r))),
    ("empty_value", "dlq", lambda r, n, k: _on_key(k, b"")),
    ("tombstone", "dlq", lambda r, n, k: (k, None, None, None)),
    ("truncated_avro", "dlq", lambda r, n, k: _on_key(k, _truncate(r, AUDIO.framed(audio_record(n))))),
    ("bitflip_header", "dlq", lambda r, n, k: _on_key(k, _flip(r, AUDIO.framed(audio_record(n)), 0, 10))),
    ("bitflip_body", "dlq_or_scored", lambda r, n, k: _on_key(k, _flip(r, AUDIO.framed(audio_record(n)), 10, 40))),
    ("wrong_schema", "dlq", lambda r, n, k: _on_key(k, r.choice([SCORES.framed(scores_record(n)),
                                                                 ALERT.framed(_alert(n)),
                                                                 SILENCE.framed(silence_record(["a=b"]))]))),
    ("unknown_fingerprint", "dlq", lambda r, n, k: _on_key(
        k, b"\xc3\x01" + r.getrandbits(64).to_bytes(8, "little") + AUDIO.body(audio_record(n)))),
    ("unknown_registry_id", "dlq", lambda r, n, k: _on_key(
        k, b"\x00" + r.getrandbits(32).to_bytes(4, "big") + AUDIO.body(audio_record(n)))),
    ("wrong_sample_rate", "dlq", lambda r, n, k: _audio(n, sample_rate=r.choice([0, -16000, 12345, 7, 2**31 - 1]))),
    ("unknown_encoding", "dlq", lambda r, n, k: _on_key(
        k, AUDIO_NEW_ENCODING.framed(audio_record(n, encoding=r.choice(["MULAW", "OPUS"]))))),
    ("bad_channels", "dlq", lambda r, n, k: _audio(n, channels=r.choice([0, -1, 3, 64]), audio=pcm(0.24))),
    ("nan_inf_audio", "dlq", lambda r, n, k: _audio(n, encoding="PCM_F32LE", audio=_floats(
        r, 1600, r.choice([float("nan"), float("inf"), float("-inf")])))),
    ("odd_byte_count", "dlq", lambda r, n, k: _audio(n, audio=pcm(0.1)[:-1])),
    ("empty_audio", "dlq", lambda r, n, k: _audio(n, audio=b"")),
    ("oversize_chunk", "dlq", lambda r, n, k: _audio(n, sample_rate=8000, audio=pcm(2.5, rate=8000))),
    ("negative_seq", "dlq", lambda r, n, k: _audio(n, seq=-r.randint(1, 2**63 - 1))),
    ("huge_seq", "scored", lambda r, n, k: _audio(n, seq=2**63 - 1 - r.randrange(1000), start_ms=2**62)),
    ("empty_call_id", "dlq", lambda r, n, k: (r.choice([b"", b"e", None]), AUDIO.framed(audio_record("")), None,
                                              None)),
    ("call_id_10kB", "dlq", lambda r, n, k: _audio(n + "-" + "x" * 10_240)),
    ("unknown_business_line", "scored", lambda r, n, k: _audio(n, business_line=f"no-such-line-{r.randrange(99)}")),
]


def _alert(call_id: str) -> dict:
    return {"alert_id": call_id, "status": "FIRING", "rule_id": "r", "rule_version": "v", "rule_set": "s",
            "priority": "HIGH", "action": "ALERT", "business_line": "b", "call_id": call_id, "role": "CUSTOMER",
            "emotions": ["angry"], "value": 1.0, "threshold": 0.5, "started_ms": 0, "fired_ms": 0, "event_time": NOW_MS,
            "channels": [], "labels": {}, "replay_id": None, "trace_id": None}


SCORES_CASES = [
    ("random_bytes", "dlq", lambda r, n, k: _on_key(k, _random_bytes(r))),
    ("truncated_avro", "dlq", lambda r, n, k: _on_key(k, _truncate(r, SCORES.framed(scores_record(n))))),
    ("bitflip_header", "dlq", lambda r, n, k: _on_key(k, _flip(r, SCORES.framed(scores_record(n)), 0, 10))),
    ("wrong_schema", "dlq", lambda r, n, k: _on_key(k, AUDIO.framed(audio_record(n)))),
    ("unknown_fingerprint", "dlq", lambda r, n, k: _on_key(
        k, b"\xc3\x01" + r.getrandbits(64).to_bytes(8, "little") + SCORES.body(scores_record(n)))),
    ("unknown_registry_id", "dlq", lambda r, n, k: _on_key(
        k, b"\x00" + r.getrandbits(32).to_bytes(4, "big") + SCORES.body(scores_record(n)))),
    ("misfit_frame_arrays", "dlq", lambda r, n, k: _scores(n, **r.choice([{"logits": [0.1] * 9}, {"speech": [0.5]},
                                                                        {"labels": ["angry"]}]))),
    # the rules read logits, not chunk_probs: only the sink, which stores them, refuses them
    ("misfit_chunk_probs", "dlq_by_sink", lambda r, n, k: _scores(n, chunk_probs=[0.5] * r.choice([0, 1, 8, 10]))),
    ("nan_inf_scores", "dlq", lambda r, n, k: _scores(n, logits=[r.choice([float("nan"), float("inf")])] * 45)),
]


def _scores(name: str, **over) -> tuple[bytes, bytes, None, None]:
    return name.encode(), SCORES.framed(scores_record(name, **over)), None, None

RULES_YAML_BAD = [
    "rule_set: default\nbusiness_line: '*'\nrules:\n  - id: x\n    when: {emotion: hapy, above: 0.5}\n",
    "rule_set: default\nbusiness_line: '*'\nrules: []\n",
    "rule_set: default\nbusiness_line: '*'\nrules:\n  - id: x\n    when: {emotion: angry, above: 7}\n",
    "rules: [unclosed\n",
    "\x00\x01 not yaml at all",
    "",
    "rule_set: default\n" + "#" * 200_000 + "\n",
    "rule_set: other\nbusiness_line: '*'\nrules:\n  - id: x\n    when: {emotion: angry, above: 0.5}\n    for: -1s\n",
]

RULES_CASES = [
    ("random_bytes", "dlq", lambda r, n, k: _on_key(b"default", _random_bytes(r))),
    ("truncated_avro", "dlq", lambda r, n, k: _on_key(b"default", _truncate(
        r, RULESET.framed(ruleset_record(RULES_YAML_BAD[0]))))),
    ("wrong_schema", "dlq", lambda r, n, k: _on_key(b"default", AUDIO.framed(audio_record(n)))),
    ("unknown_fingerprint", "dlq", lambda r, n, k: _on_key(
        b"default", b"\xc3\x01" + r.getrandbits(64).to_bytes(8, "little") + RULESET.body(ruleset_record("x")))),
    ("invalid_rule_set", "dlq", lambda r, n, k: _on_key(r.choice([b"default", b"other"]), RULESET.framed(
        ruleset_record(r.choice(RULES_YAML_BAD), version=f"forged-{n}")))),
]

BAD_MATCHERS = [["call_id=~\"(\""], ["=nothing"], ["a~~b"], ["business_line=\"unterminated"], [], ["a!!=b"]]

CONTROL_CASES = [
    ("silences", "random_bytes", "dlq", lambda r, n, k: _on_key(k, _random_bytes(r))),
    ("silences", "truncated_avro", "dlq", lambda r, n, k: _on_key(
        k, _truncate(r, SILENCE.framed(silence_record(["call_id=nobody"], id=n))))),
    ("silences", "wrong_schema", "dlq", lambda r, n, k: _on_key(k, ACK.framed(ack_record(n)))),
    ("silences", "bad_matchers", "dlq", lambda r, n, k: _on_key(
        k, SILENCE.framed(silence_record(r.choice(BAD_MATCHERS), id=n)))),
    ("acks", "random_bytes", "dlq", lambda r, n, k: _on_key(k, _random_bytes(r))),
    ("acks", "truncated_avro", "dlq", lambda r, n, k: _on_key(k, _truncate(r, ACK.framed(ack_record(n))))),
    ("acks", "wrong_schema", "dlq", lambda r, n, k: _on_key(k, SILENCE.framed(silence_record(["a=b"], id=n)))),
    ("acks", "unknown_alert", "no_effect", lambda r, n, k: _on_key(k, ACK.framed(ack_record(n)))),
]

# share of the campaign per topic
WEIGHTS = {"audio": 0.55, "scores": 0.25, "rules": 0.06, "control": 0.14}


def campaign(n: int, seed: int, valid_keys: list[bytes]) -> list[Bad]:
    """``n`` malformed messages, in a shuffled order, deterministic for ``seed``. Messages that cannot be read
    are keyed half the time by one of ``valid_keys`` (the valid calls': same partitions, in between)."""
    rng = random.Random(seed)
    plan = [("audio", c) for c in AUDIO_CASES] * round(WEIGHTS["audio"] * 1000 / len(AUDIO_CASES))
    plan += [("scores", c) for c in SCORES_CASES] * round(WEIGHTS["scores"] * 1000 / len(SCORES_CASES))
    plan += [("rules", c) for c in RULES_CASES] * round(WEIGHTS["rules"] * 1000 / len(RULES_CASES))
    plan += [(c[0], c[1:]) for c in CONTROL_CASES] * round(WEIGHTS["control"] * 1000 / len(CONTROL_CASES))
    every = list(dict.fromkeys((topic, case[0]) for topic, case in plan))  # each category at least once
    first = [next(p for p in plan if (p[0], p[1][0]) == tc) for tc in every]
    out: list[Bad] = []
    for i in range(n):
        topic, (category, expect, build) = first[i] if i < len(first) else rng.choice(plan)
        name = f"bad-{seed}-{i:06d}"
        key = rng.choice(valid_keys) if valid_keys and rng.random() < 0.5 else name.encode()
        k, v, call_id, seq = build(rng, name, key)
        out.append(Bad(i, topic, category, k, v, expect, call_id, seq))
    rng.shuffle(out)
    return out


def readable_audio(value: bytes | None) -> dict | None:
    """What a bit-flipped AudioChunk still says, read by this module's own fastavro reader."""
    return AUDIO.read(value) if value else None


def wav_header(rate: int = RATE, channels: int = 1, bits: int = 16, tag: int = 1, data_size: int = 0,
               align: int | None = None, fmt_size: int = 16) -> bytes:
    block = align if align is not None else channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * max(block, 1), block, bits)[:fmt_size]
    fmt += b"\0" * (fmt_size - len(fmt))
    body = b"WAVE" + b"fmt " + struct.pack("<I", fmt_size) + fmt + b"data" + struct.pack("<I", data_size)
    return b"RIFF" + struct.pack("<I", len(body) + data_size) + body
