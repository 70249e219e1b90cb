"""``cas clone URL [DIR]``: a new store holding everything a remote has (init, remote add origin, pull)."""

from __future__ import annotations

import argparse
import os
import re
import sys

from ..store import clone_store
from ..util.progress import TerminalProgress
from .base import SubParsers, add_command
from .output import count, human, print_json


def default_dir(url: str) -> str:
    """What ``git clone`` would call the directory: the URL's last component without ``.git``."""
    tail = re.split(r"[/:]", url.rstrip("/"))[-1]
    tail = tail.removesuffix(".git") or "models"
    return tail if tail not in (".", "..") else "models"


def clone(args: argparse.Namespace) -> int:
    path = os.path.abspath(args.directory or default_dir(args.url))
    progress = TerminalProgress() if sys.stderr.isatty() else None
    try:
        store, result = clone_store(args.url, path, progress=progress)
    finally:
        if progress:
            progress.finish()
    with store:
        domains = store.list_domains()
    if args.json:
        print_json({"path": path, "url": args.url, **result.as_dict()})
    else:
        print(f"cloned {args.url} into {path}: {count(len(result.models_added), 'model')} in "
              f"{count(len(domains), 'domain')}; {count(result.objects, 'object')}, {human(result.bytes)} received")
        print(f"  use it with `cas --store {path} ...` (or export CAS_STORE={path}); its remote is `origin`")
    return 0


def register(sub: SubParsers) -> None:
    p = add_command(sub, "clone", "make a new store holding everything a remote has (init, remote add origin, pull)",
                    "cas clone ssh://me@server/srv/models.git ./models", clone)
    p.add_argument("url", metavar="URL", help="the remote: a path, ssh://, git://, http(s)://, s3://, gs://, az://")
    p.add_argument("directory", metavar="DIR", nargs="?",
                   help="where the new store goes (default: the URL's last part without .git)")
    p.add_argument("--json", action="store_true", help="print JSON")
