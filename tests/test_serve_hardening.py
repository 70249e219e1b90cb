"""`cas serve` against damage, hostile names and stalled clients (issue 20, items 4-8).

Real `cas serve` processes over loopback HTTP, real sockets for the stalled clients.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import msgpack
import pytest

import casstore
from casstore.errors import CasError
from casstore.frameworks import FRAMEWORKS, entry_executes_code
from casstore.model.manifest import FrameworkEntry
from tests.conftest import write_random
from tests.helpers.hostile import forge_model
from tests.helpers.serve import Server, start_server, stop_server


@pytest.fixture
def served() -> Iterator[Callable[..., Server]]:
    """Start servers with ``served(store_path, *args)``; all stopped at the end."""
    started: list[Server] = []

    def start(path: str, *args: str, **kw: Any) -> Server:
        started.append(start_server(path, *args, **kw))
        return started[-1]

    yield start
    for s in started:
        stop_server(s)


def forge(s: casstore.Store, source: str, new_id: str, change: Callable[[dict[str, Any]], None]) -> None:
    """A model ``d/new_id``: ``d/source`` with its manifest rewritten by ``change``, as a hostile
    (or an older) casstore could have written it; the ref only, no history event."""
    def renamed(doc: dict[str, Any]) -> None:
        doc["model_id"] = new_id
        change(doc)

    assert s.refs.get(b"refs/cas/models/d/" + new_id.encode()) is None
    forge_model(s, new_id, renamed, source=source)
    assert s.refs.get(b"refs/cas/models/d/" + new_id.encode()) is not None


def cas(store: Path | str, *args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "casstore", "--store", str(store), *args],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


# -- item 4: "loading runs code?" has one source --------------------------------------------

#: every format a framework writes (its data formats, and the pickles: see each Saved(...))
CODE_FORMATS = ("joblib", "torch-pickle", "gensim-pickle", "pickle", "cloudpickle", "dill")
UNKNOWN_FORMAT = "no-such-format"


def test_executes_code_is_the_frameworks_rule_everywhere(tmp_path: Path, served: Callable[..., Server]) -> None:
    formats = sorted({f for fw in FRAMEWORKS for f in fw.data_formats} | set(CODE_FORMATS) | {UNKNOWN_FORMAT})
    pairs = [(fw.name, f) for fw in FRAMEWORKS for f in formats] + [("no-such-framework", "safetensors")]
    f = tmp_path / "w.bin"
    f.write_bytes(os.urandom(1000))
    with casstore.open(tmp_path / "s") as s:
        s.commit_models("d", model=str(f), model_id="plain")

        def entries(doc: dict[str, Any]) -> None:
            path = doc["files"][0]["path"]
            # each claims to be data: the manifest's flag must not decide
            doc["frameworks"] = [{"kwarg": f"k{i}", "framework": fw, "class": "C", "format": fmt,
                                  "files": [path], "library": {}, "executes_code": False}
                                 for i, (fw, fmt) in enumerate(pairs)]

        forge(s, "plain", "many", entries)
        truth = {f"k{i}": entry_executes_code(FrameworkEntry(f"k{i}", fw, "C", fmt, [], {}, False))
                 for i, (fw, fmt) in enumerate(pairs)}
        info = s.get_model_info("d", "many")
    by_pair = dict(zip(pairs, truth.values(), strict=True))
    # the rule itself, stated independently: pickles and anything unknown run code
    for fw in FRAMEWORKS:
        for fmt in (*CODE_FORMATS, UNKNOWN_FORMAT):
            assert by_pair[(fw.name, fmt)], (fw.name, fmt)
        for fmt in fw.data_formats:
            assert not by_pair[(fw.name, fmt)], (fw.name, fmt)
    assert by_pair[("no-such-framework", "safetensors")]

    assert {k: v["executes_code"] for k, v in info["frameworks"].items()} == truth
    show = cas(tmp_path / "s", "show", "d", "many")
    shown = {line.split(":")[0].strip(): "loading runs code" in line
             for line in show.splitlines() if line.startswith("  k")}
    assert shown == truth
    server = served(str(tmp_path / "s"))
    api = server.json("/api/domains/d/models/many")
    assert {k: v["executes_code"] for k, v in api["frameworks"].items()} == truth
    st, _, page = server.request("GET", "/d/d/m/many")
    assert st == 200
    rows = page.decode().split('<table id="frameworks">')[1].split("</table>")[0].split("<tr><td>")[1:]
    on_page = {r.split("</td>")[0]: '<span class="warn">yes' in r for r in rows}
    assert on_page == truth


# -- item 5: one damaged thing does not take the server down ---------------------------------

def _two_domains(tmp_path: Path) -> Path:
    f = tmp_path / "w.bin"
    f.write_bytes(os.urandom(5000))
    with casstore.open(tmp_path / "s") as s:
        s.commit_models("good", model=str(f), model_id="g1")
        s.commit_models("bad", model=str(f), model_id="b1")
    return tmp_path / "s"


def _no_traceback(body: bytes) -> None:
    assert b"Traceback" not in body and b'File "' not in body


@pytest.mark.parametrize(("ref", "content"), [
    ("refs/cas/domains/bad", b"this is not an object id\n"),  # a damaged history ref
    ("refs/cas/domains/bad", b"1234567890123456789012345678901234567890\n"),  # a missing history commit
    ("refs/cas/models/bad/b1", b"garbage\n"),  # a garbage model ref
    ("refs/cas/models/bad/b2", b"1234567890123456789012345678901234567890\n"),  # a model ref to nothing
])
def test_a_damaged_domain_leaves_the_others_browsable(tmp_path: Path, served: Callable[..., Server],
                                                      ref: str, content: bytes) -> None:
    path = _two_domains(tmp_path)
    (path / ref).write_bytes(content)
    server = served(str(path))  # starts at all
    d = server.json("/api/domains")
    rows = {r["domain"]: r for r in d["domains"]}
    assert rows["good"]["newest"] == "g1" and rows["good"]["models"] == 1 and "error" not in rows["good"]
    st, _, page = server.request("GET", "/")
    assert st == 200 and b"/d/good/m/g1" in page
    _no_traceback(page)
    assert server.json("/api/domains/good/models")["models"][0]["model_id"] == "g1"
    assert server.request("GET", "/d/good")[0] == 200
    assert server.request("GET", "/d/good/m/g1")[0] == 200
    if ref.endswith("/b2"):  # not in the history: the listing never meets it, its own page names it
        damaged = ["/api/domains/bad/models/b2", "/d/bad/m/b2"]
    else:
        assert rows["bad"]["error"] and b"damaged: " in page
        damaged = ["/api/domains/bad/models", "/d/bad"]
    for url in damaged:
        st, _, body = server.request("GET", url)
        assert st == 500, (url, st, body[:300])
        _no_traceback(body)
        if url.startswith("/api/"):
            assert json.loads(body)["domain"] == "bad"
        else:
            assert b'<code id="error-domain">bad</code>' in body


def test_odd_msgpack_metadata_is_shown_not_500(tmp_path: Path, served: Callable[..., Server]) -> None:
    f = tmp_path / "w.bin"
    f.write_bytes(os.urandom(5000))
    meta = {"when": msgpack.Timestamp(1_700_000_000, 5), "raw": b"\xff\x00", "nan": float("nan"),
            "inf": float("-inf"), 7: "int key", b"\xfe": "bytes key", "ext": msgpack.ExtType(5, b"xy"),
            "nested": {"t": [msgpack.Timestamp(0, 0)]}}
    with casstore.open(tmp_path / "s") as s:
        s.commit_models("d", model=str(f), model_id="a", extra_metadata={"when": msgpack.Timestamp(1, 0)})
        s.commit_models("d", model=str(f), model_id="b", extra_metadata=meta)  # commit accepts all of it
        expected = s.get_model_info("d", "b")["extra_metadata"]
    server = served(str(tmp_path / "s"))
    m = server.json("/api/domains/d/models/b")["extra_metadata"]
    assert m["raw"] == "ff00" and m["nan"] == "NaN" and m["inf"] == "-Infinity" and m["7"] == "int key"
    assert m["fe"] == "bytes key" and m["when"] == str(expected["when"])
    assert json.loads(cas(tmp_path / "s", "show", "--json", "d", "b"))["extra_metadata"] == m  # as cas show
    c = server.json("/api/domains/d/compare?a=a&b=b")
    assert c["metadata"]["changed"]["when"] == [str(msgpack.Timestamp(1, 0)), m["when"]]
    for url in ("/d/d/m/b", "/d/d/compare?a=a&b=b", "/d/d/metrics", "/api/domains/d/metrics"):
        st, _, body = server.request("GET", url)
        assert st == 200, (url, body[:300])


def test_a_non_utf8_form_is_a_400(tmp_path: Path, served: Callable[..., Server]) -> None:
    path = _two_domains(tmp_path)
    with casstore.open(path) as s:
        s.create_model_state("production")
    server = served(str(path), "--write", env={"CAS_SERVE_TOKEN": "t0k"})
    st, _, body = server.request("POST", "/d/good/m/g1/states", body=b"state=\xff\xfe&action=set",
                                 headers={"Authorization": "Bearer t0k",
                                          "Content-Type": "application/x-www-form-urlencoded"})
    assert st == 400 and "not UTF-8" in json.loads(body)["error"]
    _no_traceback(body)
    with casstore.open(path) as s:
        assert s.get_model_states("good", "g1") == []


def test_metrics_spanning_the_float_range_draw_real_coordinates(tmp_path: Path,
                                                                served: Callable[..., Server]) -> None:
    f = tmp_path / "w.bin"
    f.write_bytes(os.urandom(5000))
    big = sys.float_info.max
    with casstore.open(tmp_path / "s") as s:
        for i, v in enumerate([big, -big, 1e308, 5e-324]):
            s.commit_models("d", model=str(f), model_id=f"v{i}", extra_metadata={"loss": v, "same": big})
    server = served(str(tmp_path / "s"))
    st, _, page = server.request("GET", "/d/d/metrics")
    assert st == 200
    svg = page.decode()
    assert svg.count("<circle") == 8
    assert "nan" not in svg.lower() and "inf" not in svg.lower()


# -- item 6: bounded memory under stalled clients ---------------------------------------------

def _proc_status(pid: int) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "Threads"):
                out[k] = int(v.split()[0])
    return out  # VmRSS in KiB


def _stalled_client(server: Server, path: str) -> socket.socket:
    """A client that asks for ``path`` and then reads nothing."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(30)
    s.connect((server.host, server.port))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return s


