"""Prometheus metrics of the rules worker (ARCHITECTURE.md §8.10). No Kafka, no Faust.

Common stage metrics come from :class:`~emowatch.streams.observability.StageMetrics`
(``emowatch_rules_received``, ``_sent``, ``_errors{stage}``, ``_discarded{reason}``, ``_dlq``);
the rules-specific ones are added here.
"""
from __future__ import annotations

from emowatch.streams.observability import StageMetrics


class RulesMetrics:
    def __init__(self) -> None:
        m = self.stage = StageMetrics("rules")
        self.registry = m.registry
        self.alerts = m.counter("rules_alerts", "Alert events published")
        self.swaps = m.counter("rules_reloads", "Rule-set swaps (hot reloads) after start")
        self.rejected = m.counter("rules_rejected", "Rule sets from the rules topic rejected (kept the good one)")
        self.state_bytes = m.histogram("rules_state_bytes", "Stored state of an active call, bytes (sampled writes)",
                                       (256, 512, 1024, 2048, 4096, 8192, 16384, 65536))
        self.active_calls = m.gauge("rules_active_calls", "Calls in this worker's table that have not ended")
        self.table_calls = m.gauge("rules_table_calls", "Calls in this worker's table (ended ones included)")
        self.step = m.histogram("rules_step_seconds",
                                "Rule evaluation time per message (a batch's time over its messages)",
                                (5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 0.02, 0.1))
        self.evaluation = m.counter("rules_evaluation_seconds", "Rule evaluation time, all batches (wall)")
        self.batch = m.histogram("rules_batch_messages", "Messages per evaluated batch",
                                 (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000))
        self.expired = m.counter("rules_calls_expired", "Ended calls deleted from the table after the retention")
        self.stalls = m.counter("rules_commit_stalls", "Stuck partition commits released by seeking back (faust#681)")
