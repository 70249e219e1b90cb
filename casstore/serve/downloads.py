"""Downloads under a bound: how many at once, how many bytes they hold, how long a client may stall.

A client that asks for a large file and then reads nothing would otherwise pin a
read-ahead window, a thread pool and whatever was buffered for it, for as long as
it keeps the connection open; a hundred such clients exhaust the server.  Here
every download first reserves its bytes from one budget per server
(``cas.serveDownloadBuffer``) and a slot (``cas.serveMaxDownloads``); a
request that finds neither free gets 503 with ``Retry-After``.  Bytes go out
one chunk at a time, each sent only once the client has taken the previous
ones (the transport's flow control), so what a download holds is bounded by
its reservation.  A client that takes nothing for ``cas.serveStallTimeout``
seconds is disconnected, and a disconnect, stall or damaged chunk closes the
file's reader at once, which stops its reads and its threads.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from ..errors import CasError
from ..ops.loadcache import parse_size
from ..util.config import get_setting

log = logging.getLogger("casstore.serve")

#: read-ahead batches of one streamed download (about 2 MiB each, see Store.stream_file)
STREAM_WINDOW = 2
#: bytes a streamed download holds at most: its window, the batch being sent, one chunk copy
STREAM_RESERVE = 8 << 20
#: how much of a verified-first file goes to the transport per send
SEND_PIECE = 256 << 10

DEFAULT_MAX_DOWNLOADS = 16
DEFAULT_BUFFER = 128 << 20
DEFAULT_STALL_TIMEOUT = 60.0


class Busy(CasError):
    """No download slot or buffer budget free right now (503, retry later)."""


class Stalled(CasError):
    """The client took no bytes for the stall timeout: its connection is closed."""


@dataclass(frozen=True)
class Limits:
    max_downloads: int = DEFAULT_MAX_DOWNLOADS
    buffer: int = DEFAULT_BUFFER
    stall_timeout: float = DEFAULT_STALL_TIMEOUT

    @classmethod
    def of_store(cls, store_path: str) -> Limits:
        """The limits a store's config (or the user's) sets, else the defaults.

        Raises:
            CasError: a setting that is not a number (or a size).
        """
        cfg = os.path.join(store_path, "config")
        try:
            n = get_setting(cfg, "cas.serveMaxDownloads")
            b = get_setting(cfg, "cas.serveDownloadBuffer")
            t = get_setting(cfg, "cas.serveStallTimeout")
            out = cls(int(n) if n else DEFAULT_MAX_DOWNLOADS,
                      parse_size(b, "cas.serveDownloadBuffer") if b else DEFAULT_BUFFER,
                      float(t) if t else DEFAULT_STALL_TIMEOUT)
        except ValueError as e:
            raise CasError(f"cas serve: {e}") from None
        if out.max_downloads < 1 or out.buffer < 1 or not out.stall_timeout > 0:
            raise CasError(f"cas serve: download limits must be positive: {out}")
        return out


class Budget:
    """Download slots and buffered bytes of one server (thread-safe)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self.active = 0
        self.reserved = 0

    def take(self, nbytes: int) -> None:
        """Reserve a slot and ``nbytes``.

        Raises:
            Busy: every slot taken, or the bytes do not fit beside the others'.
        """
        with self._lock:
            if self.active >= self.limits.max_downloads:
                raise Busy(f"{self.active} downloads in progress, the most this server runs at once "
                           "(cas.serveMaxDownloads): retry later")
            if self.reserved + nbytes > self.limits.buffer and self.active:
                raise Busy(f"downloads in progress hold {self.reserved} bytes of the "
                           f"{self.limits.buffer} allowed (cas.serveDownloadBuffer): retry later")
            self.active += 1
            self.reserved += nbytes

    def give_back(self, nbytes: int) -> None:
        with self._lock:
            self.active -= 1
            self.reserved -= nbytes


class Download(Response):
    """An ASGI response sending ``pieces`` (already verified, or verified as they are read)."""

    def __init__(self, budget: Budget, reserved: int, headers: dict[str, str],  # noqa: PLR0913 - what one streamed download holds
                 pieces: Iterator[bytes | memoryview], label: str, close: Generator[Any, None, None]) -> None:
        self.budget = budget
        self.reader = close
        self.reserved = reserved
        self.pieces = pieces
        self.label = label
        self.status_code = 200
        self.background = None
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = anyio.Event()
        failed: Exception | None = None

        async def watch() -> None:
            while True:
                if (await receive())["type"] == "http.disconnect":
                    gone.set()
                    return

        def step() -> bytes | None:
            piece = next(self.pieces, None)
            return None if piece is None else bytes(piece)

        async def deliver(message: Message) -> None:
            # send() waits while the transport holds more than its high-water mark
            with anyio.move_on_after(self.budget.limits.stall_timeout) as waited:
                await send(message)
            if waited.cancelled_caught:
                raise Stalled(f"download of {self.label} stopped: the client took nothing for "
                              f"{self.budget.limits.stall_timeout:g} s (cas.serveStallTimeout)")

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch)
                try:
                    await deliver({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
                    while not gone.is_set():
                        piece = await anyio.to_thread.run_sync(step)
                        if piece is None or gone.is_set():
                            break
                        await deliver({"type": "http.response.body", "body": piece, "more_body": True})
                    if not gone.is_set():
                        await deliver({"type": "http.response.body", "body": b"", "more_body": False})
                except Exception as e:  # a stall, or a damaged chunk: cut the connection short
                    failed = e
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                # stops the reads and joins the reader's threads; never while a step runs
                await anyio.to_thread.run_sync(self._close)
            self.budget.give_back(self.reserved)
        if failed is not None:
            log.error("%s", failed)
            raise failed

    def _close(self) -> None:
        self.reader.close()


def pieces_of(body: bytes) -> Iterator[memoryview]:
    """A verified-first body in SEND_PIECE slices (each send waits for the client)."""
    view = memoryview(body)
    for i in range(0, len(view), SEND_PIECE):
        yield view[i:i + SEND_PIECE]
