"""Fixtures for emowatch.models tests (defined in ``tests/model_fixtures.py``)."""

from model_fixtures import base_model, bundled_model, demo_dir, demo_model, funasr_scores, noise  # noqa: F401
