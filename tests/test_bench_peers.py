"""benchmarks/bench_peers.py runs (``--quick``): every row of issue 26 it prints, the targets, and its chart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_bench_peers_quick_prints_every_row_of_issue_26_its_targets_and_a_chart(tmp_path: Path) -> None:
    chart = tmp_path / "peers.png"
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_peers.py"), "--quick", "--small", "5",
                        "--tools", "casstore,restic", "--work", str(tmp_path / "work"), "--chart", str(chart)],
                       capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0, p.stderr
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in p.stdout.splitlines()
            if line.startswith("| ")}
    # the issue's table, its target 4 (git transports against DVC's path remote) and target 5 (small models)
    timed = ["W2 commit", "W2 restore (download)", "W2 push to a path remote", "W2 fresh pull + restore",
             "bf16 safetensors 8 MiB: restore", "10 % scattered change: v2 commit",
             *(f"W2 {step} over {kind}" for kind in ("git://", "http", "ssh")
               for step in ("push", "fresh pull + restore")),
             "small models: all commits, one process each"]
    for row in timed:
        assert row in rows, p.stdout
        wall, cpu = rows[row][1].split(" / ")  # casstore's "wall s / CPU s"
        assert float(wall) > 0 and float(cpu) > 0, rows[row]
    for row in ("10 % scattered change: bytes added MiB", "small models: ms per commit, one process each",
                "small models, one open store: ms per commit"):
        assert row in rows, p.stdout
    if os.path.exists("/usr/bin/restic"):
        assert rows["small models: ms per commit, one process each"][2].strip().isdigit()  # restic's
        assert "1. W2 fresh pull + restore, CPU / best peer's" in rows, p.stdout
        assert "5. small models, one process each: ms per commit / best peer's" in rows, p.stdout
    assert "zstd -3 -T2 of W2" in p.stdout
    assert chart.exists() or chart.with_suffix(".svg").exists()
    assert "5 small files" in p.stdout
    saved = json.loads((tmp_path / "work" / "peers" / "results_peers.json").read_text())  # --quick: not benchmarks/
    assert saved["bf16_mib"] == 8 and "W2 push over ssh s" in saved["results"]
