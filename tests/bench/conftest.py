"""Fixtures for the benchmark tests (defined in ``tests/model_fixtures.py``)."""

from model_fixtures import demo_dir, demo_model  # noqa: F401
