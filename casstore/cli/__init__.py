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
from typing import NoReturn, TypeAlias

from ..errors import CasError
from ..version import __version__
from . import commands
from .output import cli_message

EPILOG = "The store is --store PATH, else $CAS_STORE, else ~/.casstore."

#: the help of every ``--json`` option (plug-ins use it too)
JSON_HELP = "machine-readable output: one JSON document (docs/cli.md says how metadata maps to JSON)"


#: what ``add_subparsers()`` returns: argparse has no public name for its type
SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

#: Commands that live in a module of their own, ``casstore/cli/cmd_<name>.py``: each
#: module has ``register(sub)``, which calls :func:`add_command`.  A new command is one
#: module and one entry here.
PLUGINS: tuple[str, ...] = ("serve", "import_modelstore", "cat", "status", "completion", "cache", "config",
                             "verify", "clone", "restore", "note", "tag")


def _common() -> argparse.ArgumentParser:
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


def add_command(sub: SubParsers, name: str, help: str, example: str,
                func: commands.Command) -> argparse.ArgumentParser:
    """Add subcommand ``name`` to ``cas``; ``func(args)`` runs it and returns the exit code."""
    p: argparse.ArgumentParser = sub.add_parser(
        name, help=help, description=help, epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter, parents=[_common()])
    p.set_defaults(func=func)
    return p


