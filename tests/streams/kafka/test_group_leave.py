"""The generation-0 leave patch (``leave_group_at_generation_zero``) and its aiokafka canary."""
from __future__ import annotations

import asyncio
import inspect

from aiokafka.consumer.group_coordinator import GroupCoordinator

from emowatch.streams.kafka.group_leave import leave_group_at_generation_zero


def test_aiokafka_still_skips_the_leave_at_generation_zero_which_the_patch_works_around():
    leave_group_at_generation_zero()
    original = inspect.getsource(inspect.unwrap(GroupCoordinator._maybe_leave_group).__closure__[0].cell_contents)
    assert "self.generation > 0" in original and "LeaveGroupRequest" in original


def test_the_patch_is_installed_once_and_lets_a_generation_zero_member_leave():
    assert leave_group_at_generation_zero() and leave_group_at_generation_zero()
    patched = GroupCoordinator._maybe_leave_group
    assert patched._emowatch_gen0 and leave_group_at_generation_zero()
    assert GroupCoordinator._maybe_leave_group is patched  # not wrapped twice

    sent = []

    class Coordinator:  # the attributes the original reads; _send_req records the request
        group_id, member_id, _group_instance_id = "g", "m-1", None

        def __init__(self, generation):
            self.generation = generation

        async def _send_req(self, request):
            sent.append((type(request).__name__, self.member_id))

        def reset_generation(self):
            self.generation = -1

    for generation in (0, 3, -1):
        asyncio.run(patched(Coordinator(generation)))
    assert sent == [("LeaveGroupRequest", "m-1")] * 2  # generations 0 and 3 leave; -1 (not joined) does not
    static = Coordinator(0)
    static._group_instance_id = "static-1"
    asyncio.run(patched(static))
    assert len(sent) == 2  # static members never leave (aiokafka's rule, kept)
