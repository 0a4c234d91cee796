"""Secrets never reach a service's log or stderr, also when authentication fails.

Each service runs as a real process (LocalStack) at DEBUG level with its stdout and stderr
(JSON logs, librdkafka's own lines, Faust/aiokafka logging, a crash traceback) in one file.
"""
from __future__ import annotations

import re
import time

import pytest

from emowatch.streams.local.broker import free_port
from emowatch.streams.local.demo import default_rules_file, demo_model_dir
from emowatch.streams.local.stack import LocalStack

pytestmark = pytest.mark.integration
TIMEOUT = 120
KAFKA_PW = "s3cr3tPW-kafka-5e1f0a"
CH_PW = "s3cr3tPW-clickhouse-c4d2b7"
SASL = {"EMOWATCH_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT", "EMOWATCH_KAFKA__SASL_MECHANISM": "PLAIN",
        "EMOWATCH_KAFKA__SASL_USERNAME": "svc-emowatch", "EMOWATCH_KAFKA__SASL_PASSWORD": KAFKA_PW,
        "EMOWATCH_LOG_LEVEL": "DEBUG"}
# librdkafka: "SASL PLAIN mechanism handshake failed: ..."; aiokafka: "UnsupportedSaslMechanismError"
AUTH_FAILED = re.compile(r"SASL .*handshake failed|UnsupportedSaslMechanism|SaslAuthenticationFailed|"
                         r"Authentication failed", re.IGNORECASE)
WORKERS = {
    "rules": ["rules", "--business-line", "*", "--rules-file", str(default_rules_file())],
    "sink": ["sink"],
    "infer": ["infer"],
}


def _wait(cond, what: str, w) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not cond():
        assert time.monotonic() < deadline, f"{what} within {TIMEOUT}s:\n{w.tail(40)}"
        time.sleep(0.2)


@pytest.fixture
def stack(broker, tmp_path, unique):
    s = LocalStack(data_dir=tmp_path, broker=broker, topic_prefix=f"sec{unique}.").start()
    yield s
    s.stop()


@pytest.mark.parametrize("name", list(WORKERS))
def test_failed_sasl_authentication_does_not_log_the_password(stack, name):
    """The local broker does not do SASL/PLAIN, so every connection attempt fails authentication."""
    env = {**SASL, "EMOWATCH_MODEL__MODEL": str(demo_model_dir())}
    w = stack.start_worker(name, WORKERS[name], env=env)
    _wait(lambda: AUTH_FAILED.search(w.log_path.read_text(errors="replace")), "no authentication failure logged", w)
    code = stack.stop_worker(name)
    text = w.log_path.read_text(errors="replace")
    assert KAFKA_PW not in text, f"{name} logged the SASL password (exit code {code})"


def test_sink_with_an_unreachable_clickhouse_server_does_not_log_its_password(stack):
    """The sink waits for the server (retrying with its back-off, docs/ARCHITECTURE.md "Delivery guarantees"):
    neither its DEBUG log of the failed attempts nor its exit on SIGTERM shows the password."""
    from emowatch.streams.cli.main import app

    assert app.pretty_exceptions_show_locals is False  # a crash traceback must not print local variables (the URL)
    url = f"http://emowatch:{CH_PW}@127.0.0.1:{free_port()}"  # nothing listens there
    w = stack.start_worker("sink", ["sink"], env={"EMOWATCH_SINK__CLICKHOUSE_URL": url, "EMOWATCH_LOG_LEVEL": "DEBUG"})
    _wait(lambda: w.log_path.read_text(errors="replace").count("clickhouse unreachable at start-up: waiting") >= 2,
          "the sink did not retry the unreachable server", w)
    assert stack.stop_worker("sink") == 0
    text = w.log_path.read_text(errors="replace")
    assert re.search(r"Connection refused|Failed to establish a new connection", text), text[-3000:]
    assert CH_PW not in text
