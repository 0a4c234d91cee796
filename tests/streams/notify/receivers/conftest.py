"""Fixtures of the receiver tests (the helpers live in tests/receiver_helpers.py)."""
from receiver_helpers import http_sink, no_sleep, self_signed  # noqa: F401 - fixtures
