"""The `cas` command, driven as a subprocess against real stores."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import casstore
from casstore.cli import build_parser
from tests.conftest import assert_git_fsck, run_in_pty, write_random
from tests.helpers.cli import cas


def cas_tty(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run cas with stdout and stderr on a pseudo-terminal; returns (exit code, screen text)."""
    return run_in_pty([sys.executable, "-m", "casstore", *args], env={**os.environ, "TERM": "xterm", **(env or {})})


@pytest.fixture
def cli_store(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    cas("init", str(path))
    return path


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    f = tmp_path / "model.onnx"
    write_random(f, 300_000)
    return f


def test_init_and_not_a_store(tmp_path: Path) -> None:
    r = cas("init", str(tmp_path / "s"))
    assert "initialised empty store" in r.stdout
    assert casstore.open(tmp_path / "s").list_domains() == []
    r = cas("ls", "d", store=tmp_path / "missing", check=2)
    assert r.stderr.startswith("cas: error:") and "not a casstore store" in r.stderr
    assert "Traceback" not in r.stderr
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "x").write_text("x")
    r = cas("init", str(tmp_path / "plain"), check=2)
    assert "not empty" in r.stderr


def test_commit_show_ls_download(cli_store: Path, model_file: Path, tmp_path: Path) -> None:
    extra = tmp_path / "metrics.csv"
    extra.write_text("auc,0.9\n")
    r = cas("commit", "d", str(model_file), "--id", "v1", "--extra", str(extra),
            "--meta", "accuracy=0.95", "--meta", "dataset=v2", "--meta", 'tags=["a","b"]', store=cli_store)
    assert r.stdout.startswith("committed d/v1 ")
    info = json.loads(cas("show", "d", "v1", "--json", store=cli_store).stdout)
    assert info["extra_metadata"] == {"accuracy": 0.95, "dataset": "v2", "tags": ["a", "b"]}
    assert [f["path"] for f in info["files"]] == ["model.onnx", "metrics.csv"]
    assert info["frameworks"]["model"]["framework"] == "model_file"
    assert info["states"] == []
    text = cas("show", "d", "v1", store=cli_store).stdout
    assert "model d/v1" in text and "model.onnx" in text and "accuracy" in text
    cas("commit", "d", str(model_file), "--id", "v2", store=cli_store)
    assert cas("ls", "d", store=cli_store).stdout.split() == ["v2", "v1"]
    assert json.loads(cas("ls", "d", "--json", store=cli_store).stdout) == ["v2", "v1"]
    assert json.loads(cas("domains", "--json", store=cli_store).stdout) == ["d"]
    out = tmp_path / "out"
    r = cas("download", "d", "v1", str(out), store=cli_store)
    assert r.stdout == f"downloaded d/v1: 2 files, 293.0 KiB into {out}\n"
    assert (out / "model.onnx").read_bytes() == model_file.read_bytes()
    assert (out / "metrics.csv").read_text() == "auc,0.9\n"
    assert_git_fsck(cli_store)


def test_commit_several_files_and_json(cli_store: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"a" * 1000)
    b.write_bytes(b"b" * 1000)
    info = json.loads(cas("commit", "d", str(a), str(b), "--json", store=cli_store).stdout)
    assert info["frameworks"]["model"]["files"] == ["a.bin", "b.bin"]
    paths = casstore.open(cli_store).load("d", info["model_id"])
    assert [Path(p).read_bytes() for p in paths] == [b"a" * 1000, b"b" * 1000]


def test_log_formats(cli_store: Path, model_file: Path) -> None:
    cas("commit", "d", str(model_file), "--id", "v1", "--meta", "acc=0.5", store=cli_store)
    cas("commit", "d", str(model_file), "--id", "v2", store=cli_store)
    cas("state", "create", "production", store=cli_store)
    cas("state", "set", "d", "v1", "production", store=cli_store)
    r = cas("log", "d", store=cli_store)
    blocks = r.stdout.split("\n\n")
    assert blocks[0].startswith("state-set v1 production\nModel:   ")
    assert "Author:  Test User <test@example.com>" in blocks[0]
    assert "\x1b[" not in r.stdout  # no colour when piped
    assert "acc=0.5" in r.stdout and "model=model_file" in r.stdout
    lines = cas("log", "d", "--oneline", store=cli_store).stdout.splitlines()
    assert len(lines) == 3 and lines[0].endswith("state-set v1 production") and " commit v1" in lines[2]
    events = json.loads(cas("log", "d", "--json", "-n", "2", store=cli_store).stdout)
    assert [(e["event"], e["model_id"]) for e in events] == [("state-set", "v1"), ("commit", "v2")]
    assert set(events[0]) >= {"event", "model_id", "model_commit", "author", "time", "state"}