def _wait(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


def test_stalled_clients_do_not_grow_memory(tmp_path: Path, served: Callable[..., Server]) -> None:  # noqa: PLR0915 - the scenario's steps, each checked
    big = write_random(tmp_path / "big.bin", 40 << 20, seed=5)
    small = write_random(tmp_path / "small.bin", 6 << 20, seed=6)  # verified whole before sending
    with casstore.open(tmp_path / "s") as s:
        s.commit_models("d", model=str(tmp_path / "big.bin"), model_id="big")
        s.commit_models("d", model=str(tmp_path / "small.bin"), model_id="small")
    cas(tmp_path / "s", "config", "cas.serveMaxDownloads", "4")
    cas(tmp_path / "s", "config", "cas.serveDownloadBuffer", "32m")
    cas(tmp_path / "s", "config", "cas.serveStallTimeout", "30")
    server = served(str(tmp_path / "s"))
    pid = server.proc.pid
    assert server.request("GET", "/files/d/small/small.bin")[2] == small  # warm: the first download's set-up
    time.sleep(1)
    base = _proc_status(pid)
    # the bound: 32 MiB of downloads plus what the allocator and the 100 connections keep
    bound_kib = (32 + 64) << 10
    clients = []
    try:
        for i in range(100):
            clients.append(_stalled_client(server, "/files/d/big/big.bin" if i % 2 else "/files/d/small/small.bin"))
            if i % 10 == 9:
                time.sleep(0.2)
                grown = _proc_status(pid)["VmRSS"] - base["VmRSS"]
                assert grown < bound_kib, f"RSS grew {grown >> 10} MiB with {i + 1} stalled clients"
        # beyond the slots, a clear 503
        st, h, body = server.request("GET", "/files/d/big/big.bin")
        assert st == 503 and h["retry-after"] and "cas.serveMaxDownloads" in json.loads(body)["error"]
        time.sleep(2)
        held = _proc_status(pid)
        print(f"\nserver with 100 stalled clients: RSS {base['VmRSS'] >> 10} -> {held['VmRSS'] >> 10} MiB, "
              f"threads {base['Threads']} -> {held['Threads']}")
        assert held["VmRSS"] - base["VmRSS"] < bound_kib, (base, held)
        # threads: anyio's pool (at most 40, busy while the burst of requests is answered)
        # and two readers per download slot; the code before kept two per stalled client
        assert held["Threads"] - base["Threads"] < 40 + 2 * 4, (base, held)
    finally:
        closed = time.monotonic()
        for c in clients:
            c.close()

    def fresh_download_works() -> bool:
        st, _, body = server.request("GET", "/files/d/small/small.bin")
        return st == 200 and body == small

    # disconnected: the slots come back at once, well before the stall timeout (30 s) ...
    _wait(fresh_download_works, 10, "a download slot after the clients disconnected")
    assert time.monotonic() - closed < 25
    # ... and the readers' threads end (anyio drops a worker idle for 10 s when it is next used)
    def threads_back() -> bool:
        server.request("GET", "/api/states")
        return _proc_status(pid)["Threads"] <= base["Threads"] + 4

    _wait(threads_back, 40, "threads back to the baseline")
    assert server.request("GET", "/files/d/big/big.bin")[2] == big
    after = _proc_status(pid)
    print(f"after they disconnected: RSS {after['VmRSS'] >> 10} MiB, threads {after['Threads']}")
    assert after["VmRSS"] - base["VmRSS"] < bound_kib, (base, after)

    # clients that stay connected but read nothing are cut after cas.serveStallTimeout
    stalled = [_stalled_client(server, "/files/d/big/big.bin") for _ in range(4)]
    try:
        time.sleep(1)
        assert server.request("GET", "/files/d/small/small.bin")[0] == 503
        _wait(fresh_download_works, 90, "a download slot after the stall timeout")
    finally:
        for c in stalled:
            c.close()


# -- item 7: names that look like other names ------------------------------------------------

HIDDEN = ["\u202e", "\u2028", "\x85", "\u200b", "\ufeff", "\u2066", "\u00a0"]


@pytest.mark.parametrize("ch", HIDDEN)
def test_commit_refuses_names_that_display_as_others(tmp_path: Path, ch: str) -> None:
    f = tmp_path / f"model{ch}gpj.exe"
    f.write_bytes(b"x" * 100)
    ok = tmp_path / "ok.bin"
    ok.write_bytes(b"y" * 100)
    with casstore.open(tmp_path / "s") as s:
        with pytest.raises(CasError, match=f"U\\+{ord(ch):04X}"):
            s.commit_models("d", model=str(f), model_id="m1")
        with pytest.raises(CasError, match=f"U\\+{ord(ch):04X}"):
            s.commit_models("d", model=str(ok), model_id="m2", extra_files=[str(f)])
        assert s.list_models("d") == [] if "d" in s.list_domains() else True
        assert s.fsck().ok


def test_stored_and_pulled_hidden_names_are_escaped_wherever_shown(tmp_path: Path,
                                                                   served: Callable[..., Server]) -> None:
    f = tmp_path / "w.bin"
    f.write_bytes(os.urandom(3000))
    evil = "report\u202egpj.exe\u2028x\x85"
    with casstore.open(tmp_path / "up") as s:
        s.commit_models("d", model=str(f), model_id="plain")

        def rename(doc: dict[str, Any]) -> None:  # as an older casstore could have stored it
            doc["files"][0]["path"] = evil
            doc["frameworks"][0]["files"] = [evil]
            doc["author"] = "Eve \u202eevE"

        forge(s, "plain", "odd", rename)
    with casstore.open(tmp_path / "down") as s:
        s.pull(str(tmp_path / "up"))  # pulled names follow the same rule: kept, escaped when shown
        assert s.get_model_info("d", "odd")["files"][0]["path"] == evil  # exact in the API
    escaped = "report\\u202egpj.exe\\u2028x\\u0085"
    for store in ("up", "down"):
        out = cas(tmp_path / store, "show", "d", "odd")
        assert escaped in out and "\u202e" not in out and "\u2028" not in out and "\x85" not in out
        assert "Eve \\u202eevE" in out
        diff = cas(tmp_path / store, "diff", "d", "plain", "odd")
        assert "\u202e" not in diff and "\\u202e" in diff
        assert json.loads(cas(tmp_path / store, "show", "--json", "d", "odd"))["files"][0]["path"] == evil
    server = served(str(tmp_path / "down"))
    assert server.json("/api/domains/d/models/odd")["files"][0]["path"] == evil  # JSON stays exact
    st, h, body = server.request("GET", "/files/d/odd/" + quote(evil))
    assert st == 200 and body == f.read_bytes()
    assert h["content-disposition"] == "attachment; filename=\"report_gpj.exe_x_\"; filename*=UTF-8''report_gpj.exe_x_"
    for url in ("/d/d/m/odd", "/d/d/compare?a=plain&b=odd"):
        st, _, page = server.request("GET", url)
        text = page.decode()
        assert st == 200 and escaped in text and "\u202e" not in text and "\u2028" not in text, url


# -- item 8a: a token redirect stays on the server --------------------------------------------

@pytest.mark.parametrize("path", ["//evil.com/x", "///evil.com/x", "/\\evil.com/x", "//evil.com"])
def test_token_redirect_stays_on_the_server(tmp_path: Path, served: Callable[..., Server], path: str) -> None:
    server = served(str(_two_domains(tmp_path)), env={"CAS_SERVE_TOKEN": "t0k"})
    st, h, _ = server.request("GET", path + "?token=t0k&a=1")
    assert st == 303
    loc = h["location"]
    assert loc.startswith("/") and not loc.startswith("//") and not loc.startswith("/\\"), loc
    assert "evil.com" in loc and loc.endswith("?a=1")  # the same path, on this server
