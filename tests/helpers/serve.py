"""A real `cas serve` process and the stores it serves in the tests (the demo store, the
200-model ML zoo), shared by the HTTP and the browser tests."""

from __future__ import annotations

import http.client
import json
import os
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import casstore
from tests.conftest import write_random
from tests.helpers.damage import flip_byte

#: where the browser tests find Debian's Chromium and its chromedriver (.ci/sysdeps.sh)
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def chrome(profile: Path, downloads: Path | None = None, page_load_timeout: float = 60) -> Any:
    """A headless Chromium driven by selenium (``quit()`` it), its profile in ``profile``,
    saving downloads into ``downloads`` when given."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    # the network is closed: without these Chromium stalls on lookups and updates
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,900", f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    if downloads is not None:
        opts.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                               "download.prompt_for_download": False,
                                               "safebrowsing.enabled": False})
    # an explicit driver path: selenium then never tries to download one
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(page_load_timeout)
    return driver

BIG = 12 << 20  # above the verify-first limit: this one streams


@dataclass
class Server:
    proc: subprocess.Popen[str]
    host: str
    port: int

    def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
        """One request with ``path`` sent exactly as given (no client-side normalisation)."""
        c = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def json(self, path: str, status: int = 200, **kw: Any) -> Any:
        st, _, body = self.request("GET", path, **kw)
        assert st == status, (path, st, body[:500])
        return json.loads(body)

    def poll_json(self, path: str, until: Callable[[Any], bool], what: str, timeout: float = 60) -> Any:
        """GET ``path`` until its answer passes ``until``: for what the server computes in the
        background (a busy machine can take seconds where an idle one takes milliseconds)."""
        deadline = time.monotonic() + timeout
        while not until(d := self.json(path)):
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} never arrived in {timeout} s: {d}")
            time.sleep(0.1)
        return d


def start_server(store_path: str, *args: str, env: dict[str, str] | None = None) -> Server:
    """Start ``cas serve --port 0`` and wait for its "serving http://..." line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "casstore", "--store", store_path, "serve", "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("serving http://"):
        proc.kill()
        raise AssertionError(f"cas serve did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}")
    hostport = line.split("http://", 1)[1].split("/", 1)[0]
    host, port = hostport.rsplit(":", 1)
    return Server(proc, host, int(port))


