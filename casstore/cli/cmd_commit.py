"""``cas commit DOMAIN FILE... [--id ID] [--extra FILE] [--meta KEY=VALUE]``: commit model files from the shell."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from ..util.names import check_model_id
from .base import JSON_HELP, SubParsers, add_command, open_store_for
from .output import chunks_new, human, print_json


def _meta(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--meta {pair!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
        except RecursionError:  # Python's parser gives up near 1000 levels, with its own words
            depth = len(value) - len(value.lstrip("[{ "))
            raise ValueError(f"--meta {key}: the value is nested too deeply ({depth}+ levels of JSON "
                             f"arrays/objects; at most {MAX_META_DEPTH} are supported)") from None
        if _depth(out[key]) > MAX_META_DEPTH:
            raise ValueError(f"--meta {key}: the value is nested too deeply (more than {MAX_META_DEPTH} "
                             f"levels of JSON arrays/objects)")
    return out


#: how deeply a --meta value may nest: far beyond any real metadata, and well within
#: what msgpack, ``cas show`` and ``--json`` output handle
MAX_META_DEPTH = 100


def _depth(v: Any) -> int:
    """How deeply ``v`` nests (0 for a scalar); iterative, so any depth is measured safely."""
    deepest, stack = 0, [(v, 0)]
    while stack:
        item, d = stack.pop()
        if isinstance(item, (list, dict)):
            if d + 1 > deepest:
                deepest = d + 1
            if deepest > MAX_META_DEPTH:
                return deepest
            stack.extend((x, d + 1) for x in (item.values() if isinstance(item, dict) else item))
    return deepest


def _is_model_id(text: str) -> bool:
    try:
        check_model_id(text)
        return True
    except ValueError:
        return False


def commit(args: argparse.Namespace) -> int:
    meta = _meta(args.meta)
    for i, f in enumerate(args.files):
        if not os.path.lexists(f):
            hint = ""
            if i == len(args.files) - 1 and i > 0 and args.model_id is None and _is_model_id(f):
                # `cas commit fraud model.onnx v1`: the ID given where FILEs go
                hint = f"; to name the model {f}, use --id {f} (`cas commit {args.domain} " \
                       f"{' '.join(args.files[:-1])} --id {f}`)"
            raise FileNotFoundError(f"{f}: no such file{hint}")
    model = args.files[0] if len(args.files) == 1 else list(args.files)
    with open_store_for(args, write=True) as store:
        if args.verify_signature:
            if len(args.files) != 1:
                raise ValueError("--verify-signature checks one model path (a file or a directory), "
                                 f"not {len(args.files)}")
            who = store.check_model_signature(args.files[0], args.verify_signature)
            print(f"model signature {args.verify_signature} verified: signed by {who}")
        info = store.commit_models(args.domain, model=model, model_id=args.model_id,
                                   extra_files=args.extra or None, extra_metadata=meta or None,
                                   sign=args.sign)
    if args.json:
        print_json(info)
    else:
        s = info["stats"]
        # raw bytes given vs compressed bytes written: never both called "new"
        print(f"committed {info['domain']}/{info['model_id']} ({info['commit'][:10]}): "
              f"{human(s['bytes_given'])} given, {chunks_new(s['chunks_new'], s['chunks_total'])}, "
              f"{human(s['bytes_stored'])} stored")
    return 0


def register(sub: SubParsers) -> None:
    p = add_command(sub, "commit", "commit model files from the shell",
                    "cas commit my-domain model.onnx --id v1 --extra metrics.csv --meta accuracy=0.95", commit)
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
