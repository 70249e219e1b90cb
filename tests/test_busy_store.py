"""Maintenance on a store in use: gc's report, gc against steady writers, fsck during commits.

Issue 21 items 7-9.  The concurrency tests run real ``cas`` processes against one store,
bounded in count and time, and poll with timeouts (never assert at once).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import casstore
from tests.conftest import write_random
from tests.test_cli import cas

# -- item 9: gc says what the grace period kept, and grace= works from Python -------


def test_gc_after_rm_says_what_the_grace_period_kept(tmp_path: Path) -> None:
    """Regression: `cas gc` after `cas rm` printed "freed 0 B" and nothing about why."""
    store = tmp_path / "store"
    cas("init", str(store))
    f = tmp_path / "model.onnx"
    write_random(f, 300_000)
    cas("commit", "fraud", str(f), "--id", "v1", store=store)
    cas("rm", "fraud", "v1", store=store)
    r = cas("gc", store=store)
    lines = r.stdout.splitlines()
    assert lines[0].endswith("freed 0 B"), r.stdout
    m = lines[1]
    assert m.startswith("kept ") and "unreachable objects" in m and "younger than the grace period (2w)" in m, m
    assert "KiB" in m and "`cas gc --grace now` frees them now" in m, m
    doc = json.loads(cas("gc", "--grace", "1d", "--json", store=store).stdout)
    assert doc["objects_kept_young"] > 0 and doc["bytes_kept_young"] >= 250_000, doc
    assert doc["grace_period"] == 86400 and doc["bytes_freed"] == 0
    # following the advice frees it, and then nothing more is kept
    r = cas("gc", "--grace", "now", store=store)
    assert "kept" not in r.stdout and not r.stdout.endswith("freed 0 B\n"), r.stdout
    assert json.loads(cas("gc", "--grace", "never", "--json", store=store).stdout)["grace_period"] is None


def test_store_gc_takes_grace_as_the_cli_names_it(store: casstore.Store, tmp_path: Path) -> None:
    """Regression: ``store.gc(grace=...)`` raised TypeError (the parameter was grace_period only)."""
    f = tmp_path / "m.bin"
    write_random(f, 100_000)
    store.commit_models("d", model=str(f), model_id="v1")
    store.delete_model("d", "v1")
    kept = store.gc(grace="2w")
    assert kept.objects_removed == 0 and kept.objects_kept_young > 0 and kept.bytes_kept_young >= 90_000
    assert store.gc(grace=math.inf).objects_kept_young == kept.objects_kept_young
    assert store.gc(grace_period=3600.0).objects_removed == 0  # the old name still works
    with pytest.raises(TypeError, match="not both"):
        store.gc(grace=0, grace_period=0)
    freed = store.gc(grace="now")
    assert freed.objects_removed == kept.objects_kept_young and freed.objects_kept_young == 0
    assert store.fsck().ok
