"""``cas pull [REMOTE] [DOMAIN...]``: fetch models and histories from a remote and merge them."""

from __future__ import annotations

import argparse

from .base import SubParsers
from .sync import add_sync_command, run_sync


def pull(args: argparse.Namespace) -> int:
    if args.download is not None and len(args.domains) != 1:
        raise ValueError(f"cas pull --download DIR takes one DOMAIN (given: {len(args.domains)}): "
                         f"`cas pull REMOTE DOMAIN --download DIR [--model ID]`")
    if args.download is None and (args.model is not None or args.force):
        raise ValueError("--model and --force go with --download DIR")
    return run_sync(args, "pull")


def register(sub: SubParsers) -> None:
    p = add_sync_command(sub, "pull", "fetch models and histories from a remote and merge them", pull)
    p.add_argument("--theirs", action="store_true",
                   help="resolve conflicts: delete our model under each conflicting ID, take theirs")
    p.add_argument("--require-signed", action="store_true", default=None,
                   help="refuse the pull (changing nothing) unless every new model and event is signed "
                        "by an allowed key (default: when cas.requireSigned is refuse)")
    p.add_argument("--download", metavar="DIR", default=None,
                   help="then write the model's files into DIR, as `cas download` does, without reading them "
                        "again: the pull writes them while it verifies them (one DOMAIN)")
    p.add_argument("--model", metavar="ID", default=None,
                   help="with --download: the model to write (default: the domain's newest after the pull)")
    p.add_argument("--force", action="store_true",
                   help="with --download: replace files in DIR that hold other bytes (as `cas download --force`)")
