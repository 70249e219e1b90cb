"""The ``cas`` command: a thin layer over the Python API.

Exit codes: 0 ok, 1 problems found (fsck), 2 usage or runtime error.  User
errors and damaged stores print one line naming the problem, never a traceback
(``CAS_DEBUG=1`` shows it); warnings print as ``cas: warning: ...``.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import logging
import os
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import NoReturn

from ..errors import CasError
from ..version import __version__
from .base import JSON_HELP, SubParsers, add_command
from .output import cli_message

__all__ = ["COMMANDS", "JSON_HELP", "SubParsers", "add_command", "build_parser", "main"]

EPILOG = "The store is --store PATH, else $CAS_STORE, else ~/.casstore."

#: Every command, in the order ``cas --help`` lists them: each is a module
#: ``casstore/cli/cmd_<name>.py`` with ``register(sub)``, which declares the command's
#: arguments through :func:`add_command` (``cli/base.py``).  A new command is one module
#: and one entry here.
COMMANDS: tuple[str, ...] = (
    "init", "remote", "push", "pull", "log", "domains", "ls", "show", "commit", "download", "rm", "cp",
    "state", "diff", "du", "fsck", "convert_layout", "gc",
    "serve", "import_modelstore", "cat", "status", "completion", "cache", "config", "verify", "clone", "restore",
    "note", "tag",
)


class _Parser(argparse.ArgumentParser):
    """argparse, plus git's "did you mean" for a mistyped command or action."""

    def error(self, message: str) -> NoReturn:
        m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if m:
            choices = re.findall(r"'([^']*)'", m.group(2))
            close = difflib.get_close_matches(m.group(1), choices, n=3, cutoff=0.6)
            message = f"{m.group(1)!r} is not a cas command" if self.prog == "cas" else \
                f"invalid choice: {m.group(1)!r}"
            if close:
                message += "; did you mean " + " or ".join(close) + "?"
            else:
                message += f" (choose from {', '.join(choices)})"
        super().error(message)


def build_parser(commands: Sequence[str] = COMMANDS) -> argparse.ArgumentParser:
    """``cas``'s parser, with the subcommands ``commands`` (default: all of them)."""
    parser: argparse.ArgumentParser = _Parser(
        prog="cas", description="casstore: a content-addressed store for machine-learning models.",
        epilog=EPILOG)
    parser.add_argument("--store", metavar="PATH", help="the store to use (default: $CAS_STORE or ~/.casstore)")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log what casstore does on stderr (-vv: debug detail)")
    parser.add_argument("-V", "--version", action="version", version=f"casstore {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in commands:
        importlib.import_module(f"{__package__}.cmd_{name}").register(sub)
    return parser


#: options ``cas`` takes before the command that are followed by a value
_VALUED = ("--store",)


def _named_command(argv: Sequence[str]) -> str | None:
    """The command ``argv`` runs (its module's name), if it is plain which one.

    None when the first word after the top-level options is not a command, or when
    ``argv`` asks for the help or version (which list every command): the caller then
    builds every command's parser, so a mistyped command still gets "did you mean".
    """
    words = iter(argv)
    for word in words:
        if word in ("-h", "--help", "-V", "--version"):
            return None
        if word in _VALUED:
            next(words, None)
        elif not word.startswith("-"):
            name = word.replace("-", "_")
            return name if name in COMMANDS else None
    return None


def _unrecognized(parser: argparse.ArgumentParser, args: argparse.Namespace, extras: list[str]) -> NoReturn:
    """Refuse arguments no parser took, with the usage of the (sub)command they were given to.

    argparse's own ``parse_args`` reports them from the top-level parser, so
    ``cas fsck --readdata`` printed ``cas``'s usage; here it is ``cas fsck``'s,
    with git's "did you mean" for a mistyped option.
    """
    target = parser
    while True:
        subs = [a for a in target._actions if isinstance(a, argparse._SubParsersAction)]
        chosen = getattr(args, subs[0].dest, None) if subs else None
        if not subs or chosen not in subs[0].choices:
            break
        target = subs[0].choices[chosen]
    options = [o for a in target._actions for o in a.option_strings if o.startswith("--")]
    hints = []
    for x in extras:
        if x.startswith("--"):
            close = difflib.get_close_matches(x.partition("=")[0], options, n=2, cutoff=0.6)
            if close:
                hints.append(f"{x}: did you mean {' or '.join(close)}?")
    target.error(f"unrecognized arguments: {' '.join(extras)}" + ("; " + "; ".join(hints) if hints else ""))


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,  # noqa: PLR0913 - the signature warnings.showwarning requires
                  file: object = None, line: str | None = None) -> None:
    text = str(message).removeprefix("casstore: ")
    print(f"cas: warning: {text}", file=sys.stderr)


@contextmanager
def _logging(verbosity: int) -> Iterator[None]:
    """``-v``: casstore's log (commit, push, pull, gc summaries, lock waits) on stderr; ``-vv``: debug too."""
    if verbosity <= 0:
        yield
        return
    logger = logging.getLogger("casstore")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("cas: %(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbosity == 1 else logging.DEBUG)
    try:
        yield
    finally:  # main() may run many times in one process (tests, embedding)
        logger.removeHandler(handler)
        logger.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else list(argv)
    # start-up: only the command run is imported and its parser built (issue 26: one
    # process per small commit), unless the arguments need them all
    name = _named_command(given)
    parser = build_parser([name] if name else COMMANDS)
    if not given:
        parser.print_help()  # bare `cas`: what it can do, as `git` does; asked for, so not an error
        return 0
    args, extras = parser.parse_known_args(argv)
    if extras:
        _unrecognized(parser, args, extras)
    with _logging(getattr(args, "verbose", 0)):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = _show_warning
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("cas: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (cas log | head): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (CasError, OSError, ValueError, KeyError, TypeError) as e:
        if os.environ.get("CAS_DEBUG"):
            raise
        print(f"cas: error: {cli_message(e)}", file=sys.stderr)
        return 2
    except Exception as e:  # a bug, or damage nothing above recognised: still one line
        if os.environ.get("CAS_DEBUG"):
            raise
        print(f"cas: internal error: {type(e).__name__}: {e} (set CAS_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return 2
