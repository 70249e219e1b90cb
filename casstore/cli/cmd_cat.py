"""``cas cat DOMAIN ID PATH``: one stored file to stdout, streamed and verified."""

from __future__ import annotations

import argparse
import sys

from .base import SubParsers, add_command, open_store_for


def cat(args: argparse.Namespace) -> int:
    with open_store_for(args) as store:
        store.progress = None  # stdout is the data: no progress bar on the terminal either
        _, pieces = store.stream_file(args.domain, args.model_id, args.path)
        out = sys.stdout.buffer
        # Each piece is verified before it is written.  A damaged chunk stops the
        # stream with an error (exit 2) after the verified bytes before it.
        for piece in pieces:
            out.write(piece)
        out.flush()
    return 0


def register(sub: SubParsers) -> None:
    p = add_command(sub, "cat", "write one file of a model to stdout (streamed, every chunk verified)",
                    "cas cat my-domain v1 model.onnx > model.onnx", cat)
    p.add_argument("domain")
    p.add_argument("model_id", metavar="ID")
    p.add_argument("path", metavar="PATH", help="the file's stored path, as `cas show` lists it")
