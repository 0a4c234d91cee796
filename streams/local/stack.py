"""The embedded local stack: broker + topics + worker processes, started and stopped as one.

Workers run as child processes of this one (``python -m emowatch.streams.cli worker ...``)
with their settings in EMOWATCH_* variables, exactly as they would run in production.
Everything is stopped on exit, on Ctrl-C and on errors: no stray processes.
"""
from __future__ import annotations

import atexit
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from emowatch.streams.local.broker import LocalBroker, free_port

log = logging.getLogger(__name__)
# The local stack's fetch wait for the benches: lowest per-hop latency on tansu (~10 ms), more broker CPU
LOW_LATENCY_FETCH_WAIT_MS = 25


def _get_json(url: str) -> dict | None:
    """The JSON of a 200 answer, else None (not up yet, or unhealthy)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return json.loads(resp.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None


@dataclass
class WorkerProc:
    name: str
    proc: subprocess.Popen
    log_path: Path
    http_port: int

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


@dataclass
class LocalStack:
    data_dir: Path
    partitions: int = 4
    topic_prefix: str = ""
    session_timeout_ms: int = 6000
    # EMOWATCH_KAFKA__FETCH_WAIT_MAX_MS of every worker; None: the production default (KafkaSettings, 100 ms). On
    # tansu a consumer's idle fetches cost the broker CPU in proportion to 1/wait: an idle stack of agent, rules
    # worker and sink took 24 % of a core at 25 ms and 9 % at 100 ms, for ~7 ms more latency per hop (docs/
    # benchmarks.md, "make test"). The benches pass LOW_LATENCY_FETCH_WAIT_MS, the setting they were measured at.
    fetch_wait_max_ms: int | None = None
    broker: LocalBroker | None = None
    workers: dict[str, WorkerProc] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    _owns_broker: bool = field(default=False, init=False)

    @property
    def bootstrap(self) -> str:
        assert self.broker is not None
        return self.broker.bootstrap_servers

    def env(self, **more: str) -> dict[str, str]:
        """EMOWATCH_* settings shared by every worker of this stack."""
        base = {k: v for k, v in os.environ.items() if not k.upper().startswith("EMOWATCH_")}
        base.update({
            "EMOWATCH_KAFKA__BOOTSTRAP_SERVERS": self.bootstrap,
            "EMOWATCH_KAFKA__PARTITIONS": str(self.partitions),
            "EMOWATCH_KAFKA__TOPIC_PREFIX": self.topic_prefix,
            "EMOWATCH_KAFKA__SESSION_TIMEOUT_MS": str(self.session_timeout_ms),
            "EMOWATCH_SINK__DATA_DIR": str(self.data_dir),
            # Faust's default datadir is "<app id>-data" relative to the working directory
            # (the repository root in tests, wherever `emowatch demo` was run): keep it in data_dir.
            "APP_DATADIR": self.faust_datadir(),
            "PYTHONUNBUFFERED": "1",
        })
        if self.fetch_wait_max_ms is not None:  # tansu holds a fetch up to this
            base["EMOWATCH_KAFKA__FETCH_WAIT_MAX_MS"] = str(self.fetch_wait_max_ms)
        base.update(self.extra_env)
        base.update(more)
        return base

    def faust_datadir(self) -> str:
        """Faust's ``datadir`` for rules workers of this stack (its APP_DATADIR variable): one folder
        per app id under ``data_dir/faust``, absolute, with ``{`` escaped (Faust formats the value)."""
        root = str(Path(self.data_dir).resolve() / "faust").replace("{", "{{").replace("}", "}}")
        return root + "/{conf.name}-data"

    def kafka_settings(self):
        """KafkaSettings matching what this stack's workers get (for producers/readers in-process)."""
        from emowatch.streams.settings import KafkaSettings

        wait = {} if self.fetch_wait_max_ms is None else {"fetch_wait_max_ms": self.fetch_wait_max_ms}
        return KafkaSettings(bootstrap_servers=self.bootstrap, partitions=self.partitions,
                             topic_prefix=self.topic_prefix, session_timeout_ms=self.session_timeout_ms, **wait)

    def start(self, create_topics: bool = True) -> LocalStack:
        from emowatch.streams.kafka.admin import ensure_topics
        from emowatch.topics.registry import Topics

        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "logs").mkdir(exist_ok=True)
        (self.data_dir / "faust").mkdir(exist_ok=True)  # Faust creates only the last level of its datadir
        if self.broker is None:  # else: share a running broker (tests), with this stack's topic prefix
            self.broker = LocalBroker(log_path=self.data_dir / "logs" / "broker.log").start()
            self._owns_broker = True
        atexit.register(self.stop)
        if create_topics:
            report = ensure_topics(self.bootstrap, Topics(prefix=self.topic_prefix, partitions=self.partitions))
            if report.problems:
                raise RuntimeError("topic check failed: " + "; ".join(report.problems))
        return self

    def start_worker(self, name: str, args: list[str], env: dict[str, str] | None = None,
                     port: int | None = None) -> WorkerProc:
        """Start ``emowatch worker <args>`` as a child process logging to data_dir/logs/<name>.log;
        its web server listens on ``port`` (default: a free one)."""
        port = port or free_port()
        log_path = self.data_dir / "logs" / f"{name}.log"
        out = open(log_path, "ab")
        cmd = [sys.executable, "-m", "emowatch.streams.cli", "worker", *args, "--http-port", str(port)]
        proc = subprocess.Popen(cmd, env=self.env(**(env or {})), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        w = self.workers[name] = WorkerProc(name, proc, log_path, port)
        log.info("worker started", extra={"worker": name, "pid": proc.pid})
        return w

    def stop_worker(self, name: str, *, kill: bool = False, timeout_s: float = 30.0) -> int | None:
        """SIGTERM (graceful drain) or SIGKILL (crash simulation); returns the exit code."""
        w = self.workers.pop(name, None)
        if w is None:
            return None
        if w.alive():
            try:
                os.killpg(w.proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                w.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(w.proc.pid, signal.SIGKILL)
                w.proc.wait(timeout=10)
        return w.proc.returncode

    def wait_healthy(self, name: str, timeout_s: float = 120.0, ready=lambda health: True) -> dict:
        """Poll the worker's ``/health`` until it answers 200 and ``ready(health)``; its JSON."""
        w = self.workers[name]
        deadline = time.monotonic() + timeout_s
        while True:
            self.check_workers()
            health = _get_json(f"http://127.0.0.1:{w.http_port}/health")
            if health is not None and ready(health):
                return health
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker {name} not healthy within {timeout_s} s:\n{w.tail()}")
            time.sleep(0.2)  # polling interval of a deadline loop

    def check_workers(self) -> None:
        """Raise if a worker died unexpectedly, with the end of its log."""
        for w in self.workers.values():
            if not w.alive():
                raise RuntimeError(f"worker {w.name} exited with {w.proc.returncode}:\n{w.tail()}")

    def stop(self) -> None:
        for name in list(self.workers):
            self.stop_worker(name)
        if self.broker is not None and self._owns_broker:
            self.broker.stop()
            self.broker = None

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
