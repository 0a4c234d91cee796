"""Publish calls (WAV files) to the audio topic as AudioChunks keyed by call_id."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from emowatch.streams.audio.chunking import chunk_records, read_wav
from emowatch.streams.kafka.clients import make_producer, serde_for, topics_for
from emowatch.streams.settings import KafkaSettings
from emowatch.topics.serde import encode_key


@dataclass
class CallSpec:
    call_id: str
    path: Path
    business_line: str = "default"
    role: str = "MIXED"
    attributes: dict | None = None


def call_records(spec: CallSpec, *, start_time_ms: int, chunk_ms: int = 1000) -> list[dict]:
    samples, rate = read_wav(spec.path)
    return list(chunk_records(samples, rate, call_id=spec.call_id, role=spec.role, business_line=spec.business_line,
                              start_time_ms=start_time_ms, chunk_ms=chunk_ms, attributes=spec.attributes))


class AudioPublisher:
    def __init__(self, kafka: KafkaSettings) -> None:
        self.topic = topics_for(kafka).audio
        self.serde = serde_for(kafka, "AudioChunk")
        self.producer = make_producer(kafka)
        self.errors: list[str] = []

    def send(self, record: dict) -> None:
        def cb(err, _msg):
            if err is not None:
                self.errors.append(str(err))

        self.producer.produce(self.topic, key=encode_key(record["call_id"]),
                              value=self.serde.encode(record, topic=self.topic), on_delivery=cb)
        self.producer.poll(0)

    def send_raw(self, key: bytes, value: bytes) -> None:
        self.producer.produce(self.topic, key=key, value=value)

    def publish_calls(self, calls: list[CallSpec], *, chunk_ms: int = 1000, realtime: float = 0.0,
                      on_chunk=None) -> int:
        """Interleave the calls chunk by chunk (as live calls would arrive). ``realtime`` > 0
        paces the stream at that speed factor (1.0 = real time). Returns chunks sent."""
        now = int(time.time() * 1000)
        per_call = [call_records(c, start_time_ms=now, chunk_ms=chunk_ms) for c in calls]
        sent, t0 = 0, time.monotonic()
        for i in range(max((len(r) for r in per_call), default=0)):
            if realtime > 0:
                wait = t0 + i * chunk_ms / 1000.0 / realtime - time.monotonic()
                if wait > 0:
                    time.sleep(wait)  # pacing a simulated live source, not synchronisation
            for recs in per_call:
                if i < len(recs):
                    self.send(recs[i])
                    sent += 1
                    if on_chunk:
                        on_chunk(recs[i])
        self.flush()
        return sent

    def flush(self, timeout: float = 30.0) -> None:
        left = self.producer.flush(timeout)
        if left or self.errors:
            raise RuntimeError(f"audio publish failed: {left} undelivered, errors: {self.errors[:3]}")
