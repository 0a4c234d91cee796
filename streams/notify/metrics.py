"""Prometheus metrics of the notifier (ARCHITECTURE.md §8.10). No Kafka.

Common stage metrics come from :class:`~emowatch.streams.observability.StageMetrics` (``emowatch_notify_received``,
``_sent``, ``_dlq``, ``_consumer_lag``); the notifier's own are added here. Per integration of a receiver:
``emowatch_notify_deliveries_total{receiver, integration, outcome}`` counts each delivery once, by its final
outcome (``ok``, ``skipped``, ``permanent``, ``gave_up``: the last two are dead letters), and
``emowatch_notify_failed_attempts_total{receiver, integration}`` every attempt that failed, as it fails
(a delivery retried twice before it got through adds 2; one that gave up after 5 attempts adds 5).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from emowatch.streams.notify.model import Notification
from emowatch.streams.notify.receivers.base import DeliveryResult
from emowatch.streams.observability import StageMetrics

__all__ = ["NotifyMetrics"]


class NotifyMetrics:
    def __init__(self, m: StageMetrics) -> None:
        self.stage = m
        self.suppressed = m.counter("notify_suppressed", "Alerts held back", ("reason",))
        self.deliveries = m.counter("notify_deliveries", "Deliveries per integration",
                                    ("receiver", "integration", "outcome"))
        self.failed_attempts = m.counter("notify_failed_attempts",
                                         "Delivery attempts that failed (retried or not) per integration",
                                         ("receiver", "integration"))
        self.latency = m.histogram("notify_delivery_latency_seconds",
                                   "Alert event on the topic -> receiver acknowledged (first sends)",
                                   (.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60))
        self.replays = m.counter("notify_replays_skipped", "Replay alerts skipped (replays never notify)")

    def attempt_failed(self, receiver: str, integration: str) -> None:
        self.failed_attempts.labels(receiver, integration).inc()

    def delivered(self, receiver: str, integration: str, result: DeliveryResult) -> None:
        outcome = ("skipped" if result.skipped else "ok" if result.ok else
                   "permanent" if result.permanent else "gave_up")
        self.deliveries.labels(receiver, integration, outcome).inc()

    def sent(self, n: Notification, origins: Mapping[str, tuple[Any, int]], now_ms: int) -> None:
        """``n`` was delivered: its latency from the newest of its alerts' topic times (``origins``: alert id ->
        (source, topic time ms)), first sends only."""
        if n.repeat:
            return
        times = [origins[a["alert_id"]][1] for a in n.alerts if a["alert_id"] in origins]
        if times and max(times) > 0:
            self.latency.observe(max(0.0, (now_ms - max(times)) / 1000))
