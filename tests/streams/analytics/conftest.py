"""The analytics tests' history (tests/analytics_history.py), written once per module."""
from __future__ import annotations

import pytest
from analytics_history import build_history


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    h = build_history(tmp_path_factory.mktemp("analytics"))
    yield h
    h.client.close()
