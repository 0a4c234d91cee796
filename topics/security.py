"""Kafka client security settings -> librdkafka config, and redaction for logs.

:func:`kafka_security_config` reads a settings-like object (a mapping, or an
object with attributes such as a pydantic-settings model; pydantic
``SecretStr`` values are unwrapped) and returns librdkafka keys. Recognised
settings, each also accepted with a ``kafka_`` prefix:

============================  ===========================  ===========================
setting                       librdkafka key               notes
============================  ===========================  ===========================
``security_protocol``         ``security.protocol``        PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL
``sasl_mechanism``            ``sasl.mechanism``           PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
``sasl_username``             ``sasl.username``
``sasl_password``             ``sasl.password``            secret
``tls_ca_file``               ``ssl.ca.location``          PEM CA bundle
``tls_cert_file``             ``ssl.certificate.location`` client certificate (mTLS)
``tls_key_file``              ``ssl.key.location``         client key (mTLS)
``tls_key_password``          ``ssl.key.password``         secret
``client_id``                 ``client.id``
============================  ===========================  ===========================

Without ``security_protocol`` the protocol is inferred: SASL credentials ->
``SASL_SSL`` (passwords never go in clear unless SASL_PLAINTEXT is asked for
explicitly), TLS files only -> ``SSL``, nothing -> ``PLAINTEXT``. Pure: no
file is opened.

This is the one mapping of the security settings: the clients that do not take
librdkafka keys (aiokafka, Faust) get theirs by translating the librdkafka
dict, :func:`aiokafka_security_config`, so a setting added here reaches them
too (``emowatch.streams.kafka.security`` builds their TLS context).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from emowatch.topics.errors import EmowatchError

__all__ = [
    "MASK",
    "SASL_MECHANISMS",
    "SECURITY_PROTOCOLS",
    "SecurityConfigError",
    "aiokafka_security_config",
    "kafka_security_config",
    "redact",
    "redact_url",
]

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
MASK = "***"

_FILES = {
    "tls_ca_file": "ssl.ca.location",
    "tls_cert_file": "ssl.certificate.location",
    "tls_key_file": "ssl.key.location",
}
_SECRET_KEY = re.compile(
    r"password|secret|jaas|user\.info|token|credential|oauthbearer\.config|\.pem$|private", re.IGNORECASE
)
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]*)@")


class SecurityConfigError(EmowatchError, ValueError):
    """Inconsistent or unsupported Kafka security settings."""


def _get(settings: Any, name: str) -> Any:
    for key in (name, f"kafka_{name}"):
        if isinstance(settings, Mapping):
            value = settings.get(key)
        else:
            value = getattr(settings, key, None)
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        if value is not None and value != "":
            return value
    return None


def kafka_security_config(settings: Any) -> dict[str, str]:
    """librdkafka security/identity keys for ``settings`` (see the module docstring).

    Raises :class:`SecurityConfigError` for an unknown protocol or mechanism,
    a username without password (or the reverse), credentials without a
    mechanism, SASL settings with a non-SASL
    protocol, a SASL protocol without credentials, or a TLS key without a
    certificate (or the reverse).
    """
    out: dict[str, str] = {}
    username = _get(settings, "sasl_username")
    password = _get(settings, "sasl_password")
    mechanism = _get(settings, "sasl_mechanism")
    protocol = _get(settings, "security_protocol")
    files = {key: str(_get(settings, name)) for name, key in _FILES.items() if _get(settings, name) is not None}

    if (username is None) != (password is None):
        raise SecurityConfigError("sasl_username and sasl_password must be set together")
    sasl = username is not None
    if protocol is None:
        protocol = "SASL_SSL" if sasl else ("SSL" if files else "PLAINTEXT")
    protocol = str(protocol).upper()
    if protocol not in SECURITY_PROTOCOLS:
        raise SecurityConfigError(f"security_protocol {protocol!r} is not one of {', '.join(SECURITY_PROTOCOLS)}")
    if sasl and not protocol.startswith("SASL_"):
        raise SecurityConfigError(f"SASL credentials need security_protocol SASL_SSL or SASL_PLAINTEXT, not {protocol}")
    if protocol.startswith("SASL_") and not sasl:
        raise SecurityConfigError(f"security_protocol {protocol} needs sasl_username and sasl_password")
    if files and not protocol.endswith("SSL"):
        raise SecurityConfigError(f"TLS files are set but security_protocol {protocol} does not use TLS")
    if ("ssl.certificate.location" in files) != ("ssl.key.location" in files):
        raise SecurityConfigError("tls_cert_file and tls_key_file must be set together (client certificate)")

    out["security.protocol"] = protocol
    if sasl:
        if mechanism is None:
            raise SecurityConfigError(f"sasl_mechanism is required with SASL credentials: {', '.join(SASL_MECHANISMS)}")
        mechanism = str(mechanism).upper()
        if mechanism not in SASL_MECHANISMS:
            raise SecurityConfigError(f"sasl_mechanism {mechanism!r} is not one of {', '.join(SASL_MECHANISMS)}")
        out["sasl.mechanism"] = mechanism
        out["sasl.username"] = str(username)
        out["sasl.password"] = str(password)
    elif mechanism is not None:
        raise SecurityConfigError("sasl_mechanism is set without sasl_username/sasl_password")
    out.update(files)
    key_password = _get(settings, "tls_key_password")
    if key_password is not None:
        if "ssl.key.location" not in out:
            raise SecurityConfigError("tls_key_password is set without tls_key_file")
        out["ssl.key.password"] = str(key_password)
    client_id = _get(settings, "client_id")
    if client_id is not None:
        out["client.id"] = str(client_id)
    return out


# librdkafka key -> aiokafka client keyword / ssl.create_default_context-style argument
_AIOKAFKA_KEYS = {
    "security.protocol": "security_protocol",
    "sasl.mechanism": "sasl_mechanism",
    "sasl.username": "sasl_plain_username",
    "sasl.password": "sasl_plain_password",
    "client.id": "client_id",
}
_TLS_ARGS = {
    "ssl.ca.location": "cafile",
    "ssl.certificate.location": "certfile",
    "ssl.key.location": "keyfile",
    "ssl.key.password": "password",
}


def aiokafka_security_config(config: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str | None] | None]:
    """Translate :func:`kafka_security_config`'s librdkafka dict for aiokafka (and Faust).

    Returns the aiokafka client keywords (``security_protocol``, ``sasl_*``, ``client_id``)
    and, when the protocol uses TLS, the keyword arguments of
    ``aiokafka.helpers.create_ssl_context`` (``cafile``, ``certfile``, ``keyfile``,
    ``password``; None where unset), else None. Secrets included: never log the result.
    Raises :class:`SecurityConfigError` for a key this translation does not know, so the
    two mappings cannot drift apart silently.
    """
    unknown = sorted(set(config) - set(_AIOKAFKA_KEYS) - set(_TLS_ARGS))
    if unknown:
        raise SecurityConfigError(f"no aiokafka equivalent for librdkafka key(s) {', '.join(unknown)}")
    kwargs = {name: config[key] for key, name in _AIOKAFKA_KEYS.items() if key in config}
    tls = None
    if config.get("security.protocol", "PLAINTEXT").endswith("SSL"):
        tls = {name: config.get(key) for key, name in _TLS_ARGS.items()}
    return kwargs, tls


def redact(config: Mapping[str, Any]) -> dict[str, Any]:
    """Copy of ``config`` safe to log: secret values replaced by ``***``.

    Masks keys that look secret (``sasl.password``, ``ssl.key.password``,
    ``sasl.jaas.config``, ``basic.auth.user.info``, ``*.secret``, tokens,
    inline PEM keys, ...) and the password in ``scheme://user:password@host``
    URLs in any value; nested mappings are redacted too. The input is not modified.
    """
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            out[key] = redact(value)
        elif _SECRET_KEY.search(str(key)) and value is not None:
            out[key] = MASK
        elif isinstance(value, str):
            out[key] = redact_url(value)
        else:
            out[key] = value
    return out


def redact_url(text: str) -> str:
    """Mask the password of every ``scheme://user:password@host`` URL in ``text``."""
    return _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
