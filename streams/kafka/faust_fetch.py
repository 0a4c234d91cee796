"""The fetch wait of a Faust app's worker consumer (re-exported by ``streams/rules_worker/faust_compat.py``, the
list of every use of Faust beyond its documented API; here because it imports Faust's Kafka driver).

Faust (faust-streaming 0.15.3) builds its worker consumer with a fixed ``fetch_max_wait_ms=1500``
(``AIOKafkaConsumerThread._create_worker_consumer``) and has no setting for it; aiokafka reads
``AIOKafkaConsumer._fetch_max_wait_ms`` when the consumer starts. A broker that holds a Fetch until that wait
expires (tansu, the local broker) otherwise adds it to every scores -> alert hop (docs/benchmarks.md, whole
pipeline). ``tests/streams/rules_worker/test_faust_compat.py`` checks that both places are still there.
"""
from __future__ import annotations

import functools
from typing import Any

__all__ = ["apply_fetch_max_wait", "set_fetch_max_wait"]

_FETCH_WAIT_ATTR = "_emowatch_fetch_max_wait_ms"


def set_fetch_max_wait(app: Any, ms: int) -> bool:
    """Build ``app``'s worker consumer with ``fetch_max_wait_ms=ms`` instead of Faust's fixed 1500.

    Wraps ``AIOKafkaConsumerThread._create_worker_consumer`` once per process (other apps keep Faust's
    value); call before the app starts. Returns False, changing nothing, when this Faust or aiokafka
    version builds its consumer elsewhere."""
    try:
        from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
    except ImportError:  # pragma: no cover - Faust without its aiokafka driver
        return False
    create = getattr(AIOKafkaConsumerThread, "_create_worker_consumer", None)
    if create is None:
        return False
    if not getattr(create, "_emowatch_wrapped", False):

        @functools.wraps(create)  # inspect.getsource still shows Faust's own method
        def _create_worker_consumer(self: Any, transport: Any) -> Any:
            return apply_fetch_max_wait(self.app, create(self, transport))

        _create_worker_consumer._emowatch_wrapped = True  # type: ignore[attr-defined]
        AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer
    setattr(app, _FETCH_WAIT_ATTR, int(ms))
    return True


def apply_fetch_max_wait(app: Any, consumer: Any) -> Any:
    """``consumer`` (aiokafka, not started) with the fetch wait :func:`set_fetch_max_wait` gave ``app``, if any."""
    wait = getattr(app, _FETCH_WAIT_ATTR, None)
    if wait is not None and hasattr(consumer, "_fetch_max_wait_ms"):
        consumer._fetch_max_wait_ms = int(wait)
    return consumer
