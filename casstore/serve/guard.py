"""Who may talk to the web application: the token, loopback Host names, same-origin writes.

With a token, every request must carry it (``Authorization: Bearer``, or the
cookie that visiting any page with ``?token=`` sets).  Without one, only loopback
Host headers are answered (a DNS-rebinding page cannot reach the server).  A
request that changes anything must come from the server's own origin.  Every
answer carries ``nosniff`` and a Content-Security-Policy that allows only the
server's own scripts, styles and images.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

COOKIE = "cas_token"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def local(path: str) -> str:
    """``path`` as a redirect target that stays on this server.

    ``//evil.com/x`` (or ``/\\evil.com``) is a path to the server but a
    scheme-relative URL to a browser: one leading slash only.
    """
    return "/" + path.lstrip("/\\")


def add_guard(app: FastAPI, token: str | None) -> None:
    """Put the checks above in front of every route of ``app``."""

    @app.middleware("http")
    async def _guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if token is None:
            host = request.headers.get("host") or ""
            host = host[: host.find("]") + 1] if host.startswith("[") else host.rsplit(":", 1)[0]
            if host not in LOOPBACK_HOSTS:
                return JSONResponse({"error": "this server answers only loopback Host names"}, status_code=403)
        else:
            given = request.query_params.get("token")
            if given is not None and hmac.compare_digest(given.encode(), token.encode()):
                # trade the URL token for a cookie, and drop it from the address bar
                rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
                back = RedirectResponse(local(request.url.path) + ("?" + urlencode(rest) if rest else ""), 303)
                back.set_cookie(COOKIE, token, httponly=True, samesite="strict")
                return back
            auth = request.headers.get("authorization", "")
            offered = auth[7:] if auth.lower().startswith("bearer ") else request.cookies.get(COOKIE, "")
            if not hmac.compare_digest(offered.encode(), token.encode()):
                return JSONResponse({"error": "a token is required (Authorization: Bearer TOKEN, or ?token=)"},
                                    status_code=401, headers={"WWW-Authenticate": "Bearer"})
        if request.method not in ("GET", "HEAD"):
            origin = request.headers.get("origin")
            if origin is not None and origin.split("://", 1)[-1] != request.headers.get("host"):
                return JSONResponse({"error": "cross-origin request refused"}, status_code=403)
        resp = await call_next(request)
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Content-Security-Policy", "default-src 'self'; style-src 'self'; img-src 'self'")
        return resp
