"""The two-machine story of docs/remotes.md, run as written: machines A and B and a remote over `git daemon`.

Each ``A$ `` / ``B$ `` line of the marked ``console`` block runs as that machine's
``cas`` (its own directory, shown as ``/home/a``, ``/home/b``; ``CAS_STORE=./models``;
a ``model.onnx`` of its own bytes), against a bare remote served by a real ``git daemon``; ``git://server/models.git``
stands for the daemon's URL.  Each command's output (stdout, then stderr; the
``cas: store ...`` lines aside) must be the lines the doc shows.  Commit ids are
bound as they first appear (the doc's id for the run's), so a command that names a
commit shown earlier (``cas restore ... --commit``) runs with the run's id.  Dates,
object counts, sizes and authors are compared loosely.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from casstore.store import init_store
from tests.conftest import REPO, write_random
from tests.servers import git_daemon

MARKER = "<!-- tests/test_remotes_story.py runs the console block below"
DOC_URL = "git://server/models.git"
HEX = re.compile(r"\b[0-9a-f]{10}(?:[0-9a-f]{30})?\b")  # a commit, shortened or whole
LOOSE = [
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)?"), "<date>"),
    (re.compile(r"\b\d+ objects?\b"), "<n> objects"),
    (re.compile(r"\b\d+(\.\d+)? (?:[KMG]i)?B\b"), "<size>"),
    (re.compile(r"^Author: .*"), "Author: <who>"),
]


def story() -> list[tuple[str, str, list[str]]]:
    """(machine, command, expected output lines) for each prompt of the marked block."""
    text = (REPO / "docs" / "remotes.md").read_text()
    block = re.search(re.escape(MARKER) + r"[^\n]*\n```console\n(.*?)```", text, re.S)
    assert block, "docs/remotes.md has no marked two-machine story"
    steps: list[tuple[str, str, list[str]]] = []
    for line in block.group(1).splitlines():
        m = re.match(r"([AB])\$ (.*)", line)
        if m:
            steps.append((m.group(1), m.group(2), []))
        else:
            steps[-1][2].append(line)
    return steps


def loose(line: str) -> str:
    for pattern, repl in LOOSE:
        line = pattern.sub(repl, line)
    return line


def match(expected: str, got: str, ids: dict[str, str]) -> bool:
    """Whether ``got`` is ``expected`` up to loose parts, binding the doc's commit ids to the run's."""
    exp_ids, got_ids = HEX.findall(expected), HEX.findall(got)
    if len(exp_ids) != len(got_ids) or loose(HEX.sub("<id>", expected)) != loose(HEX.sub("<id>", got)):
        return False
    for e, g in zip(exp_ids, got_ids, strict=True):
        if len(e) != len(g) or ids.setdefault(e[:10], g[:10]) != g[:10]:
            return False
    return True


def run(machine: Path, command: str, env: dict[str, str], url: str, ids: dict[str, str]) -> tuple[int, list[str]]:
    words = [w.replace(DOC_URL, url) for w in shlex.split(command)]
    words = [ids.get(w, w) for w in words]  # a commit the story showed before
    assert words[0] == "cas", command
    r = subprocess.run([sys.executable, "-m", "casstore", *words[1:]], cwd=machine, env=env, capture_output=True,
                       text=True, timeout=120)
    out = r.stdout.splitlines() + [line for line in r.stderr.splitlines() if not line.startswith("cas: store ")]
    return r.returncode, [line.replace(url, DOC_URL).replace(str(machine), f"/home/{machine.name}") for line in out]


def play(tmp_path: Path, check: bool = True) -> list[str]:
    """Run the story; with ``check``, assert every output; returns the transcript as it ran."""
    served = tmp_path / "srv"
    served.mkdir()
    init_store(str(served / "models.git"), bare_remote=True)
    machines = {}
    for seed, name in enumerate("AB", 1):
        d = tmp_path / name.lower()
        d.mkdir()
        write_random(d / "model.onnx", 300_000, seed=seed)
        machines[name] = d
    env = {**os.environ, "CAS_STORE": "./models", "PYTHONPATH": str(REPO)}
    ids: dict[str, str] = {}
    transcript = []
    with git_daemon(served) as base:
        url = f"{base}/models.git"
        for name, command, expected in story():
            code, got = run(machines[name], command, env, url, ids)
            ran = " ".join(ids.get(w, w) for w in command.split(" "))
            transcript += [f"{name}$ {ran}", *got]
            if check:
                assert code in (0, 1), (command, got)
                assert len(got) == len(expected), (command, got, expected)
            for e, g in zip(expected, got, strict=False):
                ok = match(e, g, ids)
                assert ok or not check, (command, e, g)
    return transcript


def test_two_machine_story_runs_as_written(tmp_path: Path) -> None:
    steps = story()
    commands = " ".join(c for _, c, _ in steps)
    for needed in ("pull --theirs", "cas restore", "--states", "state set", "cas rm"):
        assert needed in commands, needed
    play(tmp_path)


if __name__ == "__main__":  # print the story as it runs now, to paste into docs/remotes.md
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        print("\n".join(play(Path(d), check=False)))