def test_states_rm_and_gc(cli_store: Path, model_file: Path) -> None:
    cas("commit", "d", str(model_file), "--id", "v1", store=cli_store)
    cas("commit", "d", str(model_file), "--id", "v2", store=cli_store)
    r = cas("state", "set", "d", "v1", "production", store=cli_store, check=2)
    assert "does not exist" in r.stderr
    cas("state", "create", "production", store=cli_store)
    cas("state", "set", "d", "v1", "production", store=cli_store)
    assert cas("state", "ls", store=cli_store).stdout.split() == ["production"]
    assert cas("state", "ls", "d", "v1", store=cli_store).stdout.split() == ["production"]
    assert cas("ls", "d", "--state", "production", store=cli_store).stdout.split() == ["v1"]
    cas("state", "unset", "d", "v1", "production", store=cli_store)
    assert cas("ls", "d", "--state", "production", store=cli_store).stdout.split() == []
    cas("rm", "d", "v2", store=cli_store)
    assert cas("ls", "d", store=cli_store).stdout.split() == ["v1"]
    r = cas("rm", "d", "v2", store=cli_store, check=2)
    assert "not found" in r.stderr
    report = json.loads(cas("gc", "--grace", "0", "--json", store=cli_store).stdout)
    assert report["objects_removed"] > 0
    assert json.loads(cas("fsck", "--read-data", "--json", store=cli_store).stdout)["ok"] is True
    cas("state", "rm", "production", store=cli_store)
    assert cas("state", "ls", store=cli_store).stdout == ""


def test_diff_and_du(cli_store: Path, tmp_path: Path) -> None:
    a = tmp_path / "a" / "w.bin"
    b = tmp_path / "b" / "w.bin"
    a.parent.mkdir()
    b.parent.mkdir()
    data = write_random(a, 2 << 20)
    b.write_bytes(data[: 1 << 20] + os.urandom(1 << 20))
    cas("commit", "d", str(a), "--id", "a", "--meta", "acc=1", store=cli_store)
    cas("commit", "d", str(b), "--id", "b", "--meta", "acc=2", store=cli_store)
    d = json.loads(cas("diff", "d", "a", "b", "--json", store=cli_store).stdout)
    assert d["changed"][0]["path"] == "w.bin" and d["metadata"]["changed"] == {"acc": [1, 2]}
    text = cas("diff", "d", "a", "b", store=cli_store).stdout
    assert "~ w.bin" in text and "~ metadata acc: 1 -> 2" in text
    du = json.loads(cas("du", "--json", store=cli_store).stdout)
    assert du["domains"]["d"]["logical_bytes"] == 4 << 20
    assert "total (on disk)" in cas("du", store=cli_store).stdout


def test_fsck_exit_codes(cli_store: Path, model_file: Path) -> None:
    cas("commit", "d", str(model_file), "--id", "v1", store=cli_store)
    assert "ok" in cas("fsck", store=cli_store).stdout
    s = casstore.open(cli_store)
    s.odb.index.refresh()
    sc = s.odb.index.sidecars[0]
    loc = sc.location(0)
    pack = cli_store / "objects" / "pack" / (loc.pack + ".pack")
    os.chmod(pack, 0o644)
    with open(pack, "r+b") as f:
        f.seek(loc.offset + loc.length // 2)
        f.write(b"\xff\xfe")
    assert "ok" in cas("fsck", store=cli_store).stdout  # without --read-data, chunks are not read
    r = cas("fsck", "--read-data", store=cli_store, check=1)
    assert "problem:" in r.stdout and loc.oid.hex() in r.stdout
    assert json.loads(cas("fsck", "--read-data", "--json", store=cli_store, check=1).stdout)["ok"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "d", "nope"], "model 'nope' not found in domain 'd'"),
        (["show", "nodomain", "x"], "domain 'nodomain' not found"),
        (["log", "nodomain"], "domain 'nodomain' not found"),
        (["commit", "d", "/does/not/exist"], "no such file"),
        (["commit", "d", "MODEL", "--id", "bad/id"], "invalid model ID 'bad/id'"),
        (["commit", "d", "MODEL", "--id", "v1"], "already exists"),
        (["commit", "d", "MODEL", "--extra", "/no/such/extra"], "does not exist"),
        (["commit", "d", "MODEL", "--meta", "novalue"], "expected KEY=VALUE"),
        (["download", "d", "nope", "/tmp/x"], "not found"),
        (["ls", "bad..domain"], "invalid domain"),
    ],
)
def test_bad_input_one_line_exit_2(cli_store: Path, model_file: Path, args: list[str], message: str) -> None:
    cas("commit", "d", str(model_file), "--id", "v1", store=cli_store)
    r = cas(*[str(model_file) if a == "MODEL" else a for a in args], store=cli_store, check=2)
    assert message in r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_usage_errors_exit_2(cli_store: Path) -> None:
    r = cas("log", store=cli_store, check=2)
    assert "usage:" in r.stderr
    r = cas("frobnicate", check=2)
    assert "'frobnicate' is not a cas command (choose from init, " in r.stderr


