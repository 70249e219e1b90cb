"""The routes that send a stored file: downloads (streamed, verified, bounded) and inline images.

A small file is verified whole before its first byte is sent, so any damage gets an
error page; a larger one streams, and damage found part-way cuts the connection
short of its Content-Length (never wrong bytes).  Both count against the server's
download budget (downloads.py).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from urllib.parse import quote

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from ..store import Store
from ..util.names import hidden_chars
from . import preview
from .downloads import STREAM_RESERVE, STREAM_WINDOW, Budget, Busy, Download, pieces_of

#: files up to this size are verified completely before the first byte is sent, so
#: any damage gives an error page; bigger ones stream
VERIFY_FIRST = 8 << 20


def add_file_routes(app: FastAPI, store: Store, budget: Budget) -> None:
    """Add ``/files/...`` (downloads) and ``/raw/...`` (images shown on a file page) to ``app``."""

    @app.get("/files/{domain}/{model_id}/{path:path}", tags=["api"])
    async def download(domain: str, model_id: str, path: str) -> Response:
        """One stored file, verified.  Small files are checked whole before sending;
        a large one streams and, if a damaged chunk turns up part-way, the
        connection is cut short of its Content-Length (never wrong bytes).
        At most ``cas.serveMaxDownloads`` at once, holding at most
        ``cas.serveDownloadBuffer`` bytes between them: beyond that, 503."""
        size, chunks = await run_in_threadpool(store.stream_file, domain, model_id, path, STREAM_WINDOW)
        reserve = size if size <= VERIFY_FIRST else STREAM_RESERVE
        try:
            budget.take(reserve)
        except Busy as e:
            chunks.close()  # nothing was read yet
            return JSONResponse({"error": str(e), "type": "Busy"}, status_code=503, headers={"Retry-After": "5"})
        try:
            # a name that displays as another (U+202E ...) is not offered to the browser to save under
            name = "".join("_" if hidden_chars(c) else c for c in os.path.basename(path)) or "file"
            # header values are latin-1: an ASCII stand-in, and the real name RFC 5987-encoded
            plain = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name)
            headers = {"Content-Length": str(size), "Content-Type": "application/octet-stream",
                       "Content-Disposition": f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name)}"}
            if size <= VERIFY_FIRST:
                # raises CorruptObjectError before any byte is sent
                body = await run_in_threadpool(b"".join, chunks)
                pieces: Iterator[bytes | memoryview] = pieces_of(body)
            else:
                first = await run_in_threadpool(next, chunks, b"")  # the first chunk's damage gets an error page
                pieces = itertools.chain([first], chunks)
        except BaseException:
            budget.give_back(reserve)
            chunks.close()
            raise
        return Download(budget, reserve, headers, pieces, f"{domain}/{model_id}/{path}", close=chunks)

    @app.get("/raw/{domain}/{model_id}/{path:path}", include_in_schema=False)
    def raw(domain: str, model_id: str, path: str) -> Response:
        """An image shown inline on a file page: PNG/JPEG whose bytes say so, or SVG
        (sandboxed: no script runs even when it is opened directly).  Read whole and
        verified (chunks and the file's digest) before a byte is sent."""
        with store.open_file(domain, model_id, path) as f:
            if f.size > preview.IMAGE_BYTES:
                return JSONResponse({"error": f"{path!r} is too big to show inline; download it"}, status_code=413)
            try:
                budget.take(f.size)  # counts against cas.serveDownloadBuffer like a download
            except Busy as e:
                return JSONResponse({"error": str(e), "type": "Busy"}, status_code=503, headers={"Retry-After": "5"})
            try:
                body = f.read()
                f.read()  # at the end: the whole-file digest is checked here
            finally:
                budget.give_back(f.size)
        kind = preview.raw_type(path, body)
        if kind is None:
            return JSONResponse({"error": f"{path!r} is not a PNG, JPEG or SVG image"}, status_code=415)
        headers = {"Cache-Control": "private, max-age=60"}
        if kind == "image/svg+xml":
            headers["Content-Security-Policy"] = preview.SVG_CSP
        return Response(body, media_type=kind, headers=headers)
