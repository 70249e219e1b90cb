"""``cas serve``: browse the store in a web browser (casstore/serve)."""

from __future__ import annotations

import argparse
import os

from . import SubParsers, add_command
from .commands import require_store


def serve(args: argparse.Namespace) -> int:
    from ..serve import serve as run

    path = require_store(args)  # names the path and where it came from when nothing is there
    try:
        run(path, args.host, args.port, token=args.token or os.environ.get("CAS_SERVE_TOKEN") or None,
            write=args.write)
    except KeyboardInterrupt:
        pass
    return 0


def register(sub: SubParsers) -> None:
    p = add_command(sub, "serve", "browse the store in a web browser (and a JSON API under /api)",
                    "cas serve --port 8780", serve)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, loopback only)")
    p.add_argument("--port", type=int, default=8780, help="port (default: 8780; 0 picks a free one)")
    p.add_argument("--token", default=None,
                   help="require this token on every request (default: $CAS_SERVE_TOKEN); needed off loopback")
    p.add_argument("--write", action="store_true", help="allow state changes from the page (needs a token)")
