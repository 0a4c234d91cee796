"""Prometheus metrics of the inference agent (ARCHITECTURE.md §8.10). No Kafka, no torch.

Common stage metrics come from :class:`~emowatch.streams.observability.StageMetrics`
(``emowatch_infer_received``, ``_sent``, ``_errors{stage}``, ``_discarded{reason}``,
``_dlq``, ``_consumer_lag``); the inference-specific ones are added here.
"""
from __future__ import annotations

from emowatch.streams.observability import StageMetrics


class InferMetrics:
    """All metrics the agent updates, in one registry (served on ``/metrics``)."""

    def __init__(self) -> None:
        m = self.stage = StageMetrics("infer")
        self.registry = m.registry
        self.received = m.received
        self.sent = m.sent
        self.errors = m.errors
        self.discarded = m.discarded
        self.dlq = m.dlq
        self.lag = m.lag
        self.scored = m.counter("infer_scored", "Chunk roles scored and published")
        self.gaps = m.counter("infer_gaps", "Chunks published with gap_before=True (context reset)")
        self.batch_size = m.histogram("infer_batch_size", "Windows per model batch",
                                      (1, 2, 4, 8, 16, 32, 64, 128, 256))
        self.queue_delay = m.histogram("infer_queue_delay_seconds", "Time a window waited in the batcher",
                                       (.001, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5))
        self.model_seconds = m.histogram("infer_model_seconds", "Model time per batch",
                                         (.001, .005, .01, .05, .1, .25, .5, 1, 2, 5))
        self.latency = m.histogram("infer_latency_seconds",
                                   "Input message timestamp to score produced (broker/producer clock)",
                                   (.05, .1, .2, .3, .5, .75, 1, 1.5, 2, 5, 10))
        self.rtf = m.gauge("infer_real_time_factor", "Model seconds per second of audio scored (last batch)")
        # sustained RTF = rate(emowatch_infer_model_seconds_sum) / rate(emowatch_infer_audio_seconds_total)
        self.audio_seconds = m.counter("infer_audio_seconds", "Seconds of audio scored (own chunk samples)")
        self.active_calls = m.gauge("infer_active_calls", "Call+role contexts held in memory")
        self.bytes_per_call = m.gauge("infer_bytes_per_call", "Context bytes per active call+role")
        self.held = m.gauge("infer_reorder_held", "Chunks held in reorder buffers waiting for a missing seq")
        self.queued = m.gauge("infer_queued", "Windows waiting in the batcher")
        self.vad_seconds = m.gauge("infer_vad_seconds", "Seconds spent on voice activity + frame energy since start")
        self.vad_failures = m.gauge("infer_vad_failures", "Batches whose voice activity failed (speech left null)")
        self.paused = m.gauge("infer_paused", "1 while partitions are paused by backpressure")
        self.context_holds = m.gauge("infer_context_holds", "Scored inputs kept uncommitted as live calls' context")

    def observe_state(self, *, active_calls: int, bytes_per_call: float, held: int, queued: int, holds: int,
                      lag: int | None) -> None:
        """The gauges of the agent's state, set every housekeeping round."""
        self.active_calls.set(active_calls)
        self.bytes_per_call.set(bytes_per_call)
        self.held.set(held)
        self.queued.set(queued)
        self.context_holds.set(holds)
        if lag is not None:
            self.lag.set(lag)
