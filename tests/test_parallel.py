"""util/parallel.py: the one rule for grouping by bytes (byte_runs, batched_sizes)."""

from __future__ import annotations

from casstore.util.parallel import batched_sizes, byte_runs


def test_byte_runs_cut_at_gaps_and_at_the_limit() -> None:
    starts = [12, 20, 30, 1000, 1010, 5000]
    ends = [20, 30, 40, 1010, 3000, 9000]
    # gap 0: only touching spans share a run; limit 100: no run longer than that (a longer span alone)
    assert list(byte_runs(starts, ends, 100)) == [range(0, 3), range(3, 4), range(4, 5), range(5, 6)]
    # gap 1000: spans up to that far apart share a run, as long as it stays within the limit
    assert list(byte_runs(starts, ends, 3000, gap=1000)) == [range(0, 5), range(5, 6)]
    assert list(byte_runs([], [], 10)) == []


def test_batched_sizes_are_byte_runs_of_items_end_to_end() -> None:
    assert list(batched_sizes([64] * 10, 256)) == [range(0, 4), range(4, 8), range(8, 10)]
    assert list(batched_sizes([300, 10, 10], 256)) == [range(0, 1), range(1, 3)]  # a large item alone
    assert list(batched_sizes([], 256)) == []