def _count_arg(text: str) -> int:
    """A count such as ``-n 5``: an integer >= 0; a huge one means "all" (Python cannot slice past sys.maxsize)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative: give a count of 0 or more")
    return min(n, sys.maxsize)


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


def build_parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = _Parser(
        prog="cas", description="casstore: a content-addressed store for machine-learning models.",
        epilog=EPILOG)
    parser.add_argument("--store", metavar="PATH", help="the store to use (default: $CAS_STORE or ~/.casstore)")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log what casstore does on stderr (-vv: debug detail)")
    parser.add_argument("-V", "--version", action="version", version=f"casstore {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = add_command(sub, "init", "create an empty store", "cas init ./models", commands.init)
    p.add_argument("path", nargs="?", help="where (default: the --store path)")
    p.add_argument("--bare", action="store_true",
                   help="a store others push to: install the hook that protects existing models "
                        "(on an existing plain git repository: install just the hook)")
    p.add_argument("--require-signed", metavar="FILE",
                   help="with --bare: the hook also refuses commits not signed by a key of FILE "
                        "(git's allowed signers format; docs/signing.md)")

    p = add_command(sub, "remote", "named remotes: add, ls, rm, set-url, rename", "cas remote add origin ssh://host/srv/models.git",
             commands.remote)
    rsub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    r = rsub.add_parser("add", parents=[_common()], help="add a remote")
    r.add_argument("name")
    r.add_argument("url")
    r = rsub.add_parser("rm", parents=[_common()], help="remove a remote")
    r.add_argument("name")
    r = rsub.add_parser("set-url", parents=[_common()], help="change a remote's URL")
    r.add_argument("name")
    r.add_argument("url")
    r = rsub.add_parser("rename", parents=[_common()], help="rename a remote")
    r.add_argument("name")
    r.add_argument("new_name", metavar="NEW")
    r = rsub.add_parser("ls", parents=[_common()], help="list remotes")
    r.add_argument("--json", action="store_true", help=JSON_HELP)
    r = rsub.add_parser("upgrade", parents=[_common()],
                        help="convert a bucket remote to the newest format (ref tables), in place")
    r.add_argument("url", metavar="REMOTE", help="remote name or s3:// gs:// az:// URL")
    r.add_argument("--settle", default="10", metavar="DURATION",
                   help="wait this long after the new marker for older clients' pushes under way (default: 10s)")
    r.add_argument("--json", action="store_true", help=JSON_HELP)

    for verb, text in (("push", "send models, histories and states the remote lacks"),
                       ("pull", "fetch models and histories from a remote and merge them")):
        p = add_command(sub, verb, text, f"cas {verb} origin my-domain", getattr(commands, verb))
        p.add_argument("remote", nargs="?", default=None,
                       help="remote name or URL (default: cas.defaultRemote, else origin)")
        p.add_argument("domains", nargs="*", metavar="DOMAIN", help="only these domains (default: all)")
        p.add_argument("--json", action="store_true", help=JSON_HELP)
        if verb == "pull":
            p.add_argument("--theirs", action="store_true",
                           help="resolve conflicts: delete our model under each conflicting ID, take theirs")
            p.add_argument("--require-signed", action="store_true", default=None,
                           help="refuse the pull (changing nothing) unless every new model and event is signed "
                                "by an allowed key (default: when cas.requireSigned is refuse)")

    p = add_command(sub, "log", "show a domain's history, newest first", "cas log my-domain -n 5", commands.log)
    p.add_argument("domain")
    p.add_argument("-n", "--max-count", type=_count_arg, metavar="N", help="show at most N events")
    p.add_argument("--oneline", action="store_true", help="one line per event")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.add_argument("--no-pager", action="store_true", help="do not page the output")

    p = add_command(sub, "domains", "list domains", "cas domains", commands.domains)
    p.add_argument("--json", action="store_true", help=JSON_HELP)

    p = add_command(sub, "ls", "list a domain's models, newest first", "cas ls my-domain --state production",
             commands.ls)
    p.add_argument("domain")
    p.add_argument("--state", help="only models in this state")
    p.add_argument("--json", action="store_true", help=JSON_HELP)

    p = add_command(sub, "show", "show a model: frameworks, files, metadata, states", "cas show my-domain v1",
             commands.show)
    p.add_argument("domain")
    p.add_argument("model_id", metavar="ID")
    p.add_argument("--json", action="store_true", help=JSON_HELP)

    p = add_command(sub, "commit", "commit model files from the shell",
             "cas commit my-domain model.onnx --id v1 --extra metrics.csv --meta accuracy=0.95",
             commands.commit)
    p.add_argument("domain")
    p.add_argument("files", nargs="+", metavar="FILE", help="model file(s)")
    p.add_argument("--id", dest="model_id", help="model ID (default: a UUID4)")
    p.add_argument("--extra", action="append", default=[], metavar="FILE",
                   help="extra file or directory (repeatable)")
    p.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE",
                   help="metadata; VALUE is parsed as JSON when it can be (repeatable)")
    p.add_argument("--sign", action="store_true", default=None,
                   help="sign the commit with cas.signingKey (default: cas.signCommits)")
    p.add_argument("--verify-signature", metavar="SIG",
                   help="first check an OpenSSF model signature (model_signing) over FILE against the "
                        "allowed signers' ecdsa keys; refuse the commit if it does not verify")
    p.add_argument("--json", action="store_true", help=JSON_HELP)

    p = add_command(sub, "download", "write every file of a model into a directory",
             "cas download my-domain v1 ./out", commands.download)
    p.usage = "%(prog)s [options] DOMAIN ID DIR\n       %(prog)s [options] DOMAIN --state STATE DIR"
    p.add_argument("domain")
    p.add_argument("model_id", metavar="ID")
    # with --state, the one positional after DOMAIN; missing: download() says what was taken as the ID
    p.add_argument("directory", metavar="DIR", nargs="?")
    p.add_argument("--state", metavar="STATE",
                   help="instead of an ID: the newest model in this state (e.g. --state production)")
    p.add_argument("--force", action="store_true",
                   help="replace files of the same names already in DIR (default: refuse, write nothing)")
    p.add_argument("--file", action="append", dest="files", metavar="PATH",
                   help="write only this stored file (repeatable; names as `cas show` lists them)")
    p.add_argument("--signature", action="store_true",
                   help="also write DIR/model.sig, an OpenSSF model signature (model_signing) over DIR's "
                        "files made with cas.signingKey (an ecdsa key)")

    p = add_command(sub, "rm", "delete a model (its chunks are freed by gc)", "cas rm my-domain v1", commands.rm)
    p.add_argument("domain")
    p.add_argument("model_id", metavar="ID")

    p = add_command(sub, "cp", "copy a model under a new ID (shares its files; e.g. to keep ours in a conflict)",
             "cas cp my-domain v1 v1-laptop", commands.cp)
    p.add_argument("domain")
    p.add_argument("model_id", metavar="ID")
    p.add_argument("new_id", metavar="NEW_ID")
    p.add_argument("--json", action="store_true", help=JSON_HELP)

    p = add_command(sub, "state", "model states: create, set, unset, ls, rm",
             "cas state create production && cas state set my-domain v1 production", commands.state)
    ssub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    s = ssub.add_parser("create", parents=[_common()], help="create a state")
    s.add_argument("name")
    s = ssub.add_parser("rm", parents=[_common()], help="delete a state (every model leaves it)")
    s.add_argument("name")
    s = ssub.add_parser("set", parents=[_common()], help="put a model in a state")
    s.add_argument("domain")
    s.add_argument("model_id", metavar="ID")
    s.add_argument("name", metavar="STATE")
    s = ssub.add_parser("unset", parents=[_common()], help="take a model out of a state")
    s.add_argument("domain")
    s.add_argument("model_id", metavar="ID")
    s.add_argument("name", metavar="STATE")
    s = ssub.add_parser("ls", parents=[_common()], help="list states, or a model's states")
    s.add_argument("domain", nargs="?")
    s.add_argument("model_id", nargs="?", metavar="ID")
    s.add_argument("--json", action="store_true", help=JSON_HELP)

    p = add_command(sub, "diff", "compare two models of a domain", "cas diff my-domain v1 v2", commands.diff)
    p.add_argument("domain")
    p.add_argument("id_a", metavar="ID_A")
    p.add_argument("id_b", metavar="ID_B")
    p.add_argument("--json", action="store_true", help=JSON_HELP)

    p = add_command(sub, "du", "logical and stored bytes per domain", "cas du", commands.du)
    p.add_argument("--json", action="store_true", help=JSON_HELP)

    p = add_command(sub, "fsck", "check the store (exit 1 if problems are found)", "cas fsck --read-data",
             commands.fsck)
    p.add_argument("--read-data", action="store_true", help="also decompress and verify every chunk")
    p.add_argument("--repair", action="store_true",
                   help="first record the history events that killed writers left out")
    p.add_argument("--json", action="store_true", help=JSON_HELP)

    p = add_command(sub, "convert-layout", "rewrite domain histories' indexes in the current layout now "
                    "(any write converts its domain anyway)", "cas convert-layout my-domain", commands.convert_layout)
    p.add_argument("domain", nargs="?", help="only this domain (default: every domain)")

    p = add_command(sub, "gc", "remove objects no model or history needs any more", "cas gc --grace 0",
             commands.gc)
    p.add_argument("remote", nargs="?", default=None, metavar="REMOTE",
                   help="a bucket remote (name or s3:// gs:// az:// URL) to collect instead of the store")
    p.add_argument("--dry-run", action="store_true", help="REMOTE: report what would be removed, remove nothing")
    p.add_argument("--grace", default=None, metavar="DURATION",
                   help="keep unreachable objects younger than this: seconds, or 30m, 12h, 3d, 2w, now, "
                        "never (default: 2w)")
    p.add_argument("--wait", default=None, metavar="DURATION",
                   help="wait at most this long for writers in progress (default: 5m; never: no limit)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)

    for name in PLUGINS:
        importlib.import_module(f"{__package__}.cmd_{name}").register(sub)
    return parser


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


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
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
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else list(argv)):
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
