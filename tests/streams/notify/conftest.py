"""Shared helpers for the notifier core's tests: Alert records and configs from YAML text."""
from __future__ import annotations

import textwrap

import pytest

from emowatch.streams.notify.config_loader import parse_config

T0 = 1_700_000_000_000  # a Tuesday, 2023-11-14 22:13:20 UTC


def alert(alert_id: str = "a1", status: str = "FIRING", **fields):
    record = {
        "alert_id": alert_id, "status": status, "rule_id": "angry-sustained", "rule_version": "v1",
        "rule_set": "default", "priority": "HIGH", "action": "ALERT", "business_line": "collections",
        "call_id": "12345", "role": "CUSTOMER", "emotions": ["angry"], "value": 0.92, "threshold": 0.75,
        "started_ms": 12_000, "fired_ms": 15_000, "event_time": T0, "channels": [],
        "labels": {"rule_name": "High customer anger"}, "replay_id": None, "trace_id": None,
    }
    record.update(fields)
    return record


def config(text: str, secrets=None, variables=None):
    return parse_config(textwrap.dedent(text), "notify.yaml", secrets=secrets, variables=variables)


@pytest.fixture(name="make_alert")
def make_alert_fixture():
    return alert


@pytest.fixture(name="make_config")
def make_config_fixture():
    return config


@pytest.fixture(name="t0")
def t0_fixture():
    return T0
