"""`cas serve` as an ML registry page (issue 24): metric columns, sorting and filters,
file previews, model cards, search across domains, richer compare and charts.

One real ``cas serve`` process over a store with a 200-model domain (``zoo``),
a domain of models carrying files to preview (``cards``) and a modelstore-style
domain (``ms``: the user's metrics under ``modelstore.extra``, hyperparameters
under ``modelstore.model.parameters``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import casstore
from tests.helpers.serve import (
    ZOO,
    Served,
    Server,
    build_ml_store,
    png_bytes,
    serve_store,
    start_server,
    stop_server,
    zoo_accuracy,
)


@pytest.fixture(scope="module")
def ml(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from serve_store(tmp_path_factory.mktemp("serve-ml"), build_ml_store)


def _ids(d: dict[str, Any]) -> list[str]:
    return [m["model_id"] for m in d["models"]]


def test_metric_columns_default_to_shared_results(ml: tuple[Server, str, dict[str, Any]]) -> None:
    server, _, _ = ml
    d = server.json("/api/domains/zoo/models")
    assert d["columns"][:3] == ["accuracy", "epochs", "loss"] or set(d["columns"]) == {"accuracy", "epochs",
                                                                                          "loss", "lr"}
    assert _ids(d)[0] == "z199" and d["models"][0]["metrics"]["accuracy"] == zoo_accuracy(199)
    # a modelstore import: the user's own metrics, not the framework's hyperparameters
    ms = server.json("/api/domains/ms/models")
    assert ms["columns"] == ["modelstore.extra.acc", "modelstore.extra.f1"]
    # chosen by the visitor
    d = server.json("/api/domains/zoo/models?cols=loss,epochs")
    assert d["columns"] == ["loss", "epochs"]


def test_sort_by_metric_over_the_whole_domain(ml: tuple[Server, str, dict[str, Any]]) -> None:
    server, _, _ = ml
    best = sorted(range(ZOO), key=lambda i: -zoo_accuracy(i))
    d = server.json("/api/domains/zoo/models?sort=accuracy&limit=10")
    assert not d["pending"] and d["total"] == ZOO
    assert _ids(d) == [f"z{i:03d}" for i in best[:10]]
    page2 = server.json("/api/domains/zoo/models?sort=accuracy&offset=10&limit=10")
    assert _ids(page2) == [f"z{i:03d}" for i in best[10:20]]
    low = server.json("/api/domains/zoo/models?sort=loss&order=asc&limit=5")
    assert _ids(low) == _ids(d)[:5]
    by_id = server.json("/api/domains/zoo/models?sort=model_id&order=asc&limit=3")
    assert _ids(by_id) == ["z000", "z001", "z002"]


def test_filters(ml: tuple[Server, str, dict[str, Any]]) -> None:
    server, _, _ = ml
    want = {f"z{i:03d}" for i in range(ZOO) if zoo_accuracy(i) > 0.9}
    d = server.json("/api/domains/zoo/models?filter=accuracy%20%3E%200.9&limit=500")
    assert set(_ids(d)) == want and d["total"] == len(want) > 0
    both = server.json("/api/domains/zoo/models?" + "filter=accuracy+>+0.9+and+dataset+%3D+iris-v2&limit=500")
    assert set(_ids(both)) == {m for m in want if int(m[1:]) % 5 == 0}
    ana = server.json("/api/domains/zoo/models?author=ana&limit=500")
    assert ana["total"] == ZOO // 2 and all(m["author"].startswith("Ana") for m in ana["models"])
    prod = server.json("/api/domains/zoo/models?state=production&sort=accuracy")
    assert set(_ids(prod)) == {"z010", "z150"}
    assert server.json("/api/domains/zoo/models?framework=sklearn")["total"] == 0
    assert server.json("/api/domains/zoo/models?framework=model_file")["total"] == ZOO
    bad = server.json("/api/domains/zoo/models?filter=accuracy%20%3E%3E%3E", status=400)
    assert "accuracy" in bad["error"] and "KEY OP VALUE" in bad["error"]


def test_rounding_keeps_values_apart(ml: tuple[Server, str, dict[str, Any]]) -> None:
    from casstore.serve.table import format_column

    assert format_column([0.912341, 0.912349, None, 3]) == ["0.91234", "0.91235", "", "3"]
    assert format_column([0.123456789, 0.5]) == ["0.123", "0.5"]
    server, _, _ = ml
    st, _, body = server.request("GET", "/d/zoo?sort=accuracy")
    assert st == 200
    html = body.decode()
    # the top two differ only in the 5th digit: both shown in full, not as the same 3 digits
    d = server.json("/api/domains/zoo/models?sort=accuracy&limit=50")
    shown = [m["metric_text"]["accuracy"] for m in d["models"]]
    assert len(set(shown)) == len({m["metrics"]["accuracy"] for m in d["models"]})
    assert shown[0] in html and 'class="sort"' in html


def test_model_card_rendered_safely(ml: tuple[Server, str, dict[str, Any]]) -> None:
    server, _, _ = ml
    st, _, body = server.request("GET", "/d/cards/m/c1")
    assert st == 200
    html = body.decode()
    card = html[html.index('id="card"'):html.index("<h2>Frameworks")]
    assert "<h1>Zoo classifier</h1>" in card and "<strong>iris</strong>" in card and "<table>" in card
    assert "<script>" not in card and "&lt;script&gt;" in card  # raw HTML is text, not markup
    assert 'href="javascript:' not in card and 'href="https://example.com/"' in card
    assert server.json("/api/domains/cards/models/c1")["card"]["path"] == "README.md"
    assert server.json("/api/domains/zoo/models/z001")["card"] is None


def test_cas_show_prints_the_card(ml: tuple[Server, str, dict[str, Any]]) -> None:
    import subprocess
    import sys

    _, path, _ = ml
    out = subprocess.run([sys.executable, "-m", "casstore", "--store", path, "show", "cards", "c1"],
                         capture_output=True, text=True, check=True).stdout
    assert "Card (README.md):" in out and "  # Zoo classifier" in out and "  ..." in out
    out = subprocess.run([sys.executable, "-m", "casstore", "--store", path, "show", "zoo", "z001"],
                         capture_output=True, text=True, check=True).stdout
    assert "Card" not in out


def test_previews(ml: tuple[Server, str, dict[str, Any]]) -> None:
    server, _, facts = ml
    api = "/api/domains/cards/models/c1/preview/"
    files = {f["path"] for f in server.json("/api/domains/cards/models/c1")["files"]}
    where = {name: next(p for p in files if p.endswith(name)) for name in facts["files"]}
    csv_ = server.json(api + where["table.csv"])
    assert csv_["kind"] == "csv" and csv_["header"] == ["name", "score"]
    assert csv_["rows"] == [["alpha", "1"], ["beta", "2"], ["<b>x</b>", "3"]]
    js = server.json(api + where["config.json"])
    assert js["kind"] == "json" and json.loads(js["text"]) == {"layers": [4, 8], "act": "relu"}
    assert server.json(api + where["notes.txt"])["text"] == "plain text notes\n"
    st = server.json(api + where["weights.safetensors"])
    assert st["kind"] == "tensors" and st["tensors"] == [{"name": "w", "dtype": "F32", "shape": [2, 3]},
                                                          {"name": "b", "dtype": "F32", "shape": [3]}]
    npy = server.json(api + next(p for p in files if p.endswith("arr.npy")))
    assert npy["tensors"][0]["shape"] == [3, 4] and npy["tensors"][0]["dtype"] == "<f4"
    assert server.json(api + where["plot.png"])["kind"] == "image"
    # the page escapes CSV cells; the image is served with its type, the SVG sandboxed
    st_, _, body = server.request("GET", "/d/cards/m/c1/view/" + where["table.csv"])
    assert st_ == 200 and "&lt;b&gt;x&lt;/b&gt;" in body.decode()
    st_, headers, body = server.request("GET", "/raw/cards/c1/" + where["plot.png"])
    assert st_ == 200 and headers["content-type"] == "image/png" and body == facts["files"]["plot.png"]
    st_, headers, body = server.request("GET", "/raw/cards/c1/" + where["logo.svg"])
    assert st_ == 200 and headers["content-type"] == "image/svg+xml"
    csp = headers["content-security-policy"]
    assert "sandbox" in csp and "default-src 'none'" in csp
    assert headers["x-content-type-options"] == "nosniff"
    # not an image: refused rather than served inline
    st_, _, _ = server.request("GET", "/raw/cards/c1/" + where["notes.txt"])
    assert st_ == 415
    st_, _, _ = server.request("GET", "/raw/cards/c1/no-such-file.png")
    assert st_ == 404


def test_damaged_chunk_is_never_previewed(tmp_path: Path) -> None:
    """A preview reads through open_file: a flipped byte gives an error page naming the chunk,
    not a preview of wrong text; the image route likewise."""
    from tests.helpers.serve import _flip_chunk

    text = "".join(f"line {i}: the quick brown fox\n" for i in range(40_000)).encode()
    (tmp_path / "w.txt").write_bytes(text)
    (tmp_path / "w.png").write_bytes(png_bytes(300, 300))
    with casstore.open(tmp_path / "s") as store:
        store.commit_models("d", model=str(tmp_path / "w.txt"), model_id="m")
        store.commit_models("d", model=str(tmp_path / "w.png"), model_id="p")
    oid = _flip_chunk(str(tmp_path / "s"), 0)
    server = start_server(str(tmp_path / "s"))
    try:
        st, h, body = server.request("GET", "/d/d/m/m/view/w.txt")
        assert st == 500 and oid.encode() in body and b"line 0: the quick" not in body
        st, _, body = server.request("GET", "/api/domains/d/models/m/preview/w.txt")
        assert st == 500 and json.loads(body)["oid"] == oid
        st, _, body = server.request("GET", "/raw/d/p/w.png")
        assert st == 200 and body == (tmp_path / "w.png").read_bytes()  # the intact model is unaffected
    finally:
        stop_server(server)


def test_search_across_domains(ml: tuple[Server, str, dict[str, Any]]) -> None:
    server, _, _ = ml

    def found(q: str) -> set[tuple[str, str]]:
        from urllib.parse import quote

        d = server.json("/api/search?q=" + quote(q))
        assert not d["pending"]
        return {(r["domain"], r["model_id"]) for r in d["results"]}

    high = found("accuracy>0.92")
    assert ("cards", "c1") in high and ("cards", "c2") in high
    assert {m for d, m in high if d == "zoo"} == {f"z{i:03d}" for i in range(ZOO) if zoo_accuracy(i) > 0.92}
    assert found("state:production") == {("zoo", "z010"), ("zoo", "z150")}
    assert found("author:cy") == {("cards", "c1"), ("cards", "c2"), ("ms", "ms0"), ("ms", "ms1"), ("ms", "ms2")}
    assert found("id:z00") == {("zoo", f"z00{i}") for i in range(10)}
    assert found("eval.split=test domain:cards") == {("cards", "c1"), ("cards", "c2")}
    assert found("modelstore.extra.acc >= 0.81") == {("ms", "ms1"), ("ms", "ms2")}
    assert found("iris-v2 author:bo") == {("zoo", f"z{i:03d}") for i in range(0, ZOO, 10)}
    assert found("framework:sklearn") == set()
    st, _, body = server.request("GET", "/search?q=state%3Aproduction")
    assert st == 200 and b'href="/d/zoo/m/z010"' in body


def test_compare_side_by_side(ml: tuple[Server, str, dict[str, Any]]) -> None:
    server, _, _ = ml
    d = server.json("/api/domains/cards/compare?a=c1&b=c2")
    side = {r["key"]: r for r in d["meta_side"]}
    assert side["accuracy"]["status"] == "changed" and side["accuracy"]["delta_text"] == "+0.02"
    assert side["accuracy"]["better"] is True
    assert side["eval.split"]["status"] == "same" and side["eval.split"]["a"] == "test"
    z = server.json("/api/domains/zoo/compare?a=z001&b=z002")
    zs = {r["key"]: r for r in z["meta_side"]}
    assert zs["loss"]["better"] is (zoo_accuracy(2) > zoo_accuracy(1))  # lower loss is better
    assert zs["lr"]["status"] == "same"
    st, _, body = server.request("GET", "/d/cards/compare?a=c1&b=c2")
    html = body.decode()
    assert st == 200 and '<details id="meta-same">' in html and 'class="delta better"' in html
    assert d["changed"] == [] and set(d["removed"]) and d["shared"]["chunks_shared"] > 0


def test_metrics_charts(ml: tuple[Server, str, dict[str, Any]]) -> None:
    server, _, _ = ml
    d = server.json("/api/domains/ms/metrics")
    assert set(d["series"]) == {"modelstore.extra.acc", "modelstore.extra.f1"}  # no hyperparameters
    st, _, body = server.request("GET", "/d/zoo/metrics?keys=accuracy&keys=loss")
    html = body.decode()
    assert st == 200
    combined = html[html.index('id="combined"'):html.index('class="metric"')]
    assert combined.count("<polyline") == 2 and combined.count("<circle") == 2 * ZOO
    assert combined.count('class="legend"') == 2
    # sparse x labels: at most 8 of the 200 versions, the oldest and the newest among them
    labels = combined.count('class="xlabel"')
    assert labels == 8 and ">z000<" in combined and ">z199<" in combined


def test_sorted_page_follows_new_commits(tmp_path: Path) -> None:
    """The cached table is keyed by the history head: a commit or a state change made while
    the server runs shows in the next sorted page, never the table from before."""
    f = tmp_path / "w.bin"
    f.write_bytes(b"x" * 1000)
    with casstore.open(tmp_path / "s") as store:
        for i, acc in enumerate([0.5, 0.7, 0.6]):
            store.commit_models("d", model=str(f), model_id=f"m{i}", extra_metadata={"acc": acc})
        store.create_model_state("prod")
    server = start_server(str(tmp_path / "s"))
    try:
        assert _ids(server.json("/api/domains/d/models?sort=acc")) == ["m1", "m2", "m0"]
        with casstore.open(tmp_path / "s") as store:
            store.commit_models("d", model=str(f), model_id="m3", extra_metadata={"acc": 0.9})
            store.delete_model("d", "m1")
            store.set_model_state("d", "m0", "prod")
        d = server.json("/api/domains/d/models?sort=acc")
        assert _ids(d) == ["m3", "m2", "m0"] and d["models"][2]["states"] == ["prod"]
        assert _ids(server.json("/api/domains/d/models?sort=acc&state=prod")) == ["m0"]
    finally:
        stop_server(server)


def test_table_update_reads_only_what_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a commit and a deletion the table is updated from the old one: two manifests
    read, not every model's; a merge or an unknown old head rebuilds it whole."""
    from casstore.serve import table

    f = tmp_path / "w.bin"
    f.write_bytes(b"x" * 1000)
    store = casstore.open(tmp_path / "s")
    for i in range(20):
        store.commit_models("d", model=str(f), model_id=f"m{i:02d}", extra_metadata={"acc": i / 100})
    old_head = store.history_head("d")
    old = table.build(store, "d", old_head)
    store.commit_models("d", model=str(f), model_id="new", extra_metadata={"acc": 0.99})
    store.delete_model("d", "m05")
    store.create_model_state("prod")
    store.set_model_state("d", "m07", "prod")
    reads: list[str] = []
    real = store.get_model_info
    monkeypatch.setattr(store, "get_model_info", lambda d, m=None, **kw: reads.append(m) or real(d, m, **kw))
    head = store.history_head("d")
    rows = table.update(store, "d", head, (old_head, old))
    assert sorted(reads) == ["m05", "new"]
    assert [r["model_id"] for r in rows] == [r["model_id"] for r in table.build(store, "d", head)]
    assert rows == table.build(store, "d", head)
    reads.clear()
    table.update(store, "d", head, (b"0" * 40, old))  # an old head that is not in the history
    assert len(reads) == 20
    store.close()