def test_help_has_examples() -> None:
    for sub in ("log", "commit", "download", "rm", "state", "diff", "du", "fsck", "gc", "show", "ls", "init"):
        r = cas(sub, "--help")
        assert "example:" in r.stdout and "cas " + sub.split()[0] in r.stdout


def test_cas_console_script_installed() -> None:
    exe = Path(sys.executable).parent / "cas"
    r = subprocess.run([str(exe), "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("casstore ")


def test_default_store_from_env(tmp_path: Path, model_file: Path) -> None:
    env = {"CAS_STORE": str(tmp_path / "envstore")}
    cas("init", env=env)
    cas("commit", "d", str(model_file), "--id", "v1", env=env)
    assert cas("ls", "d", env=env).stdout.split() == ["v1"]


def test_terminal_pager_colour_and_progress(cli_store: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    write_random(big, 64 << 20)
    code, screen = cas_tty("--store", str(cli_store), "commit", "d", str(big), "--id", "v1")
    assert code == 0
    assert "hashing" in screen and "storing" in screen and "100%" in screen
    code, screen = cas_tty("--store", str(cli_store), "log", "d", env={"PAGER": "sed s/^/PAGED:/"})
    assert code == 0
    assert "PAGED:" in screen and "\x1b[33m" in screen
    code, screen = cas_tty("--store", str(cli_store), "log", "d", "--no-pager")
    assert "PAGED:" not in screen
    # piped: no progress, no colour
    r = cas("download", "d", "v1", str(tmp_path / "out"), store=cli_store)
    assert r.stderr == ""


def test_remote_push_pull_cli(tmp_path: Path, model_file: Path) -> None:
    a, b, remote = tmp_path / "a", tmp_path / "b", tmp_path / "remote.git"
    r = cas("init", "--bare", str(remote))
    assert "bare remote store" in r.stdout
    assert (remote / "hooks" / "pre-receive").exists()
    cas("init", str(a))
    cas("init", str(b))
    cas("commit", "d", str(model_file), "--id", "v1", store=a)
    cas("remote", "add", "origin", str(remote), store=a)
    assert cas("remote", "ls", store=a).stdout == f"origin\t{remote}\n"
    r = cas("push", store=a)
    assert r.stdout.startswith(f"push {remote}: 1 model added")
    info = json.loads(cas("pull", str(remote), "--json", store=b).stdout)
    assert info["ok"] and info["models_added"] == ["d/v1"]
    assert cas("ls", "d", store=b).stdout.split() == ["v1"]
    # the same ID with other content on both sides: reported, exit code 1
    other = tmp_path / "other.onnx"
    write_random(other, 1000, seed=3)
    cas("commit", "d", str(other), "--id", "v2", store=a)
    cas("commit", "d", str(model_file), "--id", "v2", store=b)
    cas("push", store=a)
    r = cas("pull", str(remote), store=b, check=1)
    assert "conflict: d/v2" in r.stdout
    r = cas("push", "nowhere", store=a, check=2)
    assert "no remote named 'nowhere'" in r.stderr
    cas("remote", "rm", "origin", store=a)
    assert cas("remote", "ls", store=a).stdout == ""


def test_errors_in_cli_words(cli_store: Path, model_file: Path, tmp_path: Path) -> None:
    cas("commit", "d", str(model_file), "--id", "v1", store=cli_store)
    r = cas("state", "set", "d", "v1", "nosuchstate", store=cli_store, check=2)
    assert "`cas state create nosuchstate`" in r.stderr and "create_model_state" not in r.stderr
    (tmp_path / "v2").mkdir()
    r = cas("commit", "d", str(tmp_path / "v2"), store=cli_store, check=2)
    assert "is an empty directory: nothing to store" in r.stderr
    # a directory with files is a model directory (a SavedModel, a checkpoint), structure kept
    (tmp_path / "v2" / "sub").mkdir()
    (tmp_path / "v2" / "sub" / "w.bin").write_bytes(b"w")
    cas("commit", "d", str(tmp_path / "v2"), "--id", "v2", store=cli_store)
    assert "v2/sub/w.bin" in cas("show", "d", "v2", store=cli_store).stdout
    r = cas("download", "d", "v1", str(model_file), store=cli_store, check=2)
    assert "is a file, not a directory" in r.stderr and "Errno" not in r.stderr
    # the Python API keeps its own words
    with pytest.raises(casstore.StateNotFoundException, match="create_model_state"):
        casstore.open(cli_store).set_model_state("d", "v1", "nosuchstate")


@pytest.mark.parametrize("url", ["git://127.0.0.1:1/x", "http://127.0.0.1:1/x", "ssh://nobody@127.0.0.1:1/x",
                                 "http://no-such-host.invalid/x", "s3://bucket/x"])
def test_remote_errors_one_line_no_class_names(cli_store: Path, url: str) -> None:
    env = {"CAS_SSH_COMMAND": "ssh -o BatchMode=yes", "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:1",
           "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y", "AWS_MAX_ATTEMPTS": "1"}
    r = cas("pull", url, store=cli_store, check=2, env=env)
    assert r.stderr.startswith(f"cas: error: remote {url}: ") and r.stderr.count("\n") == 1
    for word in ("Exception", "Error(", "Error:", "HTTPConnection", "urllib3", "Errno", "object at 0x"):
        assert word not in r.stderr, r.stderr
    assert "refused" in r.stderr or "unknown host" in r.stderr or "Could not connect" in r.stderr


def test_json_is_always_valid(cli_store: Path, model_file: Path) -> None:
    def strict(text: str) -> object:
        def refuse(name: str) -> object:
            raise AssertionError(f"{name} is not JSON")
        return json.loads(text, parse_constant=refuse)

    info = strict(cas("commit", "d", str(model_file), "--id", "v1", "--meta", "auc=NaN", "--meta", "hi=Infinity",
                      "--json", store=cli_store).stdout)
    assert info["extra_metadata"] == {"auc": "NaN", "hi": "Infinity"}  # type: ignore[index]
    s = casstore.open(cli_store)
    s.commit_models("d", model=str(model_file), model_id="v2",
                    extra_metadata={b"raw": b"\x00\xff", 1: float("-inf"), "t": (1, 2), b"\xff": None})
    for args in (["show", "d", "v1"], ["show", "d", "v2"], ["log", "d"], ["diff", "d", "v1", "v2"], ["ls", "d"]):
        doc = strict(cas(*args, "--json", store=cli_store).stdout)
        assert doc
    shown = strict(cas("show", "d", "v2", "--json", store=cli_store).stdout)
    assert shown["extra_metadata"] == {"raw": "00ff", "1": "-Infinity", "t": [1, 2], "ff": None}  # type: ignore[index]
    assert "raw" in cas("show", "d", "v2", store=cli_store).stdout


def test_cli_habits(cli_store: Path, model_file: Path, tmp_path: Path) -> None:
    r = cas()
    assert "COMMAND" in r.stdout and "commit" in r.stdout and "usage: cas" in r.stdout
    for flag in ("-V", "--version"):
        assert cas(flag).stdout.startswith("casstore ")
    r = cas("comit", check=2)
    assert "did you mean commit?" in r.stderr
    r = cas("state", "sett", check=2)
    assert "did you mean set" in r.stderr
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name, sub in commands.items():
        for action in sub._actions:
            if "--json" in action.option_strings:
                assert action.help and "JSON" in action.help, name
    cas("commit", "d", str(model_file), "--id", "v1", store=cli_store)
    line = cas("log", "d", "--oneline", store=cli_store).stdout
    assert re.match(r"[0-9a-f]{10} \d{4}-\d\d-\d\d \d\d:\d\d \+0000 commit v1", line), line
    assert cas("fsck", store=cli_store).stdout.startswith("1 model, 1 file, ")


def test_download_over_existing_files(cli_store: Path, model_file: Path, tmp_path: Path) -> None:
    cas("commit", "d", str(model_file), "--id", "v1", store=cli_store)
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.onnx").write_bytes(b"mine")
    (out / "notes.txt").write_text("keep")
    r = cas("download", "d", "v1", str(out), store=cli_store, check=2)
    assert "already holds 1 file of d/v1 (model.onnx)" in r.stderr and "--force" in r.stderr
    assert (out / "model.onnx").read_bytes() == b"mine"
    r = cas("download", "d", "v1", str(out), "--force", store=cli_store)
    assert "replaced model.onnx" in r.stdout and "also holds 1 other file" in r.stdout
    assert (out / "model.onnx").read_bytes() == model_file.read_bytes()
    assert (out / "notes.txt").read_text() == "keep"


def test_push_to_plain_git_remote_warns(cli_store: Path, model_file: Path, tmp_path: Path) -> None:
    remote = tmp_path / "plain.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    cas("commit", "d", str(model_file), "--id", "v1", store=cli_store)
    r = cas("push", str(remote), store=cli_store)
    assert r.stderr.count("cas: warning:") == 1 and "has no casstore hook" in r.stderr
    assert f"cas init --bare {remote}" in r.stderr
    assert "installed the model-protecting hook" in cas("init", "--bare", str(remote)).stdout
    assert (remote / "hooks" / "pre-receive").exists()
    assert cas("push", str(remote), store=cli_store).stderr == ""


def test_diff_pairs_renamed_files_by_chunks(cli_store: Path, tmp_path: Path) -> None:
    big, big2 = tmp_path / "big.bin", tmp_path / "big2.bin"
    data = bytearray(write_random(big, 4 << 20))
    data[1 << 20: (1 << 20) + (400 << 10)] = os.urandom(400 << 10)  # ~10 % changed
    big2.write_bytes(bytes(data))
    other = tmp_path / "other.txt"
    other.write_text("unrelated")
    cas("commit", "d", str(big), "--id", "a", store=cli_store)
    r = cas("commit", "d", str(big2), "--id", "b", "--extra", str(other), store=cli_store)
    assert re.search(r"4\.0 MiB given, \d+/\d+ chunks new, [\d.]+ KiB stored$", r.stdout.strip()), r.stdout
    d = json.loads(cas("diff", "d", "a", "b", "--json", store=cli_store).stdout)
    assert d["added"] == ["other.txt"] and d["removed"] == []
    (c,) = d["changed"]
    assert (c["path_a"], c["path"]) == ("big.bin", "big2.bin")
    assert 3 << 20 < c["bytes_shared"] < 4 << 20 and c["bytes_new"] == (4 << 20) - c["bytes_shared"]
    text = cas("diff", "d", "a", "b", store=cli_store).stdout
    assert "~ big.bin -> big2.bin  4.0 MiB -> 4.0 MiB; shares " in text and "of new data" in text
    assert "+ other.txt" in text and "- big.bin" not in text


def _tree_listing(root: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(root)), p.stat().st_size) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("kind", ["path", "s3"])
def test_status_compares_refs_only(kind: str, tmp_path: Path, model_file: Path, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("s3_url") if kind == "s3" else str(tmp_path / "remote.git")
    a, b = casstore.open(tmp_path / "a"), casstore.open(tmp_path / "b")
    a.commit_models("d", model=str(model_file), model_id="v1")
    r = cas("status", url, store=tmp_path / "a")
    assert r.stdout.startswith(f"remote {url}: differs\n") and "  d: 1 model only here (v1); history: here only" \
        in r.stdout
    a.push(url)
    assert cas("status", url, store=tmp_path / "a").stdout == f"remote {url}: up to date\n"
    b.pull(url)
    b.commit_models("d", model=str(model_file), model_id="v2")
    b.create_model_state("prod")
    b.push(url)
    a.commit_models("e", model=str(model_file), model_id="x")
    before = _tree_listing(tmp_path / "a" / "objects")
    st = json.loads(cas("status", url, "--json", store=tmp_path / "a").stdout)
    assert st["domains"]["d"] == {"here_only": [], "there_only": ["v2"], "different": [],
                                  "history": "remote has events we lack", "up_to_date": False}
    assert st["domains"]["e"]["here_only"] == ["x"] and st["states"] == "there only"
    assert _tree_listing(tmp_path / "a" / "objects") == before  # nothing was fetched
    text = cas("status", url, store=tmp_path / "a").stdout
    assert "  d: 1 model only there (v2); history: remote has events we lack\n" in text
    assert "  states: there only\n" in text
    a.pull(url)
    st = json.loads(cas("status", url, "--json", store=tmp_path / "a").stdout)
    assert st["domains"]["d"]["up_to_date"] and st["states"] == "same"
    assert st["domains"]["e"]["history"] == "here only" and not st["up_to_date"]


def test_shell_completion(cli_store: Path, model_file: Path, tmp_path: Path) -> None:
    casstore.open(cli_store).commit_models("fraud", model=str(model_file), model_id="v1")
    script = tmp_path / "cas.bash"
    script.write_text(cas("completion", "bash").stdout)
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    zsh = cas("completion", "zsh").stdout
    assert zsh.startswith("#compdef cas\n") and "bashcompinit" in zsh and "_cas_complete()" in zsh

    def complete(*words: str) -> list[str]:
        body = (f"source {script}; COMP_WORDS=({' '.join(repr(w) for w in words)}); "
                f"COMP_CWORD={len(words) - 1}; _cas_complete; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        r = subprocess.run(["bash", "-c", body], capture_output=True, text=True, env=env, cwd=tmp_path,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout.split()

    commands = complete("cas", "")
    assert {"init", "commit", "log", "status", "cat", "completion", "state"} <= set(commands)
    assert complete("cas", "com") == ["commit", "completion"]
    assert complete("cas", "state", "s") == ["set"]
    assert "--oneline" in complete("cas", "log", "--")
    assert complete("cas", "--store", str(cli_store), "log", "") == ["fraud"]
    assert complete("cas", "--store", str(cli_store), "show", "fraud", "") == ["v1"]
    assert complete("cas", "--store", str(cli_store), "state", "set", "fr") == ["fraud"]
    assert complete("cas", "commit", "fraud", "cas.b") == ["cas.bash"]


# -- issue 21 item 11: errors that name the problem ----------------------------------


def _one_line_error(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 2 and r.stdout == "", (r.returncode, r.stdout, r.stderr)
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr and "Errno" not in r.stderr, r.stderr
    return r.stderr


def test_mistyped_options_get_the_commands_usage_and_a_did_you_mean(cli_store: Path, model_file: Path) -> None:
    """Regression: `cas fsck --readdata` and `cas show d v1 --jsn` printed the top-level usage, no hint."""
    cas("commit", "d", str(model_file), "--id", "v1", store=cli_store)
    err = _one_line_error(cas("fsck", "--readdata", store=cli_store, check=2))
    assert err.startswith("usage: cas fsck ") and "did you mean --read-data?" in err, err
    err = _one_line_error(cas("show", "d", "v1", "--jsn", store=cli_store, check=2))
    assert err.startswith("usage: cas show ") and "did you mean --json?" in err, err
    err = _one_line_error(cas("state", "ls", "--jsonn", store=cli_store, check=2))
    assert err.startswith("usage: cas state ls ") and "did you mean --json?" in err, err
    err = _one_line_error(cas("rm", "d", "v1", "surplus", store=cli_store, check=2))
    assert err.startswith("usage: cas rm ") and "unrecognized arguments: surplus" in err, err
    assert casstore.open(cli_store).list_models("d") == ["v1"]


def test_shell_mistakes_are_named(cli_store: Path, model_file: Path, tmp_path: Path) -> None:
    """Regression: the ID given where FILEs go, the DIR where the ID goes, huge -n, deep --meta."""
    err = _one_line_error(cas("commit", "fraud", str(model_file), "v1", store=cli_store, check=2))
    assert "v1: no such file" in err and "use --id v1" in err, err
    cas("commit", "fraud", str(model_file), "--id", "v1", store=cli_store)
    err = _one_line_error(cas("download", "fraud", "./o3", store=cli_store, check=2, cwd=tmp_path))
    assert "no DIR given" in err and "'./o3' looks like a directory" in err and "cas download fraud ID ./o3" in err
    assert not (tmp_path / "o3").exists()
    err = _one_line_error(cas("download", "fraud", "v1", store=cli_store, check=2))
    assert "no DIR given" in err and "cas download fraud v1 DIR" in err, err
    r = cas("log", "fraud", "-n", "99999999999999999999999", "--oneline", store=cli_store)
    assert r.stdout.count("\n") == 1 and "commit v1" in r.stdout
    for bad, why in (("-3", "-3 is negative"), ("lots", "'lots' is not a whole number")):
        err = cas("log", "fraud", "-n", bad, store=cli_store, check=2).stderr
        assert err.startswith("usage: cas log ") and why in err, err
    deep = "[" * 5000 + "]" * 5000
    for value in (deep, "[" * 101 + "]" * 101):
        err = _one_line_error(cas("commit", "fraud", str(model_file), "--id", "deep", "--meta", f"x={value}",
                                  store=cli_store, check=2))
        assert "--meta x: the value is nested too deeply" in err, err
    cas("commit", "fraud", str(model_file), "--id", "deep", "--meta", "x=" + "[" * 100 + "]" * 100,
        store=cli_store)
    assert casstore.open(cli_store).list_models("fraud") == ["deep", "v1"]


def test_a_file_name_that_is_not_utf8_is_named(cli_store: Path, tmp_path: Path) -> None:
    """Regression: a non-UTF-8 file name failed with "'utf-8' codec can't encode character '\\udcff'"."""
    bad = os.path.join(os.fsencode(tmp_path), b"m\xff.bin")
    with open(bad, "wb") as f:
        f.write(b"weights")
    (tmp_path / "extras").mkdir()
    with open(os.path.join(os.fsencode(tmp_path / "extras"), b"e\xfe.txt"), "wb") as f:
        f.write(b"x")
    good = tmp_path / "model.onnx"
    good.write_bytes(b"model")
    err = _one_line_error(cas("commit", "d", os.fsdecode(bad), "--id", "v1", store=cli_store, check=2))
    assert "is not UTF-8" in err and r"b'm\xff.bin'" in err and "codec" not in err, err
    err = _one_line_error(cas("commit", "d", str(good), "--id", "v1", "--extra", str(tmp_path / "extras"),
                              store=cli_store, check=2))
    assert "is not UTF-8" in err and r"b'extras/e\xfe.txt'" in err and "codec" not in err, err
    s = casstore.open(cli_store)
    with pytest.raises(casstore.CasError, match="is not UTF-8"):
        s.commit_models("d", model=os.fsdecode(bad), model_id="v1")
    assert s.list_domains() == [] and s.fsck().ok  # nothing written, the ID still free


def test_serve_arguments_are_named(cli_store: Path) -> None:
    """Regression: `serve --port 99999` said "internal error", `--host 256.1.1.1` talked about tokens,
    and a busy port said "[Errno 98]"."""
    err = cas("serve", "--port", "99999", store=cli_store, check=2).stderr
    assert err.startswith("usage: cas serve ") and "99999 is not a port number: ports are 0-65535" in err, err
    err = _one_line_error(cas("serve", "--host", "256.1.1.1", store=cli_store, check=2))
    assert "--host 256.1.1.1 is not a valid IPv4 address" in err and "token" not in err, err
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        err = _one_line_error(cas("serve", "--port", str(port), store=cli_store, check=2))
    assert f"port {port} on 127.0.0.1 is already in use" in err and "--port 0" in err, err


def test_conflict_hint_names_the_conflicting_model(tmp_path: Path) -> None:
    """Regression: the hint said `cas cp DOMAIN ID NEW_ID` instead of the conflict's own names."""
    a, b, remote = tmp_path / "a", tmp_path / "b", tmp_path / "remote.git"
    for s in (a, b):
        cas("init", str(s))
    cas("init", "--bare", str(remote))
    for s, seed in ((a, 1), (b, 2)):
        f = tmp_path / f"m{seed}.bin"
        write_random(f, 10_000, seed=seed)
        cas("commit", "fraud", str(f), "--id", "v1", store=s)
    cas("push", str(remote), store=a)
    r = cas("pull", str(remote), store=b, check=1)
    assert f"`cas pull --theirs {remote}`" in r.stdout and "`cas cp fraud v1 v1-mine`" in r.stdout, r.stdout
    assert "DOMAIN" not in r.stdout
    # the hint's command works as printed
    cas("cp", "fraud", "v1", "v1-mine", store=b)
    cas("pull", "--theirs", str(remote), store=b)
    assert sorted(casstore.open(b).list_models("fraud")) == ["v1", "v1-mine"]
