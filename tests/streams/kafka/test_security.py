"""Security settings for a real bus: SASL (PLAIN/SCRAM), TLS files, client id and Schema Registry auth
reach the clients, librdkafka accepts them, and no secret ever reaches a log line or an error message."""
from __future__ import annotations

import base64
import io
import json
import logging
import shutil
import subprocess
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from pydantic import ValidationError

from emowatch.streams.kafka.clients import base_config, make_consumer, make_producer, registry_config, serde_for
from emowatch.streams.local.broker import free_port
from emowatch.streams.observability import JsonFormatter
from emowatch.streams.settings import KafkaSettings, Settings, SettingsError, load_settings, redacted
from emowatch.topics.examples import example_record
from emowatch.topics.security import MASK, SecurityConfigError, redact
from emowatch.topics.serde import SerdeError

SASL_PW = "sasl-pw-7f3a9c"
KEY_PW = "key-pw-51d2e8"
REG_PW = "reg-pw-c0ffee"


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> dict[str, Path]:
    """A throw-away CA and a client certificate whose key is encrypted with KEY_PW (openssl CLI)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available")
    d = tmp_path_factory.mktemp("tls")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    run("req", "-x509", *ec, "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
        "-subj", "/CN=emowatch-test-ca")
    run("req", *ec, "-keyout", "client.key", "-passout", f"pass:{KEY_PW}", "-out", "client.csr", "-subj", "/CN=client")
    run("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "client.pem", "-days", "1")
    return {"ca": d / "ca.pem", "cert": d / "client.pem", "key": d / "client.key"}


def secured(certs: dict[str, Path] | None = None, **over) -> KafkaSettings:
    """SASL/SCRAM over mutual TLS towards a port where nothing listens."""
    conf = dict(bootstrap_servers=f"127.0.0.1:{free_port()}", client_id="emowatch-test", security_protocol="SASL_SSL",
                sasl_mechanism="SCRAM-SHA-512", sasl_username="svc-user", sasl_password=SASL_PW)
    if certs:
        conf.update(ssl_cafile=certs["ca"], ssl_certfile=certs["cert"], ssl_keyfile=certs["key"],
                    ssl_key_password=KEY_PW)
    conf.update(over)
    return KafkaSettings(**conf)


def test_sasl_scram_over_mutual_tls_gives_the_librdkafka_keys():
    k = KafkaSettings(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-256", sasl_username="svc",
                      sasl_password=SASL_PW, ssl_cafile=Path("/etc/kafka/ca.pem"),
                      ssl_certfile=Path("/etc/kafka/c.pem"),
                      ssl_keyfile=Path("/etc/kafka/c.key"), ssl_key_password=KEY_PW, client_id="infer-7")
    assert k.security() == {
        "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": "svc",
        "sasl.password": SASL_PW, "ssl.ca.location": "/etc/kafka/ca.pem",
        "ssl.certificate.location": "/etc/kafka/c.pem", "ssl.key.location": "/etc/kafka/c.key",
        "ssl.key.password": KEY_PW, "client.id": "infer-7",
    }
    assert KafkaSettings().security() == {"security.protocol": "PLAINTEXT", "client.id": "emowatch"}


def test_environment_variables_reach_the_client_config():
    s = load_settings({
        "EMOWATCH_KAFKA__BOOTSTRAP_SERVERS": "kafka-1:9093,kafka-2:9093",
        "EMOWATCH_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT", "EMOWATCH_KAFKA__SASL_MECHANISM": "PLAIN",
        "EMOWATCH_KAFKA__SASL_USERNAME": "svc", "EMOWATCH_KAFKA__SASL_PASSWORD": SASL_PW,
        "EMOWATCH_KAFKA__CLIENT_ID": "emowatch-sink-2",
        "EMOWATCH_KAFKA__SCHEMA_REGISTRY_URL": "https://registry:8081",
        "EMOWATCH_KAFKA__SCHEMA_REGISTRY_USER_INFO": f"reg-user:{REG_PW}",
    })
    assert base_config(s.kafka) == {
        "bootstrap.servers": "kafka-1:9093,kafka-2:9093", "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN", "sasl.username": "svc", "sasl.password": SASL_PW, "client.id": "emowatch-sink-2",
    }
    assert registry_config(s.kafka) == {"basic.auth.user.info": f"reg-user:{REG_PW}"}
    assert registry_config(KafkaSettings()) is None


def test_tls_only_mutual_authentication(certs):
    k = KafkaSettings(security_protocol="SSL", ssl_cafile=certs["ca"], ssl_certfile=certs["cert"],
                      ssl_keyfile=certs["key"], ssl_key_password=KEY_PW)
    conf = k.security()
    assert conf["security.protocol"] == "SSL" and not any(key.startswith("sasl.") for key in conf)
    assert conf["ssl.certificate.location"] == str(certs["cert"]) and conf["ssl.key.password"] == KEY_PW


@pytest.mark.parametrize("over,message", [
    (dict(security_protocol="PLAINTEXT"), "SASL credentials need security_protocol SASL_SSL or SASL_PLAINTEXT"),
    (dict(sasl_mechanism=None), "sasl_mechanism is required"),
    (dict(sasl_password=None), "sasl_username and sasl_password must be set together"),
    (dict(security_protocol="SASL_PLAINTEXT", ssl_cafile=Path("/ca.pem")), "does not use TLS"),
    (dict(ssl_certfile=Path("/c.pem")), "tls_cert_file and tls_key_file must be set together"),
    (dict(ssl_key_password=KEY_PW), "tls_key_password is set without tls_key_file"),
])
def test_inconsistent_settings_fail_instead_of_connecting_without_them(over, message):
    # inconsistent security now fails when the settings are built (start-up), not at the first client
    with pytest.raises((SecurityConfigError, ValidationError), match=message) as ei:
        make_producer(secured(**over))
    assert SASL_PW not in str(ei.value) and KEY_PW not in str(ei.value)


def test_librdkafka_accepts_the_keys_and_decrypts_the_key_with_the_key_password(certs):
    k = secured(certs)
    producer = make_producer(k)
    consumer = make_consumer(k, "security-test")
    consumer.close()
    producer.flush(0)
    with pytest.raises(KafkaException, match="ssl.key.location"):  # the password really reaches OpenSSL
        make_producer(secured(certs, ssl_key_password="not-the-password"))


class FakeRegistry:
    """A minimal Schema Registry REST endpoint that records each request's Authorization header."""

    def __init__(self, reject: bool = False) -> None:
        self.auth: list[str | None] = []
        schemas: dict[int, str] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _reply(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):  # noqa: N802 - register a schema
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                outer.auth.append(self.headers.get("Authorization"))
                if reject:
                    return self._reply(401, {"error_code": 401, "message": "Unauthorized"})
                schemas[7] = body["schema"]
                self._reply(200, {"id": 7})

            def do_GET(self):  # noqa: N802 - fetch a schema by id; anything else is unknown
                outer.auth.append(self.headers.get("Authorization"))
                if reject:
                    return self._reply(401, {"error_code": 401, "message": "Unauthorized"})
                if self.path.startswith("/schemas/ids/7") and 7 in schemas:
                    return self._reply(200, {"schema": schemas[7]})
                self._reply(404, {"error_code": 40401, "message": "not found"})

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("reject", [False, True], ids=["accepted", "rejected"])
def test_registry_basic_auth_is_sent_and_never_shown(reject):
    registry = FakeRegistry(reject=reject)
    try:
        k = KafkaSettings(schema_registry_url=registry.url, schema_registry_user_info=f"reg-user:{REG_PW}")
        writer, reader = serde_for(k, "AudioChunk"), serde_for(k, "AudioChunk")
        topic = f"sec-{uuid.uuid4().hex[:6]}"
        record = example_record("AudioChunk")
        if reject:
            with pytest.raises(SerdeError) as ei:
                writer.encode(record, topic=topic)
            assert "schema registry" in str(ei.value) and REG_PW not in str(ei.value)
        else:
            value = writer.encode(record, topic=topic)
            assert value[0] == 0 and reader.decode(value, topic=topic)["audio"] == record["audio"]
    finally:
        registry.close()
    expected = "Basic " + base64.b64encode(f"reg-user:{REG_PW}".encode()).decode()
    assert registry.auth and set(registry.auth) == {expected}


