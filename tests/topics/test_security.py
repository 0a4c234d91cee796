"""Kafka security config and redaction."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from emowatch.topics.security import SecurityConfigError, kafka_security_config, redact, redact_url


def test_sasl_scram_over_tls() -> None:
    cfg = kafka_security_config(
        {
            "sasl_mechanism": "scram-sha-512",
            "sasl_username": "svc",
            "sasl_password": "s3cr3t",
            "tls_ca_file": "/etc/ca.pem",
            "client_id": "emowatch-infer",
        }
    )
    assert cfg == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "svc",
        "sasl.password": "s3cr3t",
        "ssl.ca.location": "/etc/ca.pem",
        "client.id": "emowatch-infer",
    }


def test_mtls_from_attributes_and_secretstr() -> None:
    class Secret:
        def get_secret_value(self) -> str:
            return "kp"

    settings = SimpleNamespace(
        kafka_tls_ca_file="/ca", kafka_tls_cert_file="/crt", kafka_tls_key_file="/key", kafka_tls_key_password=Secret()
    )
    cfg = kafka_security_config(settings)
    assert cfg == {
        "security.protocol": "SSL",
        "ssl.ca.location": "/ca",
        "ssl.certificate.location": "/crt",
        "ssl.key.location": "/key",
        "ssl.key.password": "kp",
    }


def test_plaintext_default_and_explicit_sasl_plaintext() -> None:
    assert kafka_security_config({}) == {"security.protocol": "PLAINTEXT"}
    cfg = kafka_security_config(
        {"security_protocol": "sasl_plaintext", "sasl_mechanism": "PLAIN", "sasl_username": "u", "sasl_password": "p"}
    )
    assert cfg["security.protocol"] == "SASL_PLAINTEXT" and cfg["sasl.mechanism"] == "PLAIN"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"sasl_username": "u"}, "set together"),
        ({"sasl_username": "u", "sasl_password": "p"}, "sasl_mechanism is required"),
        ({"sasl_username": "u", "sasl_password": "p", "sasl_mechanism": "GSSAPI"}, "not one of"),
        ({"security_protocol": "SSL", "sasl_username": "u", "sasl_password": "p", "sasl_mechanism": "PLAIN"}, "need"),
        ({"security_protocol": "SASL_SSL"}, "needs sasl_username"),
        ({"security_protocol": "TLS"}, "not one of"),
        ({"security_protocol": "PLAINTEXT", "tls_ca_file": "/ca"}, "does not use TLS"),
        ({"tls_cert_file": "/crt"}, "set together"),
        ({"sasl_mechanism": "PLAIN"}, "without sasl_username"),
        ({"tls_key_password": "x", "tls_ca_file": "/ca"}, "without tls_key_file"),
    ],
)
def test_inconsistent_settings_are_rejected(settings: dict, message: str) -> None:
    with pytest.raises(SecurityConfigError, match=message):
        kafka_security_config(settings)


def test_redact_hides_secrets() -> None:
    config = {
        "bootstrap.servers": "broker:9093",
        "sasl.username": "svc",
        "sasl.password": "s3cr3t",
        "ssl.key.password": "kp",
        "sasl.jaas.config": "... password=\"x\";",
        "sasl.oauthbearer.client.secret": "cs",
        "ssl.key.location": "/key",
        "schema.registry": {"url": "https://user:pw@sr:8081", "basic.auth.user.info": "user:pw"},
        "empty.password": None,
    }
    out = redact(config)
    text = repr(out)
    for secret in ("s3cr3t", "kp", "cs", "pw", 'password="x"'):
        assert secret not in text
    assert out["sasl.username"] == "svc" and out["ssl.key.location"] == "/key"
    assert out["schema.registry"]["url"] == "https://user:***@sr:8081"
    assert out["empty.password"] is None
    assert config["sasl.password"] == "s3cr3t"  # input untouched


def test_redact_url() -> None:
    assert redact_url("see http://a:b@h:1/x and https://h2") == "see http://a:***@h:1/x and https://h2"


def test_aiokafka_config_is_translated_from_the_librdkafka_dict() -> None:
    from emowatch.topics.security import aiokafka_security_config

    librdkafka = kafka_security_config({"sasl_mechanism": "PLAIN", "sasl_username": "u", "sasl_password": "p",
                                        "tls_ca_file": "/ca", "client_id": "c"})
    kwargs, tls = aiokafka_security_config(librdkafka)
    assert kwargs == {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_plain_username": "u",
                      "sasl_plain_password": "p", "client_id": "c"}
    assert tls == {"cafile": "/ca", "certfile": None, "keyfile": None, "password": None}
    assert aiokafka_security_config(kafka_security_config({})) == ({"security_protocol": "PLAINTEXT"}, None)
    with pytest.raises(SecurityConfigError, match="no aiokafka equivalent"):
        aiokafka_security_config({"security.protocol": "PLAINTEXT", "sasl.oauthbearer.config": "x"})
