"""The stuck-commit detector (pure): a gap after the committed offset seen twice with no commit in between."""
from __future__ import annotations

from emowatch.streams.rules_worker.commit_stall import StallDetector, gap_after_commit


def test_gap_after_commit_is_faust_s_refusal_condition() -> None:
    assert gap_after_commit([10, 11, 12], 10) is None   # contiguous: Faust commits 13
    assert gap_after_commit([11, 12], 10) is None       # a gap of one is tolerated by Faust too
    assert gap_after_commit([14, 12, 13], 10) == 12     # 10 and 11 never acknowledged: stuck
    assert gap_after_commit([], 10) is None
    assert gap_after_commit([5, 6], None) is None       # nothing committed yet: Faust commits from the acks


def test_a_partition_is_stalled_only_when_the_gap_persists_without_a_commit() -> None:
    d = StallDetector()
    assert d.observe({"p0": [14, 15], "p1": [3]}, {"p0": 10, "p1": 3}) == {}  # first sighting: maybe in flight
    assert d.observe({"p0": [14, 15, 16], "p1": [3, 4]}, {"p0": 10, "p1": 3}) == {"p0": (10, 14)}
    # reported once; a new sighting starts the count again
    assert d.observe({"p0": [14, 15, 16]}, {"p0": 10}) == {}
    assert d.observe({"p0": [14, 15, 16]}, {"p0": 10}) == {"p0": (10, 14)}


def test_progress_between_observations_is_not_a_stall() -> None:
    d = StallDetector()
    assert d.observe({"p0": [20, 21]}, {"p0": 15}) == {}
    assert d.observe({"p0": [30, 31]}, {"p0": 25}) == {}  # it committed meanwhile: a new, transient gap
    assert d.observe({"p0": [26]}, {"p0": 25}) == {}      # gap closed
    assert d.observe({"p0": [26]}, {"p0": 25}) == {}
