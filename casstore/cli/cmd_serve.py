"""``cas serve``: browse the store in a web browser (casstore/serve)."""

from __future__ import annotations

import argparse
import errno
import ipaddress
import os
import re
import socket

from ..errors import CasError
from .base import SubParsers, add_command, require_store


def serve(args: argparse.Namespace) -> int:
    from ..serve import serve as run

    _check_host(args.host)
    path = require_store(args)  # names the path and where it came from when nothing is there
    try:
        run(path, args.host, args.port, token=args.token or os.environ.get("CAS_SERVE_TOKEN") or None,
            write=args.write)
    except KeyboardInterrupt:
        pass
    except OSError as e:
        # the socket's errors in the command line's words, not "[Errno 98] Address already in use"
        if e.filename is None and e.errno == errno.EADDRINUSE:
            raise CasError(f"port {args.port} on {args.host} is already in use (another cas serve?): choose "
                           f"another with --port, or --port 0 for a free one") from None
        if e.filename is None and e.errno == errno.EADDRNOTAVAIL:
            raise CasError(f"--host {args.host} is not an address of this machine: give one of its own "
                           f"(127.0.0.1 for this machine only, 0.0.0.0 for every interface)") from None
        if e.filename is None and e.errno == errno.EACCES and 0 < args.port < 1024:
            raise CasError(f"port {args.port} needs administrator rights (ports below 1024 are reserved): "
                           f"use a port from 1024 up, such as the default 8780") from None
        raise
    return 0


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number: ports are 0-65535 (0 picks a free one)")
    return port


def _check_host(host: str) -> None:
    """Refuse a host that is no address at all, naming it (before the token rule talks about it)."""
    name = host.strip("[]")
    looks_numeric = bool(re.fullmatch(r"[0-9.]+", name)) or ":" in name
    if looks_numeric:
        try:
            ipaddress.ip_address(name)
        except ValueError:
            kind = "IPv6" if ":" in name else "IPv4"
            raise CasError(f"--host {host} is not a valid {kind} address"
                           + ("" if kind == "IPv6" else " (four numbers from 0 to 255, such as 127.0.0.1)")) from None
        return
    try:
        socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise CasError(f"--host {host}: no such host name ({e.args[-1] if e.args else e})") from None


def register(sub: SubParsers) -> None:
    p = add_command(sub, "serve", "browse the store in a web browser (and a JSON API under /api)",
                    "cas serve --port 8780", serve)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, loopback only)")
    p.add_argument("--port", type=_port, default=8780, help="port (default: 8780; 0 picks a free one)")
    p.add_argument("--token", default=None,
                   help="require this token on every request (default: $CAS_SERVE_TOKEN); needed off loopback")
    p.add_argument("--write", action="store_true", help="allow state changes from the page (needs a token)")
