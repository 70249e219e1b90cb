"""The `cas` command as a subprocess, the way a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def cas(*args: str, store: Path | None = None, env: dict[str, str] | None = None,
        check: int | None = 0, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "casstore"]
    if store is not None:
        cmd += ["--store", str(store)]
    r = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=120,
                       env={**os.environ, **(env or {})}, cwd=cwd)
    if check is not None:
        assert r.returncode == check, (r.returncode, r.stdout, r.stderr)
    return r

