"""aiokafka (Faust's driver) leaves its consumer group on a clean stop also at generation 0.

aiokafka sends LeaveGroup only when ``generation > 0`` (``GroupCoordinator._maybe_leave_group``, private;
pinned with faust-streaming's ``aiokafka`` 0.x). Apache Kafka numbers the first generation 1; the local
tansu broker numbers it 0 and never expires a member that did not leave, so the group of a rules worker
stopped with SIGTERM stayed STABLE (measured) and ``emowatch rules reset`` refused it. A no-op on Kafka.
Checked by ``tests/streams/kafka/test_group_leave.py`` on an upgrade.
"""
from __future__ import annotations

from typing import Any


def leave_group_at_generation_zero() -> bool:
    """Patch aiokafka's group coordinator (once per process) so a member of generation 0 leaves the group on
    stop like any other; True when the patch is in place (False: this aiokafka lacks the method)."""
    from aiokafka.consumer.group_coordinator import GroupCoordinator

    original = getattr(GroupCoordinator, "_maybe_leave_group", None)
    if original is None:
        return False
    if getattr(original, "_emowatch_gen0", False):
        return True

    async def maybe_leave_group(self: Any) -> Any:
        if self.generation == 0 and getattr(self, "_group_instance_id", None) is None:
            self.generation = 1  # joined (tansu's first generation): let aiokafka's own check pass
        return await original(self)

    maybe_leave_group._emowatch_gen0 = True  # type: ignore[attr-defined]
    GroupCoordinator._maybe_leave_group = maybe_leave_group
    return True
