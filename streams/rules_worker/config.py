"""Faust settings of the rules worker: app id per business line, web address, client settings.

The benchmark's bare Faust loop (``bench/bare_faust_app.py``) uses the very same settings,
so the comparison measures the rules work and nothing else.
"""
from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit

from emowatch.streams.kafka.security import faust_credentials
from emowatch.streams.settings import KafkaSettings, Settings

CALLS_TABLE = "calls"
"""Name of the rules worker's per-call state table (Faust ``Table``)."""


def app_id(settings: Settings, business_line: str) -> str:
    """The Faust app id (= consumer group) of a business line's workers."""
    line = "all" if business_line == "*" else business_line
    return f"{settings.kafka.topic_prefix}{settings.rules.app_prefix}-{line}"


def changelog_topic(settings: Settings, business_line: str) -> str:
    """The changelog topic of a business line's call table (Faust: ``<app id>-<table name>-changelog``)."""
    return f"{app_id(settings, business_line)}-{CALLS_TABLE}-changelog"


def advertised_url(bind: str, port: int, configured: str | None = None) -> str:
    """The URL other workers use to reach this one (``/calls`` forwarding): ``configured``, else
    ``http://<bind>:<port>``, with the host name instead of a wildcard bind address."""
    if configured:
        return configured.rstrip("/")
    host = socket.gethostname() if bind in ("0.0.0.0", "::", "") else bind
    return f"http://{host}:{port}"


def faust_config(kafka: KafkaSettings, web_port: int, *, bind: str = "127.0.0.1",
                 advertised: str | None = None, instance_id: str | None = None) -> dict[str, Any]:
    """Keyword arguments of ``faust.App`` for the rules worker.

    The producer does not linger: the rules worker hands a batch's states to it in chunks of
    ``CHANGELOG_CHUNK``, so they leave in few requests anyway, and a linger would delay every
    batch's alert acknowledgement."""
    canonical = advertised_url(bind, web_port, advertised)
    return dict(
        broker=f"kafka://{kafka.bootstrap_servers}", broker_credentials=faust_credentials(kafka), store="memory://",
        topic_partitions=kafka.partitions, topic_replication_factor=kafka.replication_factor,
        broker_session_timeout=kafka.session_timeout_ms / 1000.0,
        broker_heartbeat_interval=max(0.25, kafka.session_timeout_ms / 4000.0),
        consumer_auto_offset_reset="earliest", producer_acks=-1,
        web_enabled=True, web_host=urlsplit(canonical).hostname, web_port=web_port, web_bind=bind,
        canonical_url=canonical, web_in_thread=False, table_cleanup_interval=60.0,
        consumer_group_instance_id=instance_id, logging_config=None)
