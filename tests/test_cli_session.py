"""A new user's first session, run as docs/cli.md shows it: each `cas` in a pseudo-terminal.

Every command of the ``console`` block under "## A session" in docs/cli.md runs with
its stdout and stderr on a pty (so colours, the pager and progress bars behave as on
a terminal), in a fresh directory with the input files the text describes; the
screen, with colours and progress lines removed, must be the lines the doc shows.
Commit ids, dates and the directory are the only parts compared loosely.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path

from tests.conftest import REPO, run_in_pty, write_random

HOME = "/home/ana"  # the directory the documented session ran in
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
PROGRESS = re.compile(r"\d (?:[KMGT]i)?B/s$")  # a progress line ends with its rate ("12.0 MiB/s"); no output line does


def session_block() -> list[tuple[str, list[str]]]:
    """(command, expected output lines) for each ``$ `` line of the documented session."""
    text = (REPO / "docs" / "cli.md").read_text()
    block = re.search(r"## A session\n.*?```console\n(.*?)```", text, re.S)
    assert block, "docs/cli.md has no session"
    steps: list[tuple[str, list[str]]] = []
    for line in block.group(1).splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            steps[-1][1].append(line)
    return steps


def run_tty(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    return run_in_pty(argv, env=env, cwd=cwd, timeout=120)


def screen_lines(raw: str) -> list[str]:
    """What stays on the screen: carriage returns applied, colours and progress bars removed."""
    lines = []
    for line in raw.replace("\r\n", "\n").split("\n"):
        line = ANSI.sub("", line.rsplit("\r", 1)[-1])
        if not PROGRESS.search(line):
            lines.append(line)
    while lines and lines[-1] == "":
        lines.pop()
    return lines


def normalise(line: str, cwd: Path) -> str:
    line = line.replace(str(cwd), HOME)
    line = re.sub(r"\b[0-9a-f]{10}\b", "<id>", line)
    # git object counts vary from run to run (357 and 358 seen for the same push of this
    # session), so they are compared loosely too
    line = re.sub(r"\b\d+ objects\b", "<n> objects", line)
    return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d", "<date>", line)


def make_inputs(cwd: Path) -> None:
    """The files the documented session commits: a 20 MiB model, and v2 with 2 MiB of it changed."""
    data = bytearray(write_random(cwd / "model.onnx", 20 << 20))
    data[5 << 20:7 << 20] = write_random(cwd / "scratch", 2 << 20, seed=1)
    (cwd / "scratch").unlink()
    (cwd / "v2").mkdir()
    (cwd / "v2" / "model.onnx").write_bytes(bytes(data))
    (cwd / "metrics.csv").write_text("auc,0.91\n")


def run_session(cwd: Path) -> list[tuple[str, int, str]]:
    """Run the documented commands; (command, exit code, raw screen) for each."""
    env = {**os.environ, "TERM": "xterm", "PAGER": "cat", "PYTHONPATH": str(REPO)}
    env.pop("NO_COLOR", None)
    results = []
    for command, _ in session_block():
        words = shlex.split(command)
        if words[0] == "export":
            name, _, value = words[1].partition("=")
            env[name] = value
            results.append((command, 0, ""))
            continue
        assert words[0] == "cas", command
        code, raw = run_tty([sys.executable, "-m", "casstore", *words[1:]], cwd, env)
        results.append((command, code, raw))
    return results


def command_name(command: str) -> str:
    words = shlex.split(command)[1:]
    while words[0].startswith("-"):
        words = words[2:] if words[0] == "--store" else words[1:]
    return words[0]


def test_fresh_user_session_matches_docs(tmp_path: Path) -> None:
    make_inputs(tmp_path)
    steps = session_block()
    names = {command_name(c) for c, _ in steps if c.startswith("cas ")}
    assert {"init", "commit", "log", "ls", "diff", "cat", "download", "push", "pull", "status"} <= names
    coloured, progress = set(), set()
    for (command, expected), (_, code, raw) in zip(steps, run_session(tmp_path), strict=True):
        assert code == 0, (command, raw)
        got = [normalise(line, tmp_path) for line in screen_lines(raw)]
        assert got == [normalise(line, tmp_path) for line in expected], (command, raw)
        if "\x1b[3" in raw:
            coloured.add(command_name(command))
        if any(PROGRESS.search(ANSI.sub("", part)) for part in raw.split("\r")):
            progress.add(command_name(command))
    assert {"log", "diff"} <= coloured  # colour on a terminal
    assert {"commit", "download", "push", "pull"} <= progress, progress  # progress bars on a terminal
    assert (tmp_path / "out" / "model.onnx").read_bytes() == (tmp_path / "v2" / "model.onnx").read_bytes()


if __name__ == "__main__":  # print the session as it runs now, to paste into docs/cli.md
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        make_inputs(Path(d))
        for command, _code, raw in run_session(Path(d)):
            print(f"$ {command}")
            for line in screen_lines(raw):
                print(line.replace(d, HOME))
