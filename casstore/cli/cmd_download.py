"""``cas download DOMAIN ID DIR`` (or ``--state STATE``): write a model's files into a directory."""

from __future__ import annotations

import argparse
import os
import warnings

from ..errors import OtherFilesWarning
from ..util.names import shown
from .base import SubParsers, add_command, open_store_for
from .output import count, human


def download(args: argparse.Namespace) -> int:
    if args.state is not None:  # `cas download DOMAIN --state STATE DIR`: argparse took DIR for the ID
        if args.directory is not None:
            raise ValueError(f"give an ID ({args.model_id}) or --state {args.state}, not both")
        args.directory, args.model_id = args.model_id, None
    elif args.directory is None:
        # `cas download fraud ./o3`: the directory given where the ID goes
        given = args.model_id
        if "/" in given or given.startswith(".") or os.path.isdir(given):
            raise ValueError(f"cas download DOMAIN ID DIR: no DIR given, and {given!r} looks like a directory, "
                             f"not a model ID: `cas download {args.domain} ID {given}` "
                             f"(`cas ls {args.domain}` lists the IDs)")
        raise ValueError(f"cas download DOMAIN ID DIR: no DIR given: where should the files of "
                         f"{args.domain}/{given} go? (`cas download {args.domain} {given} DIR`, or "
                         f"`cas download {args.domain} --state STATE DIR`)")
    if os.path.exists(args.directory) and not os.path.isdir(args.directory):
        raise NotADirectoryError(f"{args.directory} is a file, not a directory: DIR is where the model's "
                                 f"files are written (to write one file, use --file PATH)")
    with open_store_for(args) as store, warnings.catch_warnings():
        # the note below says it, from the same result
        warnings.simplefilter("ignore", OtherFilesWarning)
        info = store.model_info(args.domain, args.model_id, state=args.state)
        args.model_id = info.model_id  # the very model `--state` found, downloaded below
        done = store.download(args.directory, args.domain, args.model_id, files=args.files, force=args.force)
        sig = store.sign_directory(done) if args.signature else None
    name = f"{info.domain}/{info.model_id}"
    sizes = {f.path: f.size for f in info.files}
    paths = [*done.written, *done.unchanged]
    print(f"downloaded {name}: {count(len(paths), 'file')}, {human(sum(sizes[p] for p in paths))} into {done}")
    for p in done.replaced:
        print(f"replaced {shown(p)}")
    for p in done.unchanged:
        print(f"unchanged {shown(p)} (already held the same bytes)")
    if done.others:
        listed = ", ".join(map(shown, done.others[:10])) + (", ..." if len(done.others) > 10 else "")
        print(f"note: {done} also holds {count(len(done.others), 'other file')} that {name} does not have "
              f"(left untouched): {listed}")
    if sig is not None:
        print(f"signed {done} for OpenSSF model signing: {sig} "
              f"(check: model_signing verify key {done} --signature {sig} --public_key KEY.pem)")
    return 0


def register(sub: SubParsers) -> None:
    p = add_command(sub, "download", "write every file of a model into a directory",
                    "cas download my-domain v1 ./out", download)
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
