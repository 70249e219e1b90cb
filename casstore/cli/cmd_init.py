"""``cas init [PATH] [--bare [--require-signed FILE]]``: create an empty store (or protect a plain git
repository; on an existing store, install the hooks it lacks)."""

from __future__ import annotations

import argparse
import os

from ..store import init_store, is_git_repository, is_store, protect_git_repository
from .base import SubParsers, add_command, store_path


def update_hooks(path: str, require_signed: str | None) -> int:
    """``cas init --bare`` on a store that exists: install the hooks it lacks or has from another
    casstore version (a store made before post-receive existed lacks that one); a hook that is
    not casstore's is refused by name, and nothing changes."""
    if require_signed is not None and not os.path.isfile(require_signed):
        raise FileNotFoundError(f"allowed signers file {require_signed}: no such file")
    written = protect_git_repository(path, require_signed)
    if written:
        print(f"store already exists at {path}: installed its hooks ({', '.join(written)})")
    else:
        print(f"store already exists at {path}; its hooks are up to date")
    return 0


def init(args: argparse.Namespace) -> int:
    path = os.path.abspath(args.path or store_path(args))
    if is_store(path):
        if args.bare:
            return update_hooks(path, args.require_signed)
        print(f"store already exists at {path}")
        return 0
    if args.require_signed is not None and not args.bare:
        raise ValueError("--require-signed FILE is for a store others push to: use it with --bare")
    if args.bare and is_git_repository(path):
        # a remote made with `git init --bare`: give it what `cas init --bare` would have
        protect_git_repository(path, args.require_signed)
        print(f"installed the model-protecting hook in the git repository at {path}")
        return 0
    init_store(path, bare_remote=args.bare, require_signed=args.require_signed)
    kind = "bare remote store (with the model-protecting hook)" if args.bare else "store"
    print(f"initialised empty {kind} at {path}")
    return 0


def register(sub: SubParsers) -> None:
    p = add_command(sub, "init", "create an empty store", "cas init ./models", init)
    p.add_argument("path", nargs="?", help="where (default: the --store path)")
    p.add_argument("--bare", action="store_true",
                   help="a store others push to: install the hook that protects existing models "
                        "(on an existing plain git repository: install just the hook; on an existing store: "
                        "install the hooks it lacks or has from another casstore version)")
    p.add_argument("--require-signed", metavar="FILE",
                   help="with --bare: the hook also refuses commits not signed by a key of FILE "
                        "(git's allowed signers format; docs/signing.md)")
