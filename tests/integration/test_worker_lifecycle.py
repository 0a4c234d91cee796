"""Every service exits with code 0 on SIGTERM after it has done real work (the contract a process
supervisor - Kubernetes, systemd, `emowatch up` - relies on to tell a clean stop from a crash)."""
from __future__ import annotations

import urllib.request

import pytest

from emowatch.streams.kafka.audio_publisher import AudioPublisher
from emowatch.streams.kafka.clients import group_name, topics_for
from emowatch.streams.local.demo import default_rules_file, demo_model_dir, load_calls, wait_for_lag_zero
from emowatch.streams.local.stack import LocalStack

pytestmark = pytest.mark.integration
TIMEOUT = 240
STOP_DEADLINE = 60  # a graceful stop that takes longer is killed, and the exit code is -9


def _metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + " "))


def test_infer_rules_and_sink_exit_0_on_sigterm_after_processing(broker, tmp_path, unique):
    stack = LocalStack(data_dir=tmp_path, broker=broker, topic_prefix=f"lc{unique}.").start()
    try:
        kafka = stack.kafka_settings()
        t = topics_for(kafka)
        stack.start_worker("infer", ["infer"], env={"EMOWATCH_MODEL__MODEL": str(demo_model_dir())})
        stack.start_worker("rules", ["rules", "--business-line", "*", "--rules-file", str(default_rules_file())])
        stack.start_worker("sink", ["sink"])
        sent = AudioPublisher(kafka).publish_calls(load_calls())
        assert sent > 0
        # each service has consumed and committed everything upstream of it
        wait_for_lag_zero(stack, group_name(kafka, "emowatch-infer"), [t.audio], TIMEOUT)
        wait_for_lag_zero(stack, f"{kafka.topic_prefix}emowatch-rules-all", [t.scores], TIMEOUT)
        wait_for_lag_zero(stack, group_name(kafka, "emowatch-sink"), [t.scores, t.alerts], TIMEOUT)
        work = {}
        for name in ("infer", "rules", "sink"):
            port = stack.workers[name].http_port
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()
            work[name] = _metric(text, f"emowatch_{name}_received_total")
        assert all(n >= sent for n in work.values()), (sent, work)  # every service did real work before the stop
        logs = {}
        for name in ("rules", "sink", "infer"):
            w = stack.workers[name]
            code = stack.stop_worker(name, timeout_s=STOP_DEADLINE)
            logs[name] = w.tail(20)
            assert code == 0, f"{name} exited with {code} on SIGTERM:\n{logs[name]}"
    finally:
        stack.stop()
