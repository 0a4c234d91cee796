"""The inference benchmark runs and its equivalence spot check holds."""

from __future__ import annotations

from emowatch.models.bench import bench_model


def test_bench_model_small(demo_model):
    r = bench_model(demo_model, n_windows=3, max_batch=2)
    assert r["windows"] == 3 and r["engine_windows_per_s"] > 0 and r["funasr_loop_windows_per_s"] > 0
    assert r["max_abs_prob_diff"] < 1e-4
