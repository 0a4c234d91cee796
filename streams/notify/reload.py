"""Hot reload of the notifier's configuration (``docs/notify.md``, section 4).

:class:`FileWatch` notices a change of the config file or the secrets file (``os.stat``: mtime,
size, inode; checked every ``notify.reload_check_s``). :class:`ConfigReloader` loads and validates
the new configuration exactly like start-up (``load_config`` + ``build_receivers``), counts
``emowatch_notify_config_reloads_total{result}`` and keeps the last outcome for ``/health``; SIGHUP
asks for a reload too. :func:`reload_config` applies a valid one with a restart's guarantees: the
service stops taking alerts, finishes in-flight deliveries, commits, then rebuilds the dispatcher
(seeded from the notification log, silences and acks carried over), receivers and ledger, and
rewinds the consumer to its committed offsets. An invalid one is logged (``file:line: reason``,
error level) and the old configuration keeps running.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from emowatch.streams.kafka.notify_io import read_log, rewind_to_committed
from emowatch.streams.notify.config import NotifyConfig
from emowatch.streams.notify.config_loader import load_config
from emowatch.streams.notify.errors import NotifyConfigError
from emowatch.streams.notify.grouping import Dispatcher
from emowatch.streams.notify.ledger import DeliveryLedger
from emowatch.streams.notify.receivers.factory import Integration, build_receivers, close_all
from emowatch.streams.notify.secret_store import SecretStore
from emowatch.topics.errors import EmowatchError

__all__ = ["ConfigReloader", "FileWatch", "reload_config"]

log = logging.getLogger("emowatch.notify")
Stamp = tuple[int, int, int] | None


def stamp(path: Path) -> Stamp:
    """(mtime ns, size, inode) of a file; None when it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


class FileWatch:
    """Did any of ``paths`` change since the last look? Looks at most every ``interval_s``."""

    def __init__(self, paths: Iterable[Path | str], interval_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.paths = [Path(p) for p in paths]
        self.interval_s = interval_s
        self._clock = clock
        self._seen = self.stamps()
        self._next = clock() + interval_s

    def stamps(self) -> tuple[Stamp, ...]:
        return tuple(stamp(p) for p in self.paths)

    def changed(self) -> bool:
        now = self._clock()
        if now < self._next:
            return False
        self._next = now + self.interval_s
        current = self.stamps()
        if current == self._seen:
            return False
        self._seen = current
        return True


class ConfigReloader:
    def __init__(self, config_path: Path, secrets_file: Path | None, interval_s: float,
                 registry: CollectorRegistry, variables: Callable[[], Mapping[str, str]]) -> None:
        self.config_path = config_path
        self.secrets_file = secrets_file
        self.variables = variables
        self.watch = FileWatch([config_path, *([secrets_file] if secrets_file else [])], interval_s)
        self.requested = False  # set by SIGHUP
        self.m_reloads = Counter("emowatch_notify_config_reloads", "Configuration reloads by result",
                                 ["result"], registry=registry)
        self.last: dict[str, Any] = {"result": None, "at_ms": None, "errors": []}

    def request(self) -> None:
        self.requested = True

    def pending(self) -> bool:
        """A reload is due: SIGHUP, or a watched file changed."""
        hup, self.requested = self.requested, False
        return self.watch.changed() or hup

    def load(self) -> tuple[NotifyConfig, dict[str, list[Integration]]] | None:
        """The new configuration and its receivers; None (and logged, counted) when it is invalid."""
        try:
            secrets = SecretStore.from_file(self.secrets_file) if self.secrets_file else None
            config = load_config(self.config_path, secrets=secrets, variables=self.variables())
            return config, build_receivers(config)
        except NotifyConfigError as exc:
            errors = [str(e) for e in exc.errors] or [str(exc)]
        except EmowatchError as exc:  # secret file, receiver construction
            errors = [f"{self.config_path}: {exc}"]
        for line in errors:
            log.error("config reload failed: %s", line, extra={"config": str(self.config_path), "error": line})
        log.error("config reload failed: keeping the running configuration",
                  extra={"config": str(self.config_path), "errors": len(errors)})
        self._outcome("failed", errors)
        return None

    def _outcome(self, result: str, errors: list[str]) -> None:
        self.m_reloads.labels(result).inc()
        self.last = {"result": result, "at_ms": int(time.time() * 1000), "errors": errors}

    def status(self) -> dict[str, Any]:
        """For ``/health``: the last reload's result, time and errors (``file:line: reason``)."""
        return dict(self.last)


async def reload_config(n: Any) -> None:
    """Reload ``n`` (the running ``Notifier``) if its configuration changed (see the module docstring)."""
    loaded = n.reloader.load()
    if loaded is None:
        return
    config, receivers = loaded
    log.info("config reload: finishing in-flight deliveries", extra={"in_flight": len(n._tasks)})
    while n._tasks:
        await n._k(n.producer.poll, 0.05)
        await asyncio.sleep(0)
    await n._k(n.producer.flush, 30)
    await n._commit()
    entries = await n._k(read_log, n.s.kafka)
    dispatcher = Dispatcher(config)
    dispatcher.seed(entries)
    for silence in n.dispatcher.silences():
        dispatcher.add_silence(silence)
    for ack in n.dispatcher.acks():
        dispatcher.ack(ack)
    old = n.receivers
    with n._lock:
        n.config, n.receivers, n.dispatcher, n.ledger = config, receivers, dispatcher, DeliveryLedger()
    rewound = await n._k(rewind_to_committed, n.consumer)
    await close_all(old)
    n.reloader._outcome("ok", [])
    log.info("config reloaded", extra={"config": str(n.config_path), "routes": _count_routes(config.route),
                                       "receivers": len(receivers), "log_entries": len(entries),
                                       "partitions_rewound": rewound})


def _count_routes(route: Any) -> int:
    return 1 + sum(_count_routes(r) for r in (getattr(route, "routes", None) or ()))
