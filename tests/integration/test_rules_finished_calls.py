"""Ended calls leave the rules worker's table after the retention; running calls stay."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from emowatch.rules.loader import bundled_rule_files
from emowatch.rules.testing import synthetic_call
from emowatch.streams.kafka.clients import topics_for
from emowatch.streams.kafka.scores_publisher import publish_scores
from emowatch.streams.local.broker import free_port
from emowatch.streams.local.demo import wait_for_lag_zero
from emowatch.streams.local.stack import LocalStack, WorkerProc
from emowatch.topics.registry import partition_of

pytestmark = pytest.mark.integration
TIMEOUT = 240
VIP = next(p for p in bundled_rule_files() if p.stem == "vip")
RUN = ("import sys; from pathlib import Path; from emowatch.streams.settings import load_settings; "
       "from emowatch.streams.rules_worker.service import run_worker; sys.argv = sys.argv[:1]; "
       "run_worker(load_settings(), business_line='vip', rules_file=Path({file!r}), web_port={port}, "
       "finished_retention_s=1e-6)")


def _status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            json.loads(r.read())
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_an_ended_call_is_deleted_after_the_retention(broker, tmp_path, unique):
    prefix = f"fc{unique}."
    stack = LocalStack(data_dir=tmp_path, broker=broker, topic_prefix=prefix).start()
    try:
        kafka = stack.kafka_settings()
        ended = "ended-call"
        running = next(f"running-{i}" for i in range(1000)
                       if partition_of(f"running-{i}".encode(), 4) == partition_of(ended.encode(), 4))
        mood = [(3000, {"fearful": 0.8})]
        later = synthetic_call(running, mood + mood, business_line="vip", end_of_call=False)
        publish_scores(kafka, synthetic_call(ended, mood, business_line="vip") + later[:-1])  # ended ...
        port = free_port()
        log_path = tmp_path / "logs" / "rules.log"
        with open(log_path, "ab") as out:
            proc = subprocess.Popen([sys.executable, "-c", RUN.format(file=str(VIP), port=port)], env=stack.env(),
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        stack.workers["rules"] = w = WorkerProc("rules", proc, log_path, port)
        group = f"{prefix}emowatch-rules-vip"
        wait_for_lag_zero(stack, group, [topics_for(kafka).scores], TIMEOUT)
        # ... and a later batch of the same partition (the retention has passed) deletes it
        publish_scores(kafka, later[-1:])
        wait_for_lag_zero(stack, group, [topics_for(kafka).scores], TIMEOUT)
        deadline = time.monotonic() + TIMEOUT
        while True:  # the web server starts after table recovery; lag zero means it is up or about to be
            try:
                metrics = urllib.request.urlopen(f"http://127.0.0.1:{w.http_port}/metrics", timeout=10).read().decode()
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert re.search(r"^emowatch_rules_calls_expired_total 1\.0$", metrics, re.M), metrics[-2000:]
        assert _status(w.http_port, f"/calls/{ended}") == 404
        assert _status(w.http_port, f"/calls/{running}") == 200
    finally:
        stack.stop()
