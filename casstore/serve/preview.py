"""Look inside a stored file without downloading it: what the file page shows.

Everything is read through ``Store.open_file``, which verifies each chunk before a
byte of it is used, and only as much as a preview needs (the first ``TEXT_BYTES``
of a text, the header of a safetensors or ``.npy`` file): a damaged chunk raises
CorruptObjectError (an error page naming it), never a preview of wrong bytes.

Markdown is rendered with markdown-it-py with raw HTML off: a ``<script>`` in a
model card is shown as text, and ``javascript:`` links are not made links.
Images are shown through ``/raw/...`` (``raw_type``): PNG and JPEG only when their
bytes say so, SVG only as an ``<img>`` (a browser runs no script in an image) and
served with ``Content-Security-Policy: sandbox`` should someone open it directly.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import struct
from typing import Any

from markdown_it import MarkdownIt
from markupsafe import Markup

from ..store import Store
from .onnx_io import graph_io

TEXT_BYTES = 64 << 10
JSON_BYTES = 1 << 20
CSV_ROWS = 50
HEADER_BYTES = 1 << 20
#: images shown inline are read whole (and verified whole) before a byte is sent
IMAGE_BYTES = 8 << 20
TEXT_SUFFIXES = (".txt", ".log", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".py", ".sh", ".tsv", ".jsonl")
IMAGES = {".png": ("image/png", b"\x89PNG\r\n\x1a\n"), ".jpg": ("image/jpeg", b"\xff\xd8\xff"),
          ".jpeg": ("image/jpeg", b"\xff\xd8\xff"), ".svg": ("image/svg+xml", b"")}
SVG_CSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox"

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")


def markdown(text: str) -> Markup:
    """``text`` as HTML: no raw HTML passes (it is escaped), no script URLs become links."""
    return Markup(_md.render(text))


def _suffix(path: str) -> str:
    name = path.rsplit("/", 1)[-1].lower()
    return name[name.rfind("."):] if "." in name else ""


def raw_type(path: str, head: bytes) -> str | None:
    """The Content-Type to serve an image inline with, or None: not an image we show."""
    kind = IMAGES.get(_suffix(path))
    if kind is None or not head.startswith(kind[1]):
        return None
    return kind[0]


def preview(store: Store, domain: str, model_id: str, path: str) -> dict[str, Any]:  # noqa: C901, PLR0912 - one branch per previewable file type
    """What the file page shows for ``path``: ``kind`` and what that kind needs.

    Raises:
        FileNotFoundError, ModelNotFoundException, CorruptObjectError (a damaged chunk).
    """
    out: dict[str, Any] = {"domain": domain, "model_id": model_id, "path": path}
    suffix = _suffix(path)
    with store.open_file(domain, model_id, path) as f:
        size = f.size
        out["size"] = size
        if suffix in IMAGES:
            head = f.read(8)
            out["kind"] = "image" if raw_type(path, head) and size <= IMAGE_BYTES else "binary"
            return out
        if suffix == ".safetensors":
            out.update(kind="tensors", **_safetensors(f.read(HEADER_BYTES + 8)))
            return out
        if suffix == ".npy":
            out.update(kind="tensors", **_npy(f.read(HEADER_BYTES)))
            return out
        if suffix == ".onnx":  # inputs and outputs only: the weights are skipped, never read
            out.update(kind="graph", **graph_io(f, size))
            return out
        limit = JSON_BYTES if suffix == ".json" else TEXT_BYTES
        raw = f.read(limit)
    out["truncated"] = size > len(raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(raw) - 4:  # not just a character cut at the limit
            out["kind"] = "binary"
            return out
        text = raw[:e.start].decode("utf-8")
    if suffix == ".json" and not out["truncated"]:
        try:
            out.update(kind="json", text=json.dumps(json.loads(text), indent=2, ensure_ascii=False)[:TEXT_BYTES])
            return out
        except ValueError:
            pass
    if suffix in (".md", ".markdown"):
        out.update(kind="markdown", html=markdown(text))
        return out
    if suffix in (".csv", ".tsv"):
        reader = csv.reader(io.StringIO(text), delimiter="\t" if suffix == ".tsv" else ",")
        rows = []
        for row in reader:
            rows.append(row)
            if len(rows) > CSV_ROWS:
                break
        out.update(kind="csv", header=rows[0] if rows else [], rows=rows[1:CSV_ROWS + 1],
                   more=len(rows) > CSV_ROWS or out["truncated"])
        return out
    if suffix in TEXT_SUFFIXES or suffix in (".json", ".md", "") or "\0" not in text:
        out.update(kind="text", text=text)
        return out
    out["kind"] = "binary"
    return out


def _safetensors(raw: bytes) -> dict[str, Any]:
    """Tensor names, dtypes and shapes from a safetensors header (8-byte length, JSON)."""
    if len(raw) < 8:
        return {"error": "too short for a safetensors header", "tensors": []}
    (n,) = struct.unpack("<Q", raw[:8])
    if n > HEADER_BYTES or len(raw) < 8 + n:
        return {"error": f"header of {n} bytes is not shown (over {HEADER_BYTES} or past the end)", "tensors": []}
    try:
        header = json.loads(raw[8:8 + n])
    except ValueError as e:
        return {"error": f"header is not JSON: {e}", "tensors": []}
    if not isinstance(header, dict):
        return {"error": "header is not a JSON object", "tensors": []}
    meta = header.pop("__metadata__", None)
    tensors = [{"name": str(k), "dtype": str(v.get("dtype")), "shape": v.get("shape")}
               for k, v in header.items() if isinstance(v, dict)]
    return {"tensors": tensors, "metadata": meta if isinstance(meta, dict) else None}


def _npy(raw: bytes) -> dict[str, Any]:
    """dtype and shape from a ``.npy`` header (magic, version, length, a Python dict literal)."""
    if not raw.startswith(b"\x93NUMPY") or len(raw) < 10:
        return {"error": "not an .npy file", "tensors": []}
    major = raw[6]
    if major == 1:
        (n,), start = struct.unpack("<H", raw[8:10]), 10
    else:
        (n,), start = struct.unpack("<I", raw[8:12]), 12
    try:
        # literal_eval: the header is a dict of literals and runs no code
        header = ast.literal_eval(raw[start:start + n].decode("latin-1"))
    except (ValueError, SyntaxError, RecursionError, MemoryError) as e:
        return {"error": f"unreadable header: {e}", "tensors": []}
    if not isinstance(header, dict):
        return {"error": "header is not a dict", "tensors": []}
    return {"tensors": [{"name": "(array)", "dtype": str(header.get("descr")), "shape": list(header.get("shape", ())),
                         "order": "Fortran" if header.get("fortran_order") else "C"}], "metadata": None}
