"""Which alert offsets may be committed: the notifier's delivery guarantee, as pure bookkeeping.

An alert record read at ``(topic, partition, offset)`` joins groups (``Dispatcher.add`` returns
their keys). It is finished once each of those groups has flushed after it, and every notification
such a flush produced has been finished by the service (delivered to all integrations and logged,
or dead-lettered). A record that joined no group (duplicate, replay, black hole, undecodable) is
finished at once. Offsets are committed only up to the contiguous finished prefix of each partition
(:class:`~emowatch.streams.infer.offsets.OffsetTracker`), so a crash re-reads every alert whose
notifications might not have gone out; the notification log then keeps what did go out from being
sent again (``Dispatcher.seed``).
"""
from __future__ import annotations

from collections.abc import Iterable

from emowatch.streams.infer.offsets import OffsetTracker

__all__ = ["DeliveryLedger"]

Ref = tuple[str, int, int]


class DeliveryLedger:
    def __init__(self) -> None:
        self.offsets = OffsetTracker()
        self._pending: dict[Ref, int] = {}            # alert offset -> flushes / notifications it waits for
        self._waiting_flush: dict[str, list[Ref]] = {}  # group key -> offsets waiting for its next flush
        self._notes: dict[int, list[Ref]] = {}         # notification id -> offsets waiting for it

    def received(self, topic: str, partition: int, offset: int, group_keys: Iterable[str] = ()) -> None:
        """An alert record was read; ``group_keys``: the groups it joined (empty: finished now)."""
        keys = sorted(set(group_keys))
        self.offsets.add(topic, partition, offset)
        ref = (topic, partition, offset)
        if not keys:
            self.offsets.done(topic, partition, offset)
            return
        self._pending[ref] = len(keys)
        for key in keys:
            self._waiting_flush.setdefault(key, []).append(ref)

    def flushed(self, group_keys: Iterable[str], notifications: Iterable[tuple[int, str]]) -> None:
        """``Dispatcher.due`` flushed ``group_keys`` and produced ``(notification id, group key)``."""
        by_group = {key: nid for nid, key in notifications}
        for key in group_keys:
            refs = self._waiting_flush.pop(key, [])
            nid = by_group.get(key)
            if nid is None:
                for ref in refs:
                    self._release(ref)
            else:
                self._notes.setdefault(nid, []).extend(refs)

    def finished(self, nid: int) -> None:
        """Notification ``nid`` was delivered and logged, or dead-lettered."""
        for ref in self._notes.pop(nid, []):
            self._release(ref)

    def _release(self, ref: Ref) -> None:
        left = self._pending.get(ref)
        if left is None:  # its partition was revoked meanwhile
            return
        if left <= 1:
            del self._pending[ref]
            self.offsets.done(*ref)
        else:
            self._pending[ref] = left - 1

    def forget(self, topic: str, partition: int) -> None:
        """A revoked partition: nothing of it will be committed by this instance any more."""
        self.offsets.forget(topic, partition)
        self._pending = {r: n for r, n in self._pending.items() if (r[0], r[1]) != (topic, partition)}

    def committable(self) -> dict[tuple[str, int], int]:
        return self.offsets.committable()

    def in_flight(self) -> int:
        """Alert records not finished yet."""
        return len(self._pending)

    def waiting_notifications(self) -> int:
        return len(self._notes)
