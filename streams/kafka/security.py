"""Kafka security settings for each client library, from one mapping.

The security settings (``EMOWATCH_KAFKA__SECURITY_PROTOCOL``, ``SASL_*``, ``SSL_*``) are mapped
once, to librdkafka keys, by :func:`emowatch.topics.security.kafka_security_config` (reached
through ``KafkaSettings.security()``). The clients that do not speak librdkafka keys get the
same settings here: aiokafka keyword arguments (the rules-topic feed) and Faust broker
credentials (the rules worker). Results hold secrets: never log them.
"""
from __future__ import annotations

from typing import Any

from aiokafka.helpers import create_ssl_context

from emowatch.streams.settings import KafkaSettings


def aiokafka_security(kafka: KafkaSettings) -> dict[str, Any]:
    """aiokafka client keyword arguments for the security settings (secrets included)."""
    conf: dict[str, Any] = {"security_protocol": kafka.security_protocol, "client_id": kafka.client_id}
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        conf["ssl_context"] = create_ssl_context(
            cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None,
            certfile=str(kafka.ssl_certfile) if kafka.ssl_certfile else None,
            keyfile=str(kafka.ssl_keyfile) if kafka.ssl_keyfile else None,
            password=kafka.ssl_key_password.get_secret_value() if kafka.ssl_key_password else None)
    if kafka.sasl_mechanism:
        conf["sasl_mechanism"] = kafka.sasl_mechanism
        conf["sasl_plain_username"] = kafka.sasl_username
        conf["sasl_plain_password"] = kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
    return conf


def faust_credentials(kafka: KafkaSettings) -> Any:
    """Faust ``broker_credentials`` for the security settings (None for PLAINTEXT)."""
    import faust

    sec = aiokafka_security(kafka)
    if kafka.sasl_mechanism:
        return faust.SASLCredentials(username=sec.get("sasl_plain_username"), password=sec.get("sasl_plain_password"),
                                     ssl_context=sec.get("ssl_context"), mechanism=kafka.sasl_mechanism)
    if "ssl_context" in sec:
        return faust.SSLCredentials(sec["ssl_context"])
    return None
