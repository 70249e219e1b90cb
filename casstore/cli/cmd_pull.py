"""``cas pull [REMOTE] [DOMAIN...]``: fetch models and histories from a remote and merge them."""

from __future__ import annotations

import argparse

from .base import SubParsers
from .sync import add_sync_command, run_sync


def pull(args: argparse.Namespace) -> int:
    return run_sync(args, "pull")


def register(sub: SubParsers) -> None:
    p = add_sync_command(sub, "pull", "fetch models and histories from a remote and merge them", pull)
    p.add_argument("--theirs", action="store_true",
                   help="resolve conflicts: delete our model under each conflicting ID, take theirs")
    p.add_argument("--require-signed", action="store_true", default=None,
                   help="refuse the pull (changing nothing) unless every new model and event is signed "
                        "by an allowed key (default: when cas.requireSigned is refuse)")
