"""``cas push [REMOTE] [DOMAIN...]``: send models, histories and states the remote lacks."""

from __future__ import annotations

import argparse

from .base import SubParsers
from .sync import add_sync_command, run_sync


def push(args: argparse.Namespace) -> int:
    return run_sync(args, "push")


def register(sub: SubParsers) -> None:
    add_sync_command(sub, "push", "send models, histories and states the remote lacks", push)
