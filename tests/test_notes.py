"""Notes and tags on a model without a new commit: history events that merge on push and pull."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from dulwich.objects import Commit

import casstore
from casstore.cli import main
from casstore.errors import ModelNotFoundException, NoteError
from casstore.model.notes import MAX_NOTE_BYTES
from casstore.objects.refs import domain_ref
from casstore.store import init_store
from tests.conftest import assert_git_fsck
from tests.servers import git_daemon


def _model(store: casstore.Store, tmp_path: Path, model_id: str = "v1") -> None:
    f = tmp_path / f"{model_id}.bin"
    f.write_bytes(model_id.encode() * 100)
    store.commit_models("d", model=str(f), model_id=model_id)


def test_notes_and_tags_round_trip_without_a_new_commit(store: casstore.Store, tmp_path: Path) -> None:
    _model(store, tmp_path)
    before = store.get_model_info("d", "v1")
    assert before["notes"] == [] and before["tags"] == []
    head = store.refs.get(domain_ref("d"))
    store.add_note("d", "v1", "retrained on the March data\n\n  indented  line  ")
    store.add_note("d", "v1", "ünïcode ✓ and \u2028 a line separator")
    store.set_tag("d", "v1", "candidate")
    store.set_tag("d", "v1", "candidate")  # already: records nothing
    store.set_tag("d", "v1", "reviewed")
    store.delete_tag("d", "v1", "candidate")
    store.delete_tag("d", "v1", "never-set")  # records nothing
    store.set_tag("d", "v1", "again")
    store.delete_tag("d", "v1", "again")  # in the same second as its tag: the later event wins
    info = store.get_model_info("d", "v1")
    assert info["commit"] == before["commit"]  # no new model commit
    assert [n["text"] for n in info["notes"]] == ["retrained on the March data\n\n  indented  line  ",
                                                  "ünïcode ✓ and \u2028 a line separator"]
    assert info["tags"] == ["reviewed"]
    events = [e.event for e in store.log("d")]
    assert events == ["untag", "tag", "untag", "tag", "tag", "note", "note", "commit"]
    # every event leaves the index as it was: readers that do not know them see nothing changed
    c = store.odb.read(store.refs.get(domain_ref("d")), Commit)
    first = store.odb.read(head, Commit)
    assert isinstance(c, Commit) and isinstance(first, Commit) and c.tree == first.tree
    assert store.list_models("d") == ["v1"] and store.get_model_states("d", "v1") == []
    # a new Store reads the same from disk; a model committed again under the ID starts clean
    again = casstore.open(store.path, create=False)
    assert again.get_annotations("d", "v1") == {"notes": info["notes"], "tags": ["reviewed"]}
    again.delete_model("d", "v1")
    _model(again, tmp_path)
    assert again.get_annotations("d", "v1") == {"notes": [], "tags": []}
    with pytest.raises(ModelNotFoundException):
        again.add_note("d", "nope", "x")
    assert again.fsck(read_data=True).ok
    assert_git_fsck(store.path)


def test_hostile_notes_are_refused_or_read_safely(store: casstore.Store, tmp_path: Path) -> None:
    _model(store, tmp_path)
    store.add_note("d", "v1", "x" * MAX_NOTE_BYTES)  # the bound itself is fine
    for bad, why in (("x" * (MAX_NOTE_BYTES + 1), "at most"), ("é" * (MAX_NOTE_BYTES // 2 + 1), "at most"),
                     ("", "empty"), ("  \n ", "empty"), ("bad \udcff bytes", "UTF-8"), (b"bytes", "string")):
        with pytest.raises(NoteError, match=why):
            store.add_note("d", "v1", bad)  # type: ignore[arg-type]
    for bad_tag in ("has space", "", "../x", "a" * 200, "<b>"):
        with pytest.raises(NoteError, match="tag"):
            store.set_tag("d", "v1", bad_tag)
    assert len(store.get_annotations("d", "v1")["notes"]) == 1
    # a history written by hand (another tool, a hostile remote): damaged trailers are read safely
    head = store.refs.get(domain_ref("d"))
    c = store.odb.read(head, Commit)
    assert isinstance(c, Commit)
    sha = store.get_model_info("d", "v1")["commit"]
    for message in (f"note v1\n\nCas-Event: note\nCas-Model: v1\nCas-Commit: {sha}\nCas-Note: not json\n",
                    f"note v1\n\nCas-Event: note\nCas-Model: v1\nCas-Commit: {sha}\nCas-Note: "
                    + json.dumps("y" * (4 * MAX_NOTE_BYTES)) + "\n",
                    f"note v1\n\nCas-Event: note\nCas-Model: v1\nCas-Commit: {sha}\nCas-Note: \xff\xfe\n",
                    f"tag v1\n\nCas-Event: tag\nCas-Model: v1\nCas-Commit: {sha}\nCas-Tag: <script>\n"):
        new = store.odb.write_commit(c.tree, [head], b"Mallory <m@x>", message.encode("latin-1"))
        assert store.refs.set_if_equals(domain_ref("d"), head, new)
        head = new
    got = store.get_annotations("d", "v1")
    texts = [n["text"] for n in got["notes"]]
    assert texts[1:] == ["(unreadable note)", "y" * MAX_NOTE_BYTES + "...", "(unreadable note)"]
    assert got["tags"] == []  # not a tag name casstore makes: ignored
    assert store.fsck().ok


def test_cli_note_tag_and_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s = casstore.open(tmp_path / "s")
    _model(s, tmp_path)
    base = ["--store", str(tmp_path / "s")]
    assert main([*base, "note", "d", "v1", "first line <b>bold</b>\nsecond"]) == 0
    assert main([*base, "tag", "d", "v1", "candidate"]) == 0
    assert main([*base, "tag", "d", "v1", "x"]) == 0
    assert main([*base, "tag", "d", "v1", "x", "--delete"]) == 0
    capsys.readouterr()
    assert main([*base, "show", "d", "v1"]) == 0
    out = capsys.readouterr().out
    assert "Tags:    candidate\n" in out and "first line <b>bold</b>\n    second\n" in out
    assert main([*base, "show", "d", "v1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["tags"] == ["candidate"] and doc["notes"][0]["text"] == "first line <b>bold</b>\nsecond"
    assert main([*base, "note", "d", "v1", ""]) == 2
    assert "note: is empty" in capsys.readouterr().err
    # from stdin; bytes that are not UTF-8 are refused by name (exit 2), nothing recorded
    r = subprocess.run([sys.executable, "-m", "casstore", *base, "note", "d", "v1", "-"], input="from stdin\n",
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "casstore", *base, "note", "d", "v1", b"\xff\xfe".decode(
        "utf-8", "surrogateescape")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "not valid UTF-8" in r.stderr, r.stderr
    assert [n["text"] for n in casstore.open(tmp_path / "s").get_annotations("d", "v1")["notes"]] == [
        "first line <b>bold</b>\nsecond", "from stdin\n"]


@pytest.fixture(params=["git", "s3"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "s3":
        yield request.getfixturevalue("s3_url")
        return
    root = tmp_path / "srv"
    root.mkdir()
    init_store(str(root / "models.git"), bare_remote=True)  # with casstore's pre-receive hook
    with git_daemon(root) as base:
        yield f"{base}/models.git"


def test_notes_and_tags_from_two_machines_merge_through_a_remote(remote: str, tmp_path: Path) -> None:
    a, b = casstore.open(tmp_path / "a"), casstore.open(tmp_path / "b")
    _model(a, tmp_path)
    a.add_note("d", "v1", "before the push")
    a.set_tag("d", "v1", "shared")
    a.push(remote)
    b.pull(remote)
    assert b.get_annotations("d", "v1")["tags"] == ["shared"]
    # apart: each machine notes and tags the same model
    a.add_note("d", "v1", "from a")
    a.set_tag("d", "v1", "from-a")
    b.add_note("d", "v1", "from b <i>")
    b.set_tag("d", "v1", "from-b")
    b.delete_tag("d", "v1", "shared")
    a.push(remote)
    b.pull(remote)  # merges a's events into b's history
    b.push(remote)
    a.pull(remote)
    for s in (a, b):
        got = s.get_annotations("d", "v1")
        assert sorted(n["text"] for n in got["notes"]) == ["before the push", "from a", "from b <i>"]
        assert got["tags"] == ["from-a", "from-b"]
        assert s.fsck().ok
        assert_git_fsck(s.path)
    fresh = casstore.open(tmp_path / "fresh")
    fresh.pull(remote)
    assert fresh.get_annotations("d", "v1") == b.get_annotations("d", "v1")


def test_serve_shows_escapes_searches_and_writes_notes_and_tags(tmp_path: Path) -> None:
    from tests.helpers.serve import start_server, stop_server

    s = casstore.open(tmp_path / "s")
    _model(s, tmp_path, "v1")
    _model(s, tmp_path, "v2")
    s.add_note("d", "v1", "<script>alert('x')</script> trained on zebra data")
    s.set_tag("d", "v1", "candidate")
    server = start_server(str(tmp_path / "s"), "--write", env={"CAS_SERVE_TOKEN": "t0k"})
    auth = {"Authorization": "Bearer t0k"}
    try:
        st, _, page = server.request("GET", "/d/d/m/v1", headers=auth)
        html = page.decode()
        assert st == 200 and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; trained on zebra data" in html
        assert "<script>alert" not in html and 'class="tag state">candidate<' in html
        info = server.json("/api/domains/d/models/v1", headers=auth)
        assert info["tags"] == ["candidate"] and info["notes"][0]["text"].startswith("<script>")
        # search: by tag and by a word of a note
        found = server.json("/api/search?q=tag%3Acandidate", headers=auth)
        assert [(r["model_id"], r["tags"]) for r in found["results"]] == [("v1", ["candidate"])]
        assert [r["model_id"] for r in server.json("/api/search?q=zebra", headers=auth)["results"]] == ["v1"]
        # write mode: the page's forms and the API
        form = {**auth, "Content-Type": "application/x-www-form-urlencoded"}
        st, h, _ = server.request("POST", "/d/d/m/v2/annotations", body=b"tag=reviewed&action=tag", headers=form)
        assert st == 303 and h["location"] == "/d/d/m/v2#notes"
        st, _, _ = server.request("POST", "/d/d/m/v2/annotations", body=b"text=looks+good+%3Cb%3E&action=note",
                                  headers=form)
        assert st == 303
        st, _, body = server.request("POST", "/d/d/m/v2/annotations", body=b"tag=bad+tag&action=tag", headers=form)
        assert st == 400 and b"tag" in body
        st, _, body = server.request("POST", "/api/domains/d/models/v2/notes", body=b"\xff\xfe", headers=auth)
        assert st == 400 and b"UTF-8" in body
        st, _, body = server.request("POST", "/api/domains/d/models/v2/notes", body=b"x" * 20000, headers=auth)
        assert st == 400 and b"at most" in body
        st, _, body = server.request("DELETE", "/api/domains/d/models/v1/tags/candidate", headers=auth)
        assert st == 200 and json.loads(body)["tags"] == []
        assert [r["model_id"] for r in server.json("/api/search?q=tag%3Areviewed", headers=auth)["results"]] == ["v2"]
    finally:
        stop_server(server)
    got = casstore.open(tmp_path / "s").get_annotations("d", "v2")
    assert got["tags"] == ["reviewed"] and [n["text"] for n in got["notes"]] == ["looks good <b>"]


def test_the_hook_refuses_note_events_that_change_the_index_or_are_too_big(tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    init_store(str(remote), bare_remote=True)
    s = casstore.open(tmp_path / "s")
    _model(s, tmp_path, "v1")
    s.push(str(remote))
    _model(s, tmp_path, "v2")
    head = s.refs.get(domain_ref("d"))
    c = s.odb.read(head, Commit)
    parent = s.odb.read(c.parents[0], Commit)
    assert isinstance(c, Commit) and isinstance(parent, Commit)
    sha = s.get_model_info("d", "v2")["commit"]

    def event(tree: bytes, body: str) -> str:
        msg = f"note v2\n\nCas-Event: {body}\nCas-Model: v2\nCas-Commit: {sha}\n"
        return s.odb.write_commit(tree, [head], b"Mallory <m@x>", msg.encode()).decode()

    def push(commit: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "--git-dir", s.path, "push", str(remote), f"{commit}:refs/cas/domains/d"],
                              capture_output=True, text=True, timeout=120)

    for bad, why in ((event(parent.tree, 'note\nCas-Note: "drops v2 from the index"'), "changes the domain index"),
                     (event(c.tree, "note\nCas-Note: " + json.dumps("x" * 140_000)), "more than 131072 bytes"),
                     (event(c.tree, "tag\nCas-Tag: ../../evil"), "invalid name")):
        r = push(bad)
        assert r.returncode != 0 and why in r.stderr, r.stderr
    assert casstore.Store(str(remote)).list_models("d") == ["v1"]  # nothing moved
    s.add_note("d", "v2", "fine")
    s.set_tag("d", "v2", "ok")
    s.push(str(remote))
    assert casstore.Store(str(remote)).get_annotations("d", "v2")["tags"] == ["ok"]
