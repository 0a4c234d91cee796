"""The local broker (tansu): topic creation on the session broker, a private broker's clean stop."""
import subprocess

import pytest

from emowatch.streams.kafka.admin import ensure_topics, topic_partitions
from emowatch.streams.local.broker import LocalBroker
from emowatch.topics.registry import Topics

pytestmark = pytest.mark.integration


def test_session_broker_creates_registry_topics_idempotently(broker, unique):
    t = Topics(prefix=f"b{unique}.", partitions=3)
    first = ensure_topics(broker.bootstrap_servers, t)
    assert sorted(first.created) == sorted(t) and not first.problems
    second = ensure_topics(broker.bootstrap_servers, t)
    assert second.created == [] and sorted(second.existing) == sorted(t)
    parts = topic_partitions(broker.bootstrap_servers)
    assert parts[t.audio] == parts[t.scores] == parts[t.alerts] == 3


def test_co_partitioning_mismatch_is_reported(broker, unique):
    t = Topics(prefix=f"m{unique}.", partitions=2)
    ensure_topics(broker.bootstrap_servers, t)
    wider = Topics(prefix=f"m{unique}.", partitions=5)
    report = ensure_topics(broker.bootstrap_servers, wider)
    assert report.problems and any(wider.scores in p for p in report.problems)


def test_private_broker_stops_without_stray_process():
    b = LocalBroker().start()
    pid = b.pid
    b.stop()
    alive = subprocess.run(["ps", "-p", str(pid), "-o", "stat="], capture_output=True, text=True).stdout.strip()
    assert alive in ("", "Z")  # gone (or an already-reaped zombie entry)


def test_free_ports_are_picked_below_the_ephemeral_range_and_can_be_bound():
    """Outgoing connections take their local ports from the ephemeral range: a listening port picked there could be
    taken before the child process binds it."""
    import socket

    from emowatch.streams.local.broker import _ephemeral_low, free_port

    ports = {free_port() for _ in range(20)}
    assert all(10_000 <= p < _ephemeral_low() for p in ports) and len(ports) > 1
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", ports.pop()))
