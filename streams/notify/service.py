"""Notifier service (``emowatch worker notify``): alerts topic -> Dispatcher -> receivers.

One consumer group (``notify.group_id``) reads the alerts topic. Bad records, and bad silences and acks (by every
instance at each start: it reads them whole), are dead-lettered (stage DECODE, original bytes kept); replay alerts
(``replay_id`` set) never notify. An asyncio loop owns the :class:`Dispatcher`; every Kafka call runs on one
dedicated thread (a one-thread executor), so the loop never blocks on the broker. Due notifications are delivered
concurrently (at most ``max_in_flight``) to every integration of their receiver (``receivers/factory.py``).

Per notification: all integrations OK -> the ``NotificationLogEntry`` is produced to the
notification log (key ``log_key``) and acknowledged by the broker, then ``mark_sent``. Any
integration failing permanently or after its retries -> a DeadLetter (stage SEND; key and value =
the original Alert record of the notification's first alert, the reason names the integration
and the notification's idempotency key) then ``mark_failed`` (the group's next tick sends it
again, to every integration, same idempotency key).

**Delivery guarantee** (``ledger.py``): an alert's offset is committed only once every
notification that includes it was delivered and logged, or dead-lettered (or it joined no group,
or was suppressed). At start the notification log is read whole and seeded, and the silences and
acks topics are read to their end, before any alert is consumed; then they are followed. So a
crash re-delivers at most the notifications in flight (same ``Idempotency-Key``). SIGTERM: stop
consuming, finish in-flight deliveries, flush, commit, exit 0. Config hot reload: ``reload.py``.
"""
from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Message, TopicPartition

from emowatch.streams.kafka.clients import make_consumer, make_producer, serde_for, topics_for
from emowatch.streams.kafka.dead_letters import DeadLetters, source_of
from emowatch.streams.kafka.lag import LagMeter
from emowatch.streams.kafka.notify_io import ControlFollower, read_log
from emowatch.streams.notify.config_loader import environment_variables, load_config
from emowatch.streams.notify.errors import InvalidAlertError, MatcherError
from emowatch.streams.notify.grouping import Dispatcher
from emowatch.streams.notify.ledger import DeliveryLedger
from emowatch.streams.notify.metrics import NotifyMetrics
from emowatch.streams.notify.model import Notification, NotificationLogEntry
from emowatch.streams.notify.receivers.base import DeliveryResult, deliver_to
from emowatch.streams.notify.receivers.factory import Integration, build_receivers, close_all
from emowatch.streams.notify.records import ack_from_record, silence_from_record
from emowatch.streams.notify.reload import ConfigReloader, reload_config
from emowatch.streams.notify.secret_store import SecretStore
from emowatch.streams.notify.templates import render_for
from emowatch.streams.observability import HealthServer, StageMetrics
from emowatch.streams.settings import Settings
from emowatch.topics.dlq import Source
from emowatch.topics.errors import DeadLetterError
from emowatch.topics.serde import SerdeError, encode_key

log = logging.getLogger("emowatch.notify")
MAX_ORIGINS = 200_000
COMMIT_EVERY_S = 0.1


def now_ms() -> int:
    return int(time.time() * 1000)


