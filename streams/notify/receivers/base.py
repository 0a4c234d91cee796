"""Delivering one notification with retries, the receiver protocol, and error classification.

:func:`deliver` calls ``send(notification)`` until it succeeds, a permanent error occurs or
``max_attempts`` attempts have failed. Each attempt runs under ``timeout_s``; between attempts it
sleeps a "full jitter" exponential backoff, ``uniform(0, min(max_backoff_s, initial_backoff_s *
2**(attempt-1)))`` (``rng`` and ``sleep`` are injectable, so tests neither sleep nor guess), or the
server's ``Retry-After`` when a transient error carries one (``retry_after_s``, capped at
``max_backoff_s``). It returns a :class:`DeliveryResult`; on failure ``error`` says why, ready for
the dead-letter record.

Classification (:func:`classify`, :func:`http_status_error`): timeouts, connection errors, HTTP
5xx/408/429 (and SMTP 4xx, in ``email.py``) are transient; other HTTP 4xx, 3xx (redirects are
never followed: they could leave the allow-list), SMTP 5xx, TLS certificate failures and
allow-list refusals are permanent. Any other exception is a bug in a receiver and propagates.
"""
from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import aiohttp

from emowatch.streams.notify.model import (
    DeliveryError,
    Notification,
    PermanentDeliveryError,
    Rendered,
    TransientDeliveryError,
)
from emowatch.topics.errors import EmowatchError

__all__ = [
    "DeliveryResult",
    "Receiver",
    "ReceiverConfigError",
    "RetryPolicy",
    "classify",
    "deliver",
    "deliver_to",
    "http_status_error",
]

log = logging.getLogger("emowatch.notify.deliver")


class ReceiverConfigError(EmowatchError, ValueError):
    """A receiver's constructor arguments are unusable (raised at construction, never while sending)."""


@dataclass(frozen=True)
class DeliveryResult:
    """``ok``; ``attempts`` made (0 when skipped); ``error``: why the last attempt failed (None when
    ok); ``permanent``: the failure was permanent (not worth retrying later either);
    ``skipped``: not sent because the receiver does not want RESOLVED notifications."""

    ok: bool
    attempts: int
    error: str | None = None
    permanent: bool = False
    skipped: bool = False


@dataclass(frozen=True)
class RetryPolicy:
    """:func:`deliver`'s keyword arguments as one value (for configuration)."""

    max_attempts: int = 5
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    timeout_s: float = 10.0


@runtime_checkable
class Receiver(Protocol):
    """What every integration provides. ``send`` raises :class:`TransientDeliveryError` or
    :class:`PermanentDeliveryError` (messages free of secrets); ``close`` releases connections."""

    name: str
    kind: str
    send_resolved: bool

    async def send(self, notification: Notification, rendered: Rendered) -> None: ...

    async def close(self) -> None: ...


def http_status_error(status: int, what: str, retry_after: str | None = None) -> DeliveryError:
    """The error for a non-2xx HTTP ``status``: 5xx/408/429 transient, anything else permanent."""
    if status >= 500 or status in (408, 429):
        err = TransientDeliveryError(f"{what}: HTTP {status}")
        seconds = _retry_after_s(retry_after)
        if seconds is not None:
            err.retry_after_s = seconds
        return err
    if 300 <= status < 400:
        return PermanentDeliveryError(f"{what}: HTTP {status} (redirects are not followed)")
    return PermanentDeliveryError(f"{what}: HTTP {status}")


def _retry_after_s(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare, ignored (the backoff applies)


def classify(exc: BaseException) -> DeliveryError | None:
    """``exc`` as a delivery error (itself when it already is one), or None when it is not a
    delivery failure at all (a bug: the caller re-raises it)."""
    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return TransientDeliveryError(f"timed out ({type(exc).__name__})")
    if isinstance(exc, aiohttp.ClientError | ConnectionError | OSError):
        # No str(exc): library messages may contain the URL (and its token).
        return TransientDeliveryError(f"connection failed ({type(exc).__name__})")
    return None


def _backoff(attempt: int, policy: RetryPolicy, rng: random.Random, err: DeliveryError) -> float:
    cap = min(policy.max_backoff_s, policy.initial_backoff_s * 2 ** (attempt - 1))
    delay = rng.uniform(0.0, cap)
    hinted = getattr(err, "retry_after_s", None)
    if hinted is not None:
        delay = max(delay, min(float(hinted), policy.max_backoff_s))
    return delay


async def deliver(
    send: Callable[[Notification], Awaitable[None]],
    notification: Notification,
    *,
    max_attempts: int = 5,
    initial_backoff_s: float = 0.5,
    max_backoff_s: float = 30.0,
    timeout_s: float = 10.0,
    rng: random.Random | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    on_failure: Callable[[DeliveryError], object] | None = None,
) -> DeliveryResult:
    """Send ``notification`` with retries (see the module docstring); never raises a delivery error.
    ``on_failure(error)`` is called after each failed attempt (the notifier counts them)."""
    if max_attempts < 1:
        raise ReceiverConfigError(f"max_attempts must be >= 1, not {max_attempts}")
    policy = RetryPolicy(max_attempts, initial_backoff_s, max_backoff_s, timeout_s)
    rng = rng or random.Random()
    err: DeliveryError | None = None
    for attempt in range(1, max_attempts + 1):
        try:
            await asyncio.wait_for(send(notification), timeout=timeout_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - classified; anything unknown is re-raised below
            err = classify(exc)
            if err is None:
                raise
            if isinstance(exc, TimeoutError | asyncio.TimeoutError) and not isinstance(exc, DeliveryError):
                err = TransientDeliveryError(f"attempt timed out after {timeout_s:g}s")
            if on_failure is not None:
                on_failure(err)
        else:
            if attempt > 1:
                log.info("delivered to %s after %d attempts", notification.receiver, attempt)
            return DeliveryResult(ok=True, attempts=attempt)
        if isinstance(err, PermanentDeliveryError):
            log.warning("delivery to %s failed permanently: %s", notification.receiver, err)
            return DeliveryResult(ok=False, attempts=attempt, error=f"permanent: {err}", permanent=True)
        if attempt < max_attempts:
            delay = _backoff(attempt, policy, rng, err)
            log.warning("delivery to %s failed (attempt %d/%d), retrying in %.2fs: %s",
                        notification.receiver, attempt, max_attempts, delay, err)
            await sleep(delay)
    log.warning("delivery to %s gave up after %d attempts: %s", notification.receiver, max_attempts, err)
    return DeliveryResult(ok=False, attempts=max_attempts,
                          error=f"transient, gave up after {max_attempts} attempts: {err}")


async def deliver_to(
    receiver: Receiver,
    notification: Notification,
    rendered: Rendered,
    policy: RetryPolicy | None = None,
    *,
    rng: random.Random | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    on_failure: Callable[[DeliveryError], object] | None = None,
) -> DeliveryResult:
    """:func:`deliver` to ``receiver`` (``on_failure``: see there); a RESOLVED notification to a receiver with
    ``send_resolved`` False is skipped (``DeliveryResult(ok=True, attempts=0, skipped=True)``)."""
    if notification.status == "RESOLVED" and not receiver.send_resolved:
        return DeliveryResult(ok=True, attempts=0, skipped=True)
    p = policy or RetryPolicy()

    async def send(n: Notification) -> None:
        await receiver.send(n, rendered)

    return await deliver(send, notification, max_attempts=p.max_attempts, initial_backoff_s=p.initial_backoff_s,
                         max_backoff_s=p.max_backoff_s, timeout_s=p.timeout_s, rng=rng, sleep=sleep,
                         on_failure=on_failure)
