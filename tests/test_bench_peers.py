"""benchmarks/bench_peers.py runs (``--quick``): every row it prints, the small-models rows, and its chart."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_bench_peers_quick_prints_the_small_models_rows_and_a_chart(tmp_path: Path) -> None:
    chart = tmp_path / "peers.png"
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_peers.py"), "--quick", "--tools",
                        "casstore,restic", "--work", str(tmp_path / "work"), "--chart", str(chart)],
                       capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0, p.stderr
    rows = {line.split(" | ")[0].strip("| "): line for line in p.stdout.splitlines() if line.startswith("| ")}
    for row in ("W2 commit s", "W2 fresh pull+restore CPU s", "W3 bytes added MiB", "small files: total s",
                "small files: ms per commit", "small files, one open store: ms per commit"):
        assert row in rows, p.stdout
    if os.path.exists("/usr/bin/restic"):
        cells = rows["small files: ms per commit"].split(" | ")
        assert all(c.strip().isdigit() for c in cells[1:3]), rows["small files: ms per commit"]  # casstore, restic
    assert chart.exists() or chart.with_suffix(".svg").exists()
    assert "20 small files" in p.stdout
