"""`cas serve`: the JSON API and downloads, over real HTTP from a real `cas serve` process."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

import casstore
from casstore.serve import data
from tests.conftest import write_random
from tests.helpers.serve import (
    BIG,
    Served,
    Server,
    _flip_chunk,
    build_demo_store,
    serve_store,
    start_server,
    stop_server,
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from serve_store(tmp_path_factory.mktemp("serve"), build_demo_store)


def test_domains(demo: tuple[Server, str, dict[str, Any]]) -> None:
    server, path, _ = demo
    # the sizes come from a du in the background, waited for 2 s per request
    d = server.poll_json("/api/domains", lambda d: not d["sizes_pending"], "the sizes from du")
    by = {x["domain"]: x for x in d["domains"]}
    assert set(by) == {"iris", "weights"}
    assert by["iris"]["models"] == 4 and by["iris"]["newest"] == "v4"
    assert by["iris"]["last_change"]["event"] == "state-set" and by["iris"]["last_change"]["state"] == "staging"
    with casstore.open(path) as store:
        du = store.du()["domains"]
    assert by["weights"]["stored_bytes"] == du["weights"]["stored_bytes"] > BIG * 0.9
    assert d["states"] == ["production", "staging"]


def test_models_newest_first_paged_and_filtered(demo: tuple[Server, str, dict[str, Any]]) -> None:
    server, path, _ = demo
    with casstore.open(path) as store:
        expected = store.list_models("iris")
    d = server.json("/api/domains/iris/models")
    assert [m["model_id"] for m in d["models"]] == expected == ["v4", "v3", "v2", "v1"]
    assert d["total"] == 4 and not d["has_more"]
    row = d["models"][0]
    assert row["frameworks"] == {"model": "sklearn"} and row["states"] == ["staging"]
    assert row["author"].startswith("Ana") and row["size"] > 0 and row["new_bytes"] >= 0
    p1 = server.json("/api/domains/iris/models?limit=3")
    p2 = server.json("/api/domains/iris/models?limit=3&offset=3")
    assert [m["model_id"] for m in p1["models"] + p2["models"]] == expected
    assert p1["has_more"] and not p2["has_more"]
    assert p2["total"] == 4  # the last page knows the total: it walked to the end
    # a first page of a big domain does not wait for the count; it is counted in the background
    server.poll_json("/api/domains/iris/models?limit=3", lambda d: d["total"] == 4, "the background model count")
    prod = server.json("/api/domains/iris/models?state=production")
    assert [m["model_id"] for m in prod["models"]] == ["v2"] and prod["total"] == 1
    err = server.json("/api/domains/iris/models?state=nope", status=404)
    assert err["type"] == "StateNotFoundException" and err["state"] == "nope"


def test_history_is_cas_log(demo: tuple[Server, str, dict[str, Any]]) -> None:
    server, path, _ = demo
    with casstore.open(path) as store:
        expected = [e.as_dict() for e in store.log("iris")]
    d = server.json("/api/domains/iris/log")
    # each event also says who signed it (docs/signing.md): nobody, in this store
    assert [e.pop("signature")["status"] for e in d["events"]] == ["unsigned"] * len(expected)
    assert d["events"] == expected
    assert [e["event"] for e in d["events"][:4]] == ["state-set", "state-set", "delete", "commit"]
    page2 = server.json("/api/domains/iris/log?offset=2&limit=2")
    assert [{k: v for k, v in e.items() if k != "signature"} for e in page2["events"]] == expected[2:4]
    assert page2["has_more"]


def test_model_page_data(demo: tuple[Server, str, dict[str, Any]]) -> None:
    server, path, _ = demo
    m = server.json("/api/domains/iris/models/v2")
    fw = m["frameworks"]["model"]
    assert fw["class"] == "sklearn.tree._classes.DecisionTreeClassifier"
    assert fw["format"] == "joblib" and fw["executes_code"] is True
    assert m["states"] == ["production"]
    assert {f["path"] for f in m["files"]} == {"model.joblib", "notes.txt"}
    assert all(f["digest"].startswith("blake3:") for f in m["files"])
    assert m["extra_metadata"]["eval"] == {"loss": pytest.approx(1 / 3)}
    assert m["load"]["python"] == f"casstore.open({path!r}).load('iris', 'v2')"
    w = server.json("/api/domains/weights/models/w1")
    assert w["frameworks"]["model"]["executes_code"] is False


def test_compare_is_cas_diff(demo: tuple[Server, str, dict[str, Any]]) -> None:
    server, path, _ = demo
    d = server.json("/api/domains/iris/compare?a=v1&b=v3")
    with casstore.open(path) as store:
        expected = store.diff("iris", "v1", "v3")
    for k in ("added", "removed", "unchanged", "changed", "metadata"):
        assert d[k] == expected[k]
    assert d["unchanged"] == ["notes.txt"] and d["changed"][0]["path"] == "model.joblib"
    assert set(d["metadata"]["changed"]) == {"depth", "accuracy", "eval"}
    assert d["shared"]["bytes_shared"] >= len(b"trained on iris\n")
    assert d["models"]["a"]["model_id"] == "v1" and d["models"]["b"]["model_id"] == "v3"


def test_metrics_newest_last(demo: tuple[Server, str, dict[str, Any]]) -> None:
    server, _, _ = demo
    d = server.json("/api/domains/iris/metrics")
    assert [v["model_id"] for v in d["versions"]] == ["v1", "v2", "v3", "v4"]
    assert set(d["series"]) == {"accuracy", "depth", "eval.loss"}  # strings are no metrics
    assert d["series"]["depth"] == [1, 2, 3, 4]
    assert d["series"]["accuracy"] == sorted(d["series"]["accuracy"])  # deeper trees fit iris better
    assert d["series"]["eval.loss"] == pytest.approx([1 / 2, 1 / 3, 1 / 4, 1 / 5])


def test_downloads_stream_the_exact_bytes(demo: tuple[Server, str, dict[str, Any]]) -> None:
    server, _, facts = demo
    st, h, body = server.request("GET", "/files/iris/v1/notes.txt")
    assert st == 200 and body == facts["notes"] and h["content-length"] == str(len(facts["notes"]))
    assert 'filename="notes.txt"' in h["content-disposition"]
    st, h, body = server.request("GET", "/files/weights/w1/weights.bin")
    assert st == 200 and h["content-length"] == str(BIG) and body == facts["big"]
    st, h, body = server.request("GET", "/files/weights/w1/" + quote('模型 "q" 1.txt'))
    assert st == 200 and body == b"odd name\n"
    assert h["content-disposition"] == (
        "attachment; filename=\"__ _q_ 1.txt\"; filename*=UTF-8''%E6%A8%A1%E5%9E%8B%20%22q%22%201.txt")
    st, _, body = server.request("GET", "/files/iris/v1/nope.txt")
    assert st == 404 and b"no file" in body


@pytest.mark.parametrize("url", [
    "/files/../../etc/passwd",
    "/files/%2e%2e/%2e%2e/etc/passwd",
    "/files/iris/v1/../../../../etc/passwd",
    "/files/iris/v1/..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/files/iris/v1/%2fetc%2fpasswd",
    "/files/iris/v1//etc/passwd",
    "/files/iris/..%2F..%2F..%2Fetc/passwd",
    "/files/%2E%2E%2F%2E%2E/x/etc/passwd",
    "/static/../../../../../../etc/passwd",
    "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/static/..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/api/domains/..%2F..%2Fetc/models",
    "/d/%2e%2e/m/passwd",
])
def test_path_traversal_is_refused(demo: tuple[Server, str, dict[str, Any]], url: str) -> None:
    server, _, _ = demo
    st, _, body = server.request("GET", url)
    assert st in (400, 404), (url, st)
    assert b"root:" not in body


def test_invalid_and_unknown_names(demo: tuple[Server, str, dict[str, Any]]) -> None:
    server, _, _ = demo
    err = server.json("/api/domains/iris/models/bad%20id", status=400)
    assert err["type"] == "InvalidIdError"
    err = server.json("/api/domains/iris/models/v9", status=404)
    assert err == {"error": "model 'v9' not found in domain 'iris'", "type": "ModelNotFoundException",
                   "domain": "iris", "model_id": "v9"}
    st, h, body = server.request("GET", "/d/nowhere")
    assert st == 404 and h["content-type"].startswith("text/html") and b"domain &#39;nowhere&#39; not found" in body


def test_pages_render_and_escape(demo: tuple[Server, str, dict[str, Any]]) -> None:
    server, _, _ = demo
    for url in ("/", "/d/iris", "/d/iris?state=production", "/d/iris/log", "/d/iris/m/v2",
                "/d/iris/compare?a=v1&b=v2", "/d/iris/metrics", "/static/style.css"):
        st, _, body = server.request("GET", url)
        assert st == 200, url
    _, _, body = server.request("GET", "/d/iris/m/v2")
    assert b"<script>alert(1)</script>" not in body and b"&lt;script&gt;alert(1)&lt;/script&gt;" in body
    _, _, body = server.request("GET", "/d/iris/metrics")
    assert body.count(b"<svg") == 3
    st, h, _ = server.request("GET", "/d/iris/compare")
    assert st == 303 and h["location"] == "/d/iris/compare?a=v3&b=v4"


def test_openapi_describes_the_api(demo: tuple[Server, str, dict[str, Any]]) -> None:
    server, _, _ = demo
    spec = server.json("/api/openapi.json")
    assert spec["openapi"].startswith("3.")
    assert {"/api/domains", "/api/domains/{domain}/models", "/api/domains/{domain}/log",
            "/api/domains/{domain}/models/{model_id}", "/api/domains/{domain}/compare",
            "/api/domains/{domain}/metrics", "/files/{domain}/{model_id}/{path}"} <= set(spec["paths"])
    assert not any("states/{state}" in p for p in spec["paths"])  # read-only: no write routes at all


def test_read_only_by_default(demo: tuple[Server, str, dict[str, Any]]) -> None:
    server, _, _ = demo
    st, _, _ = server.request("PUT", "/api/domains/iris/models/v1/states/production")
    assert st in (404, 405)
    st, _, _ = server.request("POST", "/d/iris/m/v1/states", body=b"state=production&action=set",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert st in (404, 405)
    assert server.json("/api/domains/iris/models/v1")["states"] == []


def test_foreign_host_header_is_refused(demo: tuple[Server, str, dict[str, Any]]) -> None:
    """Without a token only loopback names are answered: a DNS-rebinding page gets nothing."""
    server, _, _ = demo
    st, _, body = server.request("GET", "/api/domains", headers={"Host": "attacker.example:8780"})
    assert st == 403 and b"iris" not in body
    assert server.request("GET", "/api/domains", headers={"Host": "localhost:8780"})[0] == 200
    assert server.request("GET", "/api/domains", headers={"Host": "[::1]:8780"})[0] == 200
    assert server.request("GET", "/api/domains", headers={"Host": "[fe80::1]:8780"})[0] == 403
    assert server.request("GET", "/api/domains", headers={"Host": "127.0.0.1.attacker.example"})[0] == 403


def test_token_and_write_mode(tmp_path: Path, iris_model: object) -> None:
    with casstore.open(tmp_path / "s") as store:
        store.commit_models("d", model=iris_model, model_id="m1")
        store.create_model_state("production")
    r = subprocess.run([sys.executable, "-m", "casstore", "--store", str(tmp_path / "s"), "serve",
                        "--host", "0.0.0.0", "--port", "0"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--token" in r.stderr
    r = subprocess.run([sys.executable, "-m", "casstore", "--store", str(tmp_path / "s"), "serve",
                        "--write", "--port", "0"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--write needs a --token" in r.stderr

    server = start_server(str(tmp_path / "s"), "--write", env={"CAS_SERVE_TOKEN": "s3cret"})
    try:
        assert server.request("GET", "/api/domains")[0] == 401
        assert server.request("GET", "/static/style.css")[0] == 401
        assert server.request("GET", "/api/domains", headers={"Authorization": "Bearer wrong"})[0] == 401
        auth = {"Authorization": "Bearer s3cret"}
        assert server.json("/api/domains", headers=auth)["domains"][0]["domain"] == "d"
        st, h, _ = server.request("GET", "/d/d?token=s3cret&page=1")
        assert st == 303 and h["location"] == "/d/d?page=1" and "cas_token=s3cret" in h["set-cookie"]
        assert "httponly" in h["set-cookie"].lower() and "samesite=strict" in h["set-cookie"].lower()
        assert server.request("GET", "/d/d", headers={"Cookie": "cas_token=s3cret"})[0] == 200

        st, _, _ = server.request("PUT", "/api/domains/d/models/m1/states/production")
        assert st == 401  # writes need the token like everything else
        st, _, body = server.request("PUT", "/api/domains/d/models/m1/states/production", headers=auth)
        assert st == 200 and json.loads(body)["states"] == ["production"]
        st, _, _ = server.request("POST", "/d/d/m/m1/states", body=b"state=production&action=unset",
                                  headers={**auth, "Origin": "http://attacker.example",
                                           "Content-Type": "application/x-www-form-urlencoded"})
        assert st == 403
        st, h, _ = server.request("POST", "/d/d/m/m1/states", body=b"state=production&action=unset",
                                  headers={**auth, "Content-Type": "application/x-www-form-urlencoded"})
        assert st == 303 and h["location"] == "/d/d/m/m1"
    finally:
        stop_server(server)
    with casstore.open(tmp_path / "s") as store:
        assert store.get_model_states("d", "m1") == []
        assert [e.event for e in store.log("d")[:2]] == ["state-unset", "state-set"]


@pytest.mark.parametrize(("size", "index"), [(1 << 20, -1), (BIG, 0)])
def test_damaged_chunk_gives_an_error_page_naming_it(tmp_path: Path, size: int, index: int) -> None:
    """Small files are verified whole before sending; a big one's first chunk before the headers."""
    data_ = write_random(tmp_path / "w.bin", size, seed=11)
    with casstore.open(tmp_path / "s") as store:
        store.commit_models("d", model=str(tmp_path / "w.bin"), model_id="m")
    oid = _flip_chunk(str(tmp_path / "s"), index)
    server = start_server(str(tmp_path / "s"))
    try:
        st, h, body = server.request("GET", "/files/d/m/w.bin")
        assert st == 500 and h["content-type"].startswith("text/html")
        assert oid.encode() in body and data_[:4096] not in body
        info = server.json("/api/domains/d/models/m")  # the manifest is intact: the model page still works
        assert info["files"][0]["size"] == size
    finally:
        stop_server(server)


