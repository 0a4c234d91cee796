"""A real Prometheus (Debian's `prometheus` binary, `make deps-system`) scrapes every worker of the local stack
during a run: the inference agent, a rules worker, the sink, the notifier and the gateway, each on its own
/metrics port. Every target is up, each worker's own metrics arrive (and move when calls flow), and
infra/prometheus/alerts.yml loads and evaluates against the live metric names without an error."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import polling
import pytest
import yaml

from emowatch.streams.kafka.audio_publisher import AudioPublisher
from emowatch.streams.local.broker import free_port
from emowatch.streams.local.demo import demo_model_dir, load_calls
from emowatch.streams.local.stack import LocalStack

pytestmark = pytest.mark.integration
PROMETHEUS = shutil.which("prometheus")
ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "infra" / "prometheus" / "alerts.yml"
DEADLINE_S = 120.0
# job (as in infra/prometheus/prometheus.yml) -> the worker's `emowatch worker` arguments
WORKERS = {"infer": ["infer"], "rules-default": ["rules", "--business-line", "*"], "sink": ["sink"],
           "notify": ["notify"], "gateway": ["gateway"]}
OWN_METRIC = {"infer": "emowatch_infer_received_total", "rules-default": "emowatch_rules_received_total",
              "sink": "emowatch_sink_received_total", "notify": "emowatch_notify_received_total",
              "gateway": "emowatch_gateway_received_total"}
# Labelled counters appear once a label set is used: no delivery happens in this run.
LABELLED_UNUSED = {"emowatch_notify_deliveries_total", "emowatch_notify_failed_attempts_total"}


def api(port: int, path: str, **params: str) -> dict | None:
    url = f"http://127.0.0.1:{port}/api/v1/{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            body = json.loads(resp.read())
    except (OSError, ValueError):
        return None
    return body["data"] if body.get("status") == "success" else None


def poll(fetch, what: str, check=lambda: None):
    """``fetch()`` until it returns something truthy, within DEADLINE_S; ``check()`` raises if a worker died."""
    return polling.poll(fetch, what, timeout=DEADLINE_S, check=check, interval=0.25)


def prometheus_config(stack: LocalStack) -> dict:
    return {"global": {"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{w.http_port}"]}]}
                               for job, w in stack.workers.items()]}


@pytest.fixture
def stack(broker, tmp_path, unique):
    s = LocalStack(data_dir=tmp_path / "stack", broker=broker, topic_prefix=f"pm{unique}.").start()
    model = {"EMOWATCH_MODEL__MODEL": str(demo_model_dir())}
    env = {"infer": model, "gateway": {"EMOWATCH_GATEWAY__ANALYZE": "false"},
           "notify": {"EMOWATCH_NOTIFY__CONFIG_FILE": str(ROOT / "infra" / "notify" / "compose.yaml")}}  # as compose
    try:
        for job, args in WORKERS.items():
            s.start_worker(job, args, env=env.get(job))
        yield s
    finally:
        s.stop()


@pytest.fixture
def prometheus(stack, tmp_path):
    if PROMETHEUS is None:
        pytest.skip("no prometheus binary on PATH: `make deps-system` installs Debian's prometheus package")
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(stack)))
    port = free_port()
    log = open(tmp_path / "prometheus.log", "wb")
    proc = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()

    def check() -> None:
        stack.check_workers()
        assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-3000:]

    try:
        yield port, check
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def alert_metric_names() -> set[str]:
    exprs = " ".join(r["expr"] for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"])
    return {n for n in re.findall(r"\bemowatch_[a-z0-9_]+", exprs) if not n.endswith("_")}


def test_prometheus_scrapes_every_worker_and_evaluates_the_alerting_rules(stack, prometheus):
    port, check = prometheus

    def all_up():
        targets = (api(port, "targets") or {}).get("activeTargets", [])
        return len(targets) == len(WORKERS) and all(t["health"] == "up" for t in targets) and targets

    targets = poll(all_up, "every worker's /metrics scraped", check)
    assert {t["labels"]["job"] for t in targets} == set(WORKERS)

    for job, metric in OWN_METRIC.items():
        poll(lambda job=job, metric=metric: (api(port, "query", query=f'{metric}{{job="{job}"}}') or {}).get("result"),
             f"{metric} of {job}", check)

    # A run: the bundled sample calls flow audio -> infer -> scores -> rules and sink; their counters move.
    AudioPublisher(stack.kafka_settings()).publish_calls(load_calls())
    for metric in ("emowatch_infer_sent_total", "emowatch_rules_received_total", "emowatch_sink_received_total"):
        poll(lambda metric=metric: (api(port, "query", query=f"sum({metric}) > 0") or {}).get("result"),
             f"{metric} > 0 in Prometheus", check)

    live = set(api(port, "label/__name__/values") or [])
    assert alert_metric_names() - live <= LABELLED_UNUSED, sorted(alert_metric_names() - live)

    def evaluated():
        rules = [r for g in (api(port, "rules") or {}).get("groups", []) for r in g["rules"]]
        return rules if rules and all(r.get("health") == "ok" for r in rules) else None

    rules = poll(evaluated, "every alerting rule evaluated", check)
    assert {r["name"] for r in rules} == {r["alert"] for g in yaml.safe_load(ALERTS.read_text())["groups"]
                                          for r in g["rules"]}
    assert all(not r.get("lastError") for r in rules)
    down = api(port, "query", query='ALERTS{alertname="EmowatchWorkerDown"}')
    assert down is not None and down["result"] == []
