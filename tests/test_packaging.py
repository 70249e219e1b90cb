"""The package as users get it: `python -m build` makes a wheel that installs and runs in a fresh venv.

The wheel is built from a copy of the sources (the worktree stays clean) and installed
with ``--no-index`` into a new virtual environment, so what runs there is the wheel's
content and entry point, not this checkout.  Its dependencies are not downloaded
(the suite must not need the network): the new venv sees the test venv's
site-packages through a ``.pth`` line, after its own, and ``pip check`` then verifies
that the wheel's declared requirements are met by real installed distributions.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from casstore.version import __version__

REPO = Path(__file__).resolve().parents[1]


def run(*cmd: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    # without PYTHONPATH: a checkout put first on the path would hide what the wheel installed
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, cwd=cwd, env=env)
    assert r.returncode == 0, (cmd, r.stdout[-3000:], r.stderr[-3000:])
    return r


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "casstore", src / "casstore", ignore=shutil.ignore_patterns("__pycache__"))
    # --no-isolation: setuptools comes from this venv instead of being downloaded
    run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", src / "dist", cwd=src)
    (whl,) = (src / "dist").glob("casstore-*.whl")
    return whl


def test_wheel_holds_the_package_data_and_metadata(wheel: Path) -> None:
    assert wheel.name == f"casstore-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = z.read(f"casstore-{__version__}.dist-info/METADATA").decode()
        entry_points = z.read(f"casstore-{__version__}.dist-info/entry_points.txt").decode()
    assert {"casstore/py.typed", "casstore/store.py", "casstore/cli/cmd_cache.py",
            "casstore/serve/templates/base.html", "casstore/remote/hooks/pre-receive",
            "casstore/remote/hooks/post-receive"} <= names
    assert not any(n.startswith("tests/") for n in names)
    assert "cas = casstore.cli:main" in entry_points
    requires = [line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    assert {"dulwich", "zstandard", "msgpack", "xxhash", "scikit-learn", "pyfastcdc", "blake3", "tqdm"} <= {
        r.split(">")[0].split("<")[0].split("=")[0].split(";")[0].strip() for r in requires}
    assert any(r.startswith("shap") and 'extra == "demo"' in r for r in requires)
    assert "License" in meta and "Requires-Python: >=3.10" in meta


def test_wheel_installs_and_runs_in_a_fresh_venv(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    py = venv / "bin" / "python"
    site = Path(run(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    # the test venv's packages come after the new venv's own (a plain path line: its .pth files,
    # among them this checkout's editable install, are not processed)
    (site / "zz_test_venv_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(sys.executable, "-m", "pip", "--python", py, "install", "--no-index", "--no-deps", "-q", wheel)
    run(sys.executable, "-m", "pip", "--python", py, "check")
    r = run(venv / "bin" / "cas", "--version")
    assert r.stdout == f"casstore {__version__}\n"
    code = ("import casstore, sys, pathlib; assert pathlib.Path(casstore.__file__).is_relative_to(sys.prefix), "
            "casstore.__file__; s = casstore.open(sys.argv[1]); p = pathlib.Path(sys.argv[1]).parent / 'm.bin'; "
            "p.write_bytes(b'w' * 1000); s.commit_models('d', model=str(p), model_id='v1'); "
            "print(pathlib.Path(s.load('d', 'v1')).read_bytes() == p.read_bytes())")
    # run from tmp_path: `python -c` puts the current directory first on sys.path
    assert run(py, "-c", code, tmp_path / "store", cwd=tmp_path).stdout == "True\n"
    assert run(venv / "bin" / "cas", "ls", "d", "--store", tmp_path / "store").stdout == "v1\n"
    # a missing extra is named with the command that installs it beside this wheel, not a PyPI name
    hint = run(py, "-c", "from casstore.util.install import install_hint; print(install_hint('serve'))",
               cwd=tmp_path).stdout.strip()
    assert hint == f"pip install '{wheel}[serve]'"


def test_install_hints_from_a_checkout_name_the_checkout(tmp_path: Path) -> None:
    """Run from this clone (as `make` installs it: editable), the hint is an editable install of it."""
    code = "from casstore.util.install import install_hint; print(install_hint('torch'))"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for cwd, where in ((REPO, "."), (REPO / "docs", ".."), (tmp_path, str(REPO))):
        where = str(REPO) if where == ".." else where  # outside the current directory: absolute
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=cwd,
                           env=env)
        assert r.stdout.strip() == f"pip install -e '{where}[torch]'", (cwd, r.stdout, r.stderr)
    # and the messages that need an extra use it
    r = subprocess.run([sys.executable, "-c", "from casstore.frameworks.base import require; "
                        "require('casstore_no_such_module', 'torch')"], capture_output=True, text=True,
                       timeout=120, cwd=REPO, env=env)
    assert "pip install -e '.[torch]'" in r.stderr and "casstore[" not in r.stderr, r.stderr


def test_pip_in_the_make_venv_takes_the_pinned_cpu_torch(tmp_path: Path) -> None:
    """`pip install '.[torch]'` in the venv `make` creates resolves torch to constraints.txt's pin
    (2.13.0, the CPU build the tests use), not the newest release (on Linux a CUDA build and
    ~20 nvidia packages): make writes the venv's pip.conf. Resolved with --dry-run, nothing installed."""
    venv = tmp_path / "venv"
    subprocess.run(["make", "-s", f"VENV={venv}", f"PYTHON={sys.executable}", f"{venv}/pip.conf"], cwd=REPO,
                   check=True, timeout=300, capture_output=True)
    assert f"constraint = {REPO / 'constraints.txt'}" in (venv / "pip.conf").read_text()
    pin = next(line for line in (REPO / "constraints.txt").read_text().splitlines() if line.startswith("torch=="))
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_CONSTRAINT", "PYTHONPATH")}
    r = subprocess.run([venv / "bin" / "pip", "install", "--dry-run", "--no-deps", "-q", "--report", "-",
                        "torch>=2.1"], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    (got,) = [i["metadata"]["version"] for i in json.loads(r.stdout)["install"]]
    assert got.split("+")[0] == pin.split("==")[1], (got, pin)
