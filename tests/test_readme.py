"""The README's Python snippet runs as written, top to bottom."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import casstore
from tests.conftest import REPO

MARKER = "<!-- tests/test_readme.py runs the python block below"


def marked_blocks(text: str) -> list[str]:
    """The fenced python blocks that directly follow a marker comment."""
    return re.findall(re.escape(MARKER) + r"[^\n]*\n```python\n(.*?)```", text, flags=re.S)


def test_readme_python_snippet_runs(tmp_path: Path) -> None:
    blocks = marked_blocks((REPO / "README.md").read_text())
    assert len(blocks) == 1 and "store.commit_models(" in blocks[0]
    env = {**os.environ, "CAS_STORE": str(tmp_path / "store"), "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-c", blocks[0]], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    store = casstore.open(tmp_path / "store")
    assert store.list_models("my-domain") == ["v2"]  # v1 was deleted at the end
    assert (tmp_path / "out" / "predictions.csv").read_text() == "0,1\n1,0\n"
    assert (tmp_path / "out" / "plots" / "roc.svg").exists()
