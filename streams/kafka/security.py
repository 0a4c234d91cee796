"""Kafka security settings for the clients that do not take librdkafka keys.

The security settings (``EMOWATCH_KAFKA__SECURITY_PROTOCOL``, ``SASL_*``, ``SSL_*``) are mapped
once, to librdkafka keys, by :func:`emowatch.topics.security.kafka_security_config` (reached
through ``KafkaSettings.security()``, validated there). The aiokafka keyword arguments (the
rules-topic feed) and the Faust broker credentials (the rules worker) are translated from that
dict by :func:`emowatch.topics.security.aiokafka_security_config`; only the TLS context is built
here. Results hold secrets: never log them.
"""
from __future__ import annotations

from typing import Any

from aiokafka.helpers import create_ssl_context

from emowatch.streams.settings import KafkaSettings
from emowatch.topics.security import aiokafka_security_config


def aiokafka_security(kafka: KafkaSettings) -> dict[str, Any]:
    """aiokafka client keyword arguments for the security settings (secrets included)."""
    conf, tls = aiokafka_security_config(kafka.security())
    out: dict[str, Any] = dict(conf)
    if tls is not None:
        out["ssl_context"] = create_ssl_context(**tls)
    return out


def faust_credentials(kafka: KafkaSettings) -> Any:
    """Faust ``broker_credentials`` for the security settings (None for PLAINTEXT)."""
    import faust

    sec = aiokafka_security(kafka)
    if "sasl_mechanism" in sec:
        return faust.SASLCredentials(username=sec["sasl_plain_username"], password=sec["sasl_plain_password"],
                                     ssl_context=sec.get("ssl_context"), mechanism=sec["sasl_mechanism"])
    if "ssl_context" in sec:
        return faust.SSLCredentials(sec["ssl_context"])
    return None