def test_redacted_views_mask_every_secret(certs):
    k = secured(certs, schema_registry_url="mock://x", schema_registry_user_info=f"reg-user:{REG_PW}")
    safe = redact(base_config(k))
    assert safe["sasl.password"] == MASK and safe["ssl.key.password"] == MASK
    assert safe["sasl.username"] == "svc-user" and safe["ssl.key.location"] == str(certs["key"])
    dumped = json.dumps(redacted(Settings(kafka=k)))
    assert "svc-user" in dumped and not any(s in dumped for s in (SASL_PW, KEY_PW, REG_PW))
    assert not any(s in repr(k) or s in str(k) for s in (SASL_PW, KEY_PW, REG_PW))


def test_invalid_settings_errors_do_not_echo_secrets():
    with pytest.raises(SettingsError) as ei:
        load_settings({"EMOWATCH_KAFKA__SASL_PASSWORD": SASL_PW, "EMOWATCH_KAFKA__SASL_MECHANISM": SASL_PW,
                       "EMOWATCH_KAFKA__SCHEMA_REGISTRY_USER_INFO": REG_PW, "EMOWATCH_KAFKA__PARTITIONS": REG_PW})
    assert "EMOWATCH_KAFKA__SASL_MECHANISM" in str(ei.value) and "EMOWATCH_KAFKA__PARTITIONS" in str(ei.value)
    assert SASL_PW not in str(ei.value) and REG_PW not in str(ei.value)


