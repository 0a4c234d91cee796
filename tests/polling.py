"""Polling with a deadline (tests never sleep to synchronise)."""
from __future__ import annotations

import time


def poll(fetch, what: str, *, timeout: float, check=lambda: None, interval: float = 0.1):
    """``fetch()`` until it returns something truthy (returned), within ``timeout`` seconds, else TimeoutError;
    ``check()`` runs first in every round (e.g. raises when a worker process died)."""
    deadline = time.monotonic() + timeout
    while True:
        check()
        got = fetch()
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not within {timeout} s")
        time.sleep(interval)  # polling interval of a deadline loop