def test_onnx_graph_inputs_and_outputs_without_reading_the_weights(tmp_path: Path) -> None:
    """An .onnx file's preview lists its graph's inputs and outputs (weights listed as inputs
    left out), reading the protobuf fields it shows and seeking past the rest: a model with
    32 MiB of weights is previewed reading a small part of it, and a cut file says so."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from casstore.serve.onnx_io import graph_io

    weights = numpy_helper.from_array(np.random.default_rng(0).random((2048, 4096), dtype=np.float32), "W")
    x = helper.make_tensor_value_info("pixels<b>", TensorProto.FLOAT, ["batch", 2048])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT16, ["batch", 4096])
    graph = helper.make_graph([helper.make_node("MatMul", ["pixels<b>", "W"], ["logits"])], "g",
                              [x, helper.make_tensor_value_info("W", TensorProto.FLOAT, [2048, 4096])], [y],
                              [weights])
    data = helper.make_model(graph, producer_name="pytorch").SerializeToString()
    onnx.checker.check_model(onnx.load_from_string(data))
    (tmp_path / "model.onnx").write_bytes(data)
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    with casstore.open(tmp_path / "s") as store:
        store.commit_models("d", model=[str(tmp_path / "model.onnx"), str(tmp_path / "cut.onnx")], model_id="m")
        with store.open_file("d", "m", "model.onnx") as f:
            seen = graph_io(f, f.size)
            assert f.tell() == f.size  # walked to the end, by seeks
            assert f.bytes_read < 1 << 20 < f.size // 16, f.bytes_read  # the chunks around the fields shown
    assert seen["inputs"] == [{"name": "pixels<b>", "dtype": "float32", "shape": ["batch", 2048]}]
    assert seen["outputs"] == [{"name": "logits", "dtype": "float16", "shape": ["batch", 4096]}]
    server = start_server(str(tmp_path / "s"))
    try:
        got = server.json("/api/domains/d/models/m/preview/model.onnx")
        assert got["kind"] == "graph" and got["producer"] == "pytorch" and "error" not in got
        assert [i["name"] for i in got["inputs"]] == ["pixels<b>"] and got["outputs"][0]["dtype"] == "float16"
        st, _, page = server.request("GET", "/d/d/m/m/view/model.onnx")
        assert st == 200 and "pixels&lt;b&gt;" in page.decode() and 'id="onnx-outputs"' in page.decode()
        cut = server.json("/api/domains/d/models/m/preview/cut.onnx")
        assert cut["kind"] == "graph" and "not a well-formed ONNX model" in cut["error"]
    finally:
        stop_server(server)
