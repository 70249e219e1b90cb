"""What every ``cas`` command module uses: declaring a command, finding and opening the store.

A command is a module ``casstore/cli/cmd_<name>.py`` with ``register(sub)``, which
declares its arguments through :func:`add_command`; ``cli.COMMANDS`` lists them in
the order ``cas --help`` shows them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeAlias

from ..errors import RemoteError
from ..store import Store, is_store, missing_store_error, open_store, resolve_store
from ..util.progress import TerminalProgress
from .output import print_json

if TYPE_CHECKING:
    from ..store import BucketClient

#: the help of every ``--json`` option
JSON_HELP = "machine-readable output: one JSON document (docs/cli.md says how metadata maps to JSON)"

#: what ``add_subparsers()`` returns: argparse has no public name for its type
SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

#: a command: runs with the parsed arguments, returns the exit code
Command = Callable[[argparse.Namespace], int]


def common_options() -> argparse.ArgumentParser:
    """Options every (sub)command accepts after its name too: ``cas ls d --store ./models``.

    SUPPRESS as the default: a subcommand not given ``--store`` (or ``-v``) must not
    overwrite what was given before it (``cas --store X ls d``).
    """
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", metavar="PATH", default=argparse.SUPPRESS,
                        help="the store to use (default: $CAS_STORE or ~/.casstore)")
    common.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                        help="log what casstore does on stderr (-vv: debug detail)")
    return common


def add_command(sub: SubParsers, name: str, help: str, example: str, func: Command) -> argparse.ArgumentParser:
    """Add subcommand ``name`` to ``cas``; ``func(args)`` runs it and returns the exit code."""
    p: argparse.ArgumentParser = sub.add_parser(
        name, help=help, description=help, epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter, parents=[common_options()])
    p.set_defaults(func=func)
    return p


def add_action(sub: SubParsers, name: str, help: str) -> argparse.ArgumentParser:
    """Add action ``name`` to a command with actions (``cas state set``), with the common options."""
    p: argparse.ArgumentParser = sub.add_parser(name, parents=[common_options()], help=help)
    return p


def count_arg(text: str) -> int:
    """A count such as ``-n 5``: an integer >= 0; a huge one means "all" (Python cannot slice past sys.maxsize)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative: give a count of 0 or more")
    return min(n, sys.maxsize)


def store_location(args: argparse.Namespace) -> tuple[str, str]:
    """The store a command names (``--store``, ``$CAS_STORE``, ``~/.casstore``) and where that came from."""
    return resolve_store(getattr(args, "store", None))


def store_path(args: argparse.Namespace) -> str:
    return store_location(args)[0]


def require_store(args: argparse.Namespace) -> str:
    """The store's path; NotAStoreError naming the path and its source when nothing is there.

    Only ``cas init`` creates a store: a mistyped ``$CAS_STORE``, or a relative one used
    from another directory, must fail here rather than leave a new empty store behind.
    """
    path, source = store_location(args)
    if not os.path.exists(path):
        raise missing_store_error(path, source)
    if not is_store(path):
        raise missing_store_error(path, source)
    return path


@contextmanager
def open_store_for(args: argparse.Namespace, write: bool = False) -> Iterator[Store]:
    """The store a command names, with progress on a tty; never creates one.

    ``write=True`` (commands that change the store): once the command succeeded, a
    store chosen by ``$CAS_STORE`` or the default (not one named with ``--store``) is
    named on stderr, so that changing an unexpected store is never silent.
    """
    path = require_store(args)
    store = open_store(path, create=False)
    progress = TerminalProgress() if sys.stderr.isatty() else None
    store.progress = progress
    try:
        yield store
    finally:
        if progress:
            progress.finish()
        store.close()
    if write:
        name_store(args, path)


def name_store(args: argparse.Namespace, path: str) -> None:
    """``cas: store PATH`` on stderr, unless the user named the store with ``--store``."""
    if getattr(args, "store", None) is None:
        print(f"cas: store {path} (from {store_location(args)[1]})", file=sys.stderr)


def print_list(items: Iterable[str], as_json: bool) -> None:
    """One item a line, or (``--json``) a JSON array."""
    if as_json:
        print_json(list(items))
    else:
        for item in items:
            print(item)


def when(t: int) -> str:
    """A time as ``cas`` prints it: UTC, to the second."""
    return time.strftime("%Y-%m-%d %H:%M:%S +0000", time.gmtime(t))



def bucket_client(args: argparse.Namespace, name: str) -> BucketClient:
    """The bucket remote ``name`` (a remote name or URL) of the store ``args`` names."""
    with open_store_for(args) as store:
        url = store.resolve_remote(name)
        client = store.bucket_remote(url)
    if client is None:
        raise RemoteError(url, "a git server's store is collected where it is: run `cas gc --store PATH` on the "
                               "server (e.g. from cron; docs/remotes.md); `cas gc REMOTE` takes a bucket (s3://, "
                               "gs://, az://) or a store on this machine")
    return client