def test_damage_mid_stream_cuts_the_download_short(tmp_path: Path) -> None:
    """Past the first chunk the headers are sent: the connection ends before Content-Length, and
    everything that did arrive is the file's true prefix."""
    data_ = write_random(tmp_path / "w.bin", BIG, seed=12)
    with casstore.open(tmp_path / "s") as store:
        store.commit_models("d", model=str(tmp_path / "w.bin"), model_id="m")
    _flip_chunk(str(tmp_path / "s"), 40)
    server = start_server(str(tmp_path / "s"))
    try:
        c = http.client.HTTPConnection(server.host, server.port, timeout=60)
        c.request("GET", "/files/d/m/w.bin")
        r = c.getresponse()
        assert r.status == 200 and r.getheader("content-length") == str(BIG)
        with pytest.raises(http.client.IncompleteRead) as ei:
            r.read()
        got = ei.value.partial
        assert 0 < len(got) < BIG and got == data_[: len(got)]
        c.close()
    finally:
        stop_server(server)


def test_listing_follows_deletions_and_recommits(tmp_path: Path, iris_model: object) -> None:
    """The history walk agrees with list_models after deletes and an ID reused."""
    with casstore.open(tmp_path / "s") as store:
        for mid in ("a", "b", "c", "d"):
            store.commit_models("x", model=iris_model, model_id=mid)
        store.delete_model("x", "b")
        store.delete_model("x", "a")
        store.commit_models("x", model=iris_model, model_id="a")  # reused: now the newest
        page = data.list_page(store, "x", limit=2)
        assert [r["model_id"] for r in page["models"]] == ["a", "d"] and page["has_more"]
        assert page["total"] == 3
        rest = data.list_page(store, "x", offset=2, limit=2)
        assert [r["model_id"] for r in rest["models"]] == ["c"] and not rest["has_more"]
        assert store.list_models("x") == ["a", "d", "c"]
        assert page["models"][0]["commit"] == store.get_model_info("x", "a")["commit"]
        # the cheap counts (directory listings) agree with the Store's own
        store.commit_models("y.z", model=iris_model, model_id="only")
        assert data.list_domains(store) == store.list_domains() == ["x", "y.z"]
        assert data.count_models(store, "x") == 3 and data.count_models(store, "nowhere") == 0
        subprocess.run(["git", "--git-dir", store.path, "pack-refs", "--all"], check=True)
        store.commit_models("x", model=iris_model, model_id="e")  # loose, next to the packed ones
        assert data.count_models(store, "x") == 4 == len(store.list_models("x"))
        assert data.list_domains(store) == ["x", "y.z"]
        assert [r["model_id"] for r in data.list_page(store, "x")["models"]] == ["e", "a", "d", "c"]


def test_url_quoting_of_file_names(demo: tuple[Server, str, dict[str, Any]]) -> None:
    server, _, facts = demo
    st, _, body = server.request("GET", "/files/iris/v1/" + quote("notes.txt"))
    assert st == 200 and body == facts["notes"]
