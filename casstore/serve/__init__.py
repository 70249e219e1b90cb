"""``cas serve``: browse a store in a web browser, and the same data as a JSON API.

Needs the ``serve`` extra (``pip install 'casstore[serve]'``): FastAPI, uvicorn, Jinja2.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from typing import Any

from ..errors import CasError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8780


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _first_request(app: Any) -> None:
    """Send the app one request in-process before listening: FastAPI, pydantic and the
    thread pool finish their lazy set-up here (~0.3 s) rather than in a visitor's request."""
    import asyncio

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": "/api/states", "raw_path": b"/api/states", "query_string": b"",
             "root_path": "", "headers": [(b"host", b"127.0.0.1")], "client": ("127.0.0.1", 0),
             "server": ("127.0.0.1", 0)}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    asyncio.run(app(scope, receive, send))


def serve(store_path: str, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *,
          token: str | None = None, write: bool = False) -> None:
    """Serve the store at ``store_path`` until interrupted.

    Prints ``serving http://HOST:PORT/`` once the socket listens (``port=0``
    picks a free port).  Anything but a loopback ``host`` needs a ``token``;
    so does ``write``.

    Raises:
        CasError: a non-loopback host or write mode without a token.
    """
    if not token and not is_loopback(host):
        raise CasError(f"--host {host} is reachable from other machines: give a --token (or $CAS_SERVE_TOKEN)")
    if write and not token:
        raise CasError("--write needs a --token (or $CAS_SERVE_TOKEN)")
    try:
        import uvicorn

        from .app import create_app
    except ImportError as e:
        from ..util.install import install_hint

        raise CasError(f"cas serve needs the serve extra: {install_hint('serve')} "
                       f"({e.name} is missing)") from None
    from ..store import Store
    from .data import warm_up
    from .downloads import Limits

    store = Store(store_path)
    app = create_app(store, token=token, write=write, limits=Limits.of_store(store.path))
    warm_up(store)
    _first_request(app)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(128)
    bound = sock.getsockname()[1]
    shown = f"[{host.strip('[]')}]" if family == socket.AF_INET6 else host
    print(f"serving http://{shown}:{bound}/ (store {store.path}{', write mode' if write else ', read-only'})",
          flush=True)
    config = uvicorn.Config(app, log_level=os.environ.get("CAS_SERVE_LOG", "warning"), access_log=False)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        store.close()
        sys.stdout.flush()
