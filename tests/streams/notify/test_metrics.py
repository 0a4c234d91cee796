"""The notifier's own metrics: deliveries by final outcome, failed attempts as they fail, first-send latency."""
from __future__ import annotations

import asyncio
import random

from receiver_helpers import RENDERED, make_alert, make_notification

from emowatch.streams.notify.metrics import NotifyMetrics
from emowatch.streams.notify.model import TransientDeliveryError
from emowatch.streams.notify.receivers.base import DeliveryResult, RetryPolicy, deliver_to
from emowatch.streams.observability import StageMetrics


def value(m: NotifyMetrics, name: str, **labels) -> float:
    return m.stage.registry.get_sample_value(name, labels) or 0.0


class DownThenUp:
    name, kind, send_resolved = "ops", "webhook", True

    def __init__(self, failures: int) -> None:
        self.left = failures

    async def send(self, notification, rendered) -> None:
        if self.left:
            self.left -= 1
            raise TransientDeliveryError("webhook ops: HTTP 503")

    async def close(self) -> None:
        pass


async def _no_sleep(_s: float) -> None:
    pass


def _deliver(m: NotifyMetrics, receiver: DownThenUp, max_attempts: int) -> DeliveryResult:
    result = asyncio.run(deliver_to(receiver, make_notification(make_alert()), RENDERED,
                                    RetryPolicy(max_attempts=max_attempts), rng=random.Random(1), sleep=_no_sleep,
                                    on_failure=lambda _e: m.attempt_failed("ops", "webhook[0]")))
    m.delivered("ops", "webhook[0]", result)
    return result


def test_failed_attempts_and_give_ups_are_counted_per_receiver_and_integration():
    m = NotifyMetrics(StageMetrics("notify"))
    labels = {"receiver": "ops", "integration": "webhook[0]"}
    assert _deliver(m, DownThenUp(2), max_attempts=5).ok  # retried twice, then delivered
    assert value(m, "emowatch_notify_failed_attempts_total", **labels) == 2
    assert value(m, "emowatch_notify_deliveries_total", outcome="ok", **labels) == 1
    assert not _deliver(m, DownThenUp(9), max_attempts=3).ok  # gave up after 3 attempts
    assert value(m, "emowatch_notify_failed_attempts_total", **labels) == 5
    assert value(m, "emowatch_notify_deliveries_total", outcome="gave_up", **labels) == 1


def test_latency_is_observed_for_first_sends_only():
    m = NotifyMetrics(StageMetrics("notify"))
    a = make_alert()
    origins = {a["alert_id"]: (None, 1_000)}
    m.sent(make_notification(a), origins, now_ms=1_500)
    m.sent(make_notification(a, repeat=1), origins, now_ms=9_000)
    assert value(m, "emowatch_notify_delivery_latency_seconds_count") == 1
    assert value(m, "emowatch_notify_delivery_latency_seconds_sum") == 0.5
