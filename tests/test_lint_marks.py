"""The complexity marks (``# noqa: C901/PLR09xx - reason``) list what is left to split: each still applies.

docs/testing.md: every function over a limit carries a mark with its reason, so that
``grep -rn "noqa: C901\\|noqa: PLR09"`` lists what is left and the list can only shrink.
A function split below its limit must lose its mark too, or the list says more is left
than is: ruff's RUF100 (unused ``noqa``) finds such a mark.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from ruff.__main__ import find_ruff_bin

ROOT = Path(__file__).resolve().parents[1]
#: the rules whose marks make growth visible (pyproject.toml's [tool.ruff.lint] select)
GROWTH = re.compile(r"\b(C901|PLR09\d\d|PT\d{3})\b")


def _unused_marks(*paths: Path) -> list[str]:
    """RUF100's findings about the growth rules' marks in ``paths`` (ruff's own config otherwise)."""
    r = subprocess.run([find_ruff_bin(), "check", "--extend-select", "RUF100", "--output-format",
                        "concise", "--no-cache", *map(str, paths)], capture_output=True, text=True, cwd=ROOT,
                       check=False)
    assert r.returncode in (0, 1), r.stderr
    return [line for line in r.stdout.splitlines()
            if "RUF100" in line and "unused:" in line and GROWTH.search(line.split("unused:", 1)[1])]


def test_every_complexity_mark_still_applies() -> None:
    unused = _unused_marks(ROOT / "casstore", ROOT / "tests", *sorted((ROOT / "benchmarks").glob("*.py")))
    assert not unused, "these functions are under the limit now: remove their marks\n" + "\n".join(unused)


def test_a_mark_left_on_a_small_function_is_found(tmp_path: Path) -> None:
    (tmp_path / "small.py").write_text("def f(a: int) -> int:  # noqa: C901, PLR0913 - once large\n"
                                       "    return a\n")
    found = _unused_marks(tmp_path / "small.py")
    assert len(found) == 1 and "C901" in found[0] and "PLR0913" in found[0], found


#: issue 23's rule: a module of casstore/ over this many lines says why in its docstring
MODULE_LINES = 500


def test_every_module_over_500_lines_says_why_in_its_docstring() -> None:
    """A module that grows past MODULE_LINES either splits or gives its one-line reason ("Over 500
    lines because ..."), so growth is a decision someone wrote down, not an accident."""
    import ast

    silent = []
    for path in sorted((ROOT / "casstore").rglob("*.py")):
        text = path.read_text()
        if text.count("\n") > MODULE_LINES:
            doc = ast.get_docstring(ast.parse(text)) or ""
            if f"Over {MODULE_LINES} lines because" not in doc:
                silent.append(str(path.relative_to(ROOT)))
    assert not silent, f"over {MODULE_LINES} lines without a reason in the module docstring: {silent}"