def stop_server(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(10)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


#: what serve_store yields: the server, the store's path, the facts its builder returned
Served = tuple[Server, str, dict[str, Any]]


def serve_store(root: Path, build: Callable[[Path, Path], dict[str, Any]]) -> Iterator[Served]:
    """For a fixture's ``yield from``: ``cas serve`` over the store ``build`` (``build_demo_store``,
    ``build_ml_store``) makes in ``root``, stopped when the fixture is torn down."""
    facts = build(root / "store", root / "work")
    server = start_server(str(root / "store"))
    yield server, str(root / "store"), facts
    stop_server(server)


def build_demo_store(path: Path, work: Path) -> dict[str, Any]:
    """A store like a user's: versions of a classifier with metrics, extra files, states, a deletion."""
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    X, y = load_iris(return_X_y=True)
    store = casstore.open(path)
    work.mkdir(parents=True, exist_ok=True)
    notes = work / "notes.txt"
    notes.write_text("trained on iris\n")
    big = work / "weights.bin"
    big_bytes = write_random(big, BIG, seed=3)
    ids = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CAS_AUTHOR", "Ana <ana@example.com>")
        for i, c in enumerate([1, 2, 3, 4]):
            clf = DecisionTreeClassifier(max_depth=c, random_state=0).fit(X, y)
            mid = f"v{i + 1}"
            store.commit_models("iris", model=clf, model_id=mid, extra_files=[str(notes)],
                                extra_metadata={"accuracy": float(clf.score(X, y)), "depth": c,
                                                "eval": {"loss": 1.0 / (i + 2)}, "dataset": "iris-v1",
                                                "note": "<script>alert(1)</script>"})
            ids.append(mid)
        odd = work / "模型 \"q\" 1.txt"  # not latin-1, a quote and a space: headers must cope
        odd.write_text("odd name\n")
        store.commit_models("weights", model=str(big), model_id="w1", extra_files=[str(odd)])
        store.commit_models("iris", model=DecisionTreeClassifier().fit(X, y), model_id="gone")
        store.delete_model("iris", "gone")
        store.create_model_state("production")
        store.create_model_state("staging")
        store.set_model_state("iris", "v2", "production")
        store.set_model_state("iris", "v4", "staging")
    store.close()
    return {"ids": ids, "big": big_bytes, "notes": notes.read_bytes()}


def _flip_chunk(store_path: str, index: int) -> str:
    """Flip a byte inside chunk ``index`` of model d/m's file; returns the chunk blob's oid."""
    store = casstore.open(store_path)
    _, manifest, _ = store._resolve("d", "m")
    store.odb.index.refresh()
    loc = store.odb.index.lookup([manifest.files[0].keys[index]])[0]
    assert loc is not None
    pack = os.path.join(store.odb.pack_dir, loc.pack + ".pack")
    store.close()
    flip_byte(pack, loc.offset + loc.length // 2)
    return loc.oid.hex()



ZOO = 200


def png_bytes(w: int = 4, h: int = 4) -> bytes:
    """A small valid RGB PNG, written by hand (no image library needed)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = b"".join(b"\0" + bytes([200, 30, 30]) * w for _ in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


PNG = png_bytes()


CARD = """# Zoo classifier

Trained on **iris**, with a [link](https://example.com/) and `code`.

<script>alert("card")</script>

| split | accuracy |
|-------|----------|
| test  | 0.93     |

[bad](javascript:alert(1))
"""


SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script>' \
      '<rect width="10" height="10" fill="red"/></svg>'


def zoo_accuracy(i: int) -> float:
    """Not monotonic in i, so sorting by accuracy is not the same as newest first."""
    return round(0.5 + ((i * 37) % ZOO) / (ZOO * 2.0) + 1e-5 * (i % 3), 6)


def safetensors_bytes() -> bytes:
    header = {"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
              "b": {"dtype": "F32", "shape": [3], "data_offsets": [24, 36]},
              "__metadata__": {"format": "pt"}}
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + b"\0" * 36


def build_ml_store(path: Path, work: Path) -> dict[str, Any]:
    store = casstore.open(path)
    work.mkdir(parents=True, exist_ok=True)
    weights = work / "weights.bin"
    with pytest.MonkeyPatch.context() as mp:
        for i in range(ZOO):
            mp.setenv("CAS_AUTHOR", "Ana <ana@example.com>" if i % 2 else "Bo <bo@example.com>")
            weights.write_bytes(i.to_bytes(4, "little") * 64)
            store.commit_models("zoo", model=str(weights), model_id=f"z{i:03d}",
                                extra_metadata={"accuracy": zoo_accuracy(i), "loss": 1.0 - zoo_accuracy(i),
                                                "epochs": i % 7, "dataset": "iris-v2" if i % 5 == 0 else "iris-v1",
                                                "lr": 0.001})
        mp.setenv("CAS_AUTHOR", "Cy <cy@example.com>")
        files = {"README.md": CARD.encode(), "table.csv": b"name,score\nalpha,1\nbeta,2\n<b>x</b>,3\n",
                 "plot.png": PNG, "logo.svg": SVG.encode(), "weights.safetensors": safetensors_bytes(),
                 "config.json": b'{"layers": [4, 8], "act": "relu"}', "notes.txt": b"plain text notes\n"}
        paths = []
        for name, raw in files.items():
            (work / name).write_bytes(raw)
            paths.append(str(work / name))
        np.save(work / "arr.npy", np.zeros((3, 4), dtype=np.float32))
        paths.append(str(work / "arr.npy"))
        store.commit_models("cards", model=str(weights), model_id="c1", extra_files=paths,
                            extra_metadata={"accuracy": 0.93, "eval": {"f1": 0.9, "split": "test"}})
        store.commit_models("cards", model=str(weights), model_id="c2", extra_files=paths[:1],
                            extra_metadata={"accuracy": 0.95, "eval": {"f1": 0.91, "split": "test"}})
        for i in range(3):
            store.commit_models("ms", model=str(weights), model_id=f"ms{i}", extra_metadata={"modelstore": {
                "model": {"parameters": {"n_estimators": 100 + i, "max_depth": 3}},
                "extra": {"acc": 0.8 + i / 100, "f1": 0.7}}})
    store.create_model_state("production")
    store.set_model_state("zoo", "z010", "production")
    store.set_model_state("zoo", "z150", "production")
    store.close()
    return {"files": files}