class Notifier:
    def __init__(self, settings: Settings, *, config_path: str | Path | None = None,
                 stop: threading.Event | None = None, max_in_flight: int = 64) -> None:
        self.s = settings
        self.stop_event = stop or threading.Event()
        self.topics = topics_for(settings.kafka)
        self.config_path = Path(config_path or settings.notify.config_path())
        ns = settings.notify
        secrets = SecretStore.from_file(ns.secrets_file) if ns.secrets_file else None
        self.config = load_config(self.config_path, secrets=secrets, variables=environment_variables(os.environ))
        self.receivers = build_receivers(self.config)
        self.dispatcher = Dispatcher(self.config)
        self.ledger = DeliveryLedger()
        self.max_in_flight = max_in_flight
        self.alert_serde = serde_for(settings.kafka, "Alert")
        self.log_serde = serde_for(settings.kafka, "NotificationLog")
        self.consumer = make_consumer(settings.kafka, ns.group_id)
        self.producer = make_producer(settings.kafka)
        self.control: ControlFollower | None = None
        m = self.metrics = StageMetrics("notify")
        self.dlq = DeadLetters(settings.kafka, self.topics.dlq, ns.group_id, metrics=m, producer=self.producer)
        self.nm = NotifyMetrics(m)
        self.reloader = ConfigReloader(self.config_path, ns.secrets_file, ns.reload_check_s, m.registry,
                                       lambda: environment_variables(os.environ))
        self.lag = LagMeter()  # measured on the Kafka thread (_poll_once)
        self._origins: dict[str, tuple[Source, int]] = {}  # alert_id -> (latest event as read, its topic time ms)
        self._tasks: set[asyncio.Task] = set()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()  # the ledger is touched by the loop and by rebalance callbacks
        self._kx = ThreadPoolExecutor(1, thread_name_prefix="notify-kafka")  # every Kafka call runs here
        self._loop: asyncio.AbstractEventLoop | None = None
        self.fatal: str | None = None
        self.ready = False
        self._last_commit = 0.0
        self.assigned: set[tuple[str, int]] = set()  # alerts partitions this instance owns
        self.delivered = 0
        self.acks_applied = 0
        self._bad: list[tuple[Message, DeadLetterError]] = []  # dead letters to send before the next commit
        self.http: HealthServer | None = None

    # -- health -----------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        status = "failing" if self.fatal else "ok" if self.ready else "starting"
        return {"status": status, "error": self.fatal, "config_file": str(self.config_path),
                "receivers": {name: [i.label for i in ints] for name, ints in self.receivers.items()},
                "groups": self.dispatcher.group_count, "silences": len(self.dispatcher.silences()),
                "acks": self.acks_applied, "config_reload": self.reloader.status(),
                "in_flight_notifications": len(self._tasks), "pending_alerts": self.ledger.in_flight(),
                "assigned_partitions": len(self.assigned), "consumer_lag": self.lag.value}

    # -- run --------------------------------------------------------------------------------------

    def run(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: self.stop_event.set())
            signal.signal(signal.SIGINT, lambda *_: self.stop_event.set())
            signal.signal(signal.SIGHUP, lambda *_: self.reloader.request())  # reload the configuration
        ns = self.s.notify
        self.http = HealthServer(ns.http_port, self.metrics.registry, self.health, host=ns.http_bind).start()
        log.info("notifier starting", extra={"config": str(self.config_path), "http_port": self.http.port,
                                             "receivers": sorted(self.receivers)})
        try:
            asyncio.run(self._run())
        finally:
            self._kx.shutdown(wait=True)
            self.http.stop()
        if self.fatal:
            raise RuntimeError(self.fatal)

    async def _k(self, fn, *args, **kwargs):
        """Run a Kafka call on the Kafka thread."""
        return await asyncio.get_running_loop().run_in_executor(self._kx, functools.partial(fn, *args, **kwargs))

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._sem = asyncio.Semaphore(self.max_in_flight)
        try:
            entries = await self._k(read_log, self.s.kafka)
            self.dispatcher.seed(entries)
            self.control = await self._k(ControlFollower, self.s.kafka, on_rejected=lambda *bad: self._bad.append(bad))
            for item in await self._k(self.control.read_to_end):
                self._apply_control(*item)
            await self._k(self.consumer.subscribe, [self.topics.alerts], on_revoke=self._on_revoke,
                          on_lost=self._on_lost, on_assign=lambda _c, ps: self.assigned.update(
                              (p.topic, p.partition) for p in ps))
            self.ready = True
            log.info("notifier ready", extra={"log_entries": len(entries), "silences": len(self.dispatcher.silences()),
                                              "topic": self.topics.alerts})
            while not self.stop_event.is_set() and not self.fatal:
                wake = self.dispatcher.next_wakeup()
                timeout = 0.05 if wake is None else max(0.0, min(0.05, (wake - now_ms()) / 1000))
                msgs, controls = await self._k(self._poll_once, timeout)
                for msg in msgs:
                    self._on_alert(msg)
                for item in controls:
                    self._apply_control(*item)
                self._dispatch()
                self._report_suppressed()
                await self._commit(final=False)
                if self.reloader.pending():
                    await reload_config(self)
            await self._drain()
        finally:
            await self._k(self._close)
            await close_all(self.receivers)

    def _poll_once(self, timeout: float) -> tuple[list[Message], list]:
        msgs = []
        first = self.consumer.poll(timeout)
        if first is not None:
            msgs = [first, *self.consumer.consume(num_messages=999, timeout=0)]
        controls = self.control.poll(0) if self.control else []
        self.producer.poll(0)
        if self.lag.maybe_measure(self.consumer, self.assigned, self._done_position) is not None:
            self.metrics.lag.set(self.lag.value)  # alerts not delivered (or dead-lettered) yet count
        return msgs, controls

    def _done_position(self, topic: str, partition: int) -> int | None:
        with self._lock:
            return self.ledger.offsets.position(topic, partition)

    async def _drain(self) -> None:
        log.info("notifier stopping: finishing in-flight deliveries", extra={"in_flight": len(self._tasks)})
        while self._tasks:
            await self._k(self.producer.poll, 0.05)
            await asyncio.sleep(0)
        await self._k(self.producer.flush, 30)
        await self._commit()

    def _close(self) -> None:
        self.consumer.close()
        if self.control:
            self.control.close()

    # -- input ------------------------------------------------------------------------------------

    def _on_alert(self, msg: Message) -> None:
        if msg.error():
            if msg.error().code() != KafkaError._PARTITION_EOF:
                log.warning("consumer error", extra={"error": str(msg.error())})
            return
        self.metrics.received.inc()
        topic, part, off = msg.topic(), msg.partition(), msg.offset()
        try:
            alert = self.alert_serde.decode(msg.value(), topic=topic, partition=part, offset=off)
            if alert.get("replay_id") is not None:
                self.nm.replays.inc()
                keys: list[str] = []
            else:
                keys = self.dispatcher.add(alert, now_ms())
                self._remember(alert["alert_id"], msg)
        except (SerdeError, InvalidAlertError, KeyError, TypeError, ValueError) as exc:
            self._bad.append((msg, DeadLetterError("DECODE", f"not a notifiable Alert: {exc}", cause=exc)))
            keys = []
        with self._lock:
            self.ledger.received(topic, part, off, keys)

    def _remember(self, alert_id: str, msg: Message) -> None:
        self._origins.pop(alert_id, None)
        self._origins[alert_id] = (source_of(msg), msg.timestamp()[1])
        if len(self._origins) > MAX_ORIGINS:
            self._origins.pop(next(iter(self._origins)))

    def _apply_control(self, logical: str, key: str, record: dict | None, msg: Message) -> None:
        try:
            if logical == "silences":
                silence = silence_from_record(record) if record is not None else None
                if silence is None:
                    self.dispatcher.remove_silence(key)
                else:
                    self.dispatcher.add_silence(silence)
            elif record is not None:
                self.dispatcher.ack(ack_from_record(record))
                self.acks_applied += 1
        except (MatcherError, KeyError, TypeError, ValueError) as exc:  # dead-lettered, and ignored
            self._bad.append((msg, DeadLetterError("DECODE", f"not a valid {logical} record: {exc}", cause=exc)))

    def _report_suppressed(self) -> None:
        for s in self.dispatcher.drain_suppressed():
            kind = s.reason.split(":", 1)[0]
            self.nm.suppressed.labels(kind).inc()
            call_id = self._call_id(s.alert_id)
            log.info("suppressed", extra={"alert_id": s.alert_id, "reason": s.reason, "receiver": s.receiver,
                                          "status": s.status, "group_key": s.group_key, "call_id": call_id})

    def _call_id(self, alert_id: str) -> str | None:
        origin = self._origins.get(alert_id)
        return origin[0].key.decode("utf-8", "replace") if origin and origin[0].key else None

    # -- delivery ---------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        now = now_ms()
        wake = self.dispatcher.next_wakeup()
        if wake is None or wake > now:
            return
        pairs = []
        for n in self.dispatcher.due(now):
            nid = next(self._ids)
            pairs.append((nid, n.group_key))
            task = asyncio.ensure_future(self._deliver(nid, n))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        with self._lock:
            self.ledger.flushed(self.dispatcher.flushed_keys(), pairs)

    async def _deliver(self, nid: int, n: Notification) -> None:
        try:
            integrations = self.receivers.get(n.receiver, [])
            async with self._sem:
                results = await asyncio.gather(*(self._send(i, n) for i in integrations))
            failed = [(i, r) for i, r in zip(integrations, results, strict=True) if not r.ok]
            if failed:
                self.dispatcher.mark_failed(n, now_ms())
                await self._dead_letter(n, failed)
            else:
                entry = self.dispatcher.mark_sent(n, now_ms())
                await self._log_entry(entry)
                self.delivered += 1
                self.metrics.sent.inc()
                self.nm.sent(n, self._origins, now_ms())
            with self._lock:
                self.ledger.finished(nid)
        except Exception as exc:  # noqa: BLE001 - the offsets stay uncommitted; stop rather than lose the alert
            self.fatal = f"delivering {n.idempotency_key} failed: {type(exc).__name__}: {exc}"
            log.error("notifier failing", extra={"error": self.fatal})

    async def _send(self, integration: Integration, n: Notification) -> DeliveryResult:
        if n.status == "FIRING" and not integration.send_resolved:
            n = replace(n, alerts=tuple(a for a in n.alerts if a["status"] != "RESOLVED"))
        rendered = render_for(self.config, n, integration.kind)
        label = f"{integration.kind}[{integration.index}]"
        result = await deliver_to(integration.sender, n, rendered, integration.policy,
                                  on_failure=lambda _err: self.nm.attempt_failed(n.receiver, label))
        self.nm.delivered(n.receiver, label, result)
        if result.ok and not result.skipped:
            log.info("delivered", extra={"receiver": integration.label, "status": n.status, "group_key": n.group_key,
                                         "alerts": len(n.alerts), "attempts": result.attempts, "repeat": n.repeat,
                                         "idempotency_key": n.idempotency_key,
                                         "call_id": n.alerts[0].get("call_id") if n.alerts else None})
        return result

    async def _acked_produce(self, topic: str, key: bytes | None, value: bytes) -> None:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()

        def done(err, _msg) -> None:
            loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(err))

        await self._k(self._produce, topic, key, value, done)
        err = await fut
        if err is not None:
            raise RuntimeError(f"the broker refused a record for {topic}: {err}")

    def _produce(self, topic: str, key: bytes | None, value: bytes, cb) -> None:
        while True:
            try:
                self.producer.produce(topic, key=key, value=value, on_delivery=cb)
                return
            except BufferError:
                self.producer.poll(0.1)

    async def _log_entry(self, entry: NotificationLogEntry) -> None:
        topic = self.topics.notifications
        await self._acked_produce(topic, encode_key(entry.log_key), self.log_serde.encode(entry.to_record(),
                                                                                            topic=topic))

    async def _dead_letter(self, n: Notification, failed: list[tuple[Integration, DeliveryResult]]) -> None:
        first = n.alerts[0]["alert_id"] if n.alerts else ""
        origin = self._origins.get(first)
        source = origin[0] if origin else Source(self.topics.alerts, None, None, None, None)
        reason = "; ".join(f"{i.label}: {r.error}" for i, r in failed)
        error = DeadLetterError("SEND", f"notification {n.idempotency_key} ({n.status}, {len(n.alerts)} alerts, "
                                        f"group {n.group_key}) not delivered: {reason}")
        key, value = self.dlq.encode(source, error, call_id=n.alerts[0].get("call_id") if n.alerts else None)
        await self._acked_produce(self.dlq.topic, key, value)

    # -- offsets ----------------------------------------------------------------------------------

    async def _commit(self, final: bool = True) -> None:
        """Commit the done prefix: in the loop asynchronously and at most every COMMIT_EVERY_S (a
        synchronous commit per loop held up polling: p99 158 -> see docs/benchmarks.md); ``final``
        (drain, reload) synchronously."""
        if not (final or self._bad) and time.monotonic() - self._last_commit < COMMIT_EVERY_S:
            return
        bad, self._bad, self._last_commit = self._bad, [], time.monotonic()
        with self._lock:
            positions = self.ledger.committable()
        if positions or bad:
            await self._k(self._commit_sync, positions, bad, not final)

    def _commit_sync(self, positions: dict[tuple[str, int], int], bad: list, asynchronous: bool = False) -> None:
        for msg, error in bad:
            call_id = msg.key().decode("utf-8", "replace") if msg.key() and msg.topic() == self.topics.alerts else None
            self.dlq.send(msg, error, call_id=call_id)
        if bad:
            self.producer.flush(30)  # dead letters are acked before their offsets are committed
        if not positions:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=asynchronous)
        except Exception as exc:  # noqa: BLE001 - a lost generation: the next owner re-reads them
            log.warning("commit failed", extra={"error": str(exc)})

    def _on_revoke(self, consumer, partitions) -> None:  # on the Kafka thread, inside poll()
        offsets = []
        with self._lock:
            for p in partitions:
                pos = self.ledger.offsets.position(p.topic, p.partition)
                if pos is not None:
                    offsets.append(TopicPartition(p.topic, p.partition, pos))
                self.ledger.forget(p.topic, p.partition)
                self.assigned.discard((p.topic, p.partition))
        if offsets:
            try:
                consumer.commit(offsets=offsets, asynchronous=False)
            except Exception as exc:  # noqa: BLE001
                log.warning("commit on revoke failed", extra={"error": str(exc)})

    def _on_lost(self, consumer, partitions) -> None:
        with self._lock:
            for p in partitions:
                self.ledger.forget(p.topic, p.partition)
                self.assigned.discard((p.topic, p.partition))
