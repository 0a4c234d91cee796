"""The benchmarks' nearest-rank percentile (bench/stats.py)."""
from emowatch.bench.stats import percentile


def test_nearest_rank_percentiles_and_none_for_nothing():
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert [percentile(values, q) for q in (0.0, 0.5, 0.99, 1.0)] == [1.0, 3.0, 5.0, 5.0]
    assert percentile([7.0], 0.99) == 7.0 and percentile([], 0.5) is None
