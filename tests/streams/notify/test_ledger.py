"""DeliveryLedger: an alert offset is committable only once its groups flushed and their notifications finished."""
from __future__ import annotations

from emowatch.streams.notify.ledger import DeliveryLedger


def test_offsets_wait_for_flush_and_notification():
    led = DeliveryLedger()
    led.received("a", 0, 0, ["g1"])
    led.received("a", 0, 1, [])          # joined nothing: done at once, but behind offset 0
    led.received("a", 0, 2, ["g1", "g2"])
    assert led.committable() == {("a", 0): 0}
    led.flushed(["g1", "g2"], [(7, "g1")])   # g2 flushed without a notification
    assert led.committable() == {}
    led.finished(7)
    assert led.committable() == {("a", 0): 3}
    assert led.in_flight() == 0


def test_revoked_partition_is_forgotten():
    led = DeliveryLedger()
    led.received("a", 1, 5, ["g"])
    led.forget("a", 1)
    led.flushed(["g"], [(1, "g")])
    led.finished(1)
    assert led.committable() == {} and led.in_flight() == 0