class _StubEngine:
    def infer_batch(self, windows):  # never called: no broker, no messages
        raise AssertionError("no audio expected")


class _StubModel:
    name, version, frame_ms = "stub", "0", 20
    labels = ["neutral"]

    def engine(self) -> _StubEngine:
        return _StubEngine()


def test_service_start_up_logs_no_secret(certs, capfd):
    """Start the inference agent (stub model) with every secret set, DEBUG logs captured as the
    workers write them (JSON) plus librdkafka's own stderr output; no secret may appear."""
    from emowatch.streams.infer.service import InferenceAgent

    k = secured(certs, schema_registry_url=f"mock://sec-{uuid.uuid4().hex[:6]}",
                schema_registry_user_info=f"reg-user:{REG_PW}")
    settings = Settings(kafka=k, log_level="DEBUG")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    started = threading.Event()

    class Started(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage() == "inference agent started":
                started.set()

    root = logging.getLogger()
    level, marker = root.level, Started()
    root.addHandler(handler)
    root.addHandler(marker)
    root.setLevel(logging.DEBUG)
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            service.run()
        except BaseException as exc:  # noqa: BLE001 - surfaced below: a crash must not pass as a clean start-up
            errors.append(exc)

    try:
        service = InferenceAgent(settings, model=_StubModel(), stop=stop)
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        assert started.wait(60), "the inference agent did not start"
        stop.set()
        thread.join(60)
        assert not thread.is_alive()
        assert not errors, f"the inference agent failed: {errors[0]!r}"
    finally:
        stop.set()
        root.removeHandler(handler)
        root.removeHandler(marker)
        root.setLevel(level)
    logs = stream.getvalue()
    out, err = capfd.readouterr()
    assert '"msg": "inference agent started"' in logs  # the capture saw the service's own log lines
    for text in (logs, out, err):
        assert not any(s in text for s in (SASL_PW, KEY_PW, REG_PW))


def test_aiokafka_and_faust_get_the_same_settings_with_a_tls_context(certs):
    import ssl

    from emowatch.streams.kafka.security import aiokafka_security, faust_credentials

    k = secured(certs)
    conf = aiokafka_security(k)
    assert isinstance(conf["ssl_context"], ssl.SSLContext)  # the key password decrypted the client key
    assert (conf["security_protocol"], conf["sasl_mechanism"], conf["client_id"]) == ("SASL_SSL", "SCRAM-SHA-512",
                                                                                       "emowatch-test")
    assert (conf["sasl_plain_username"], conf["sasl_plain_password"]) == ("svc-user", SASL_PW)
    creds = faust_credentials(k)
    assert creds.username == "svc-user" and creds.mechanism.value == "SCRAM-SHA-512" and creds.ssl_context is not None
    tls_only = KafkaSettings(security_protocol="SSL", ssl_cafile=certs["ca"])
    assert "sasl_mechanism" not in aiokafka_security(tls_only)
    assert type(faust_credentials(tls_only)).__name__ == "SSLCredentials"
