"""``cas rm DOMAIN ID``: delete a model (restorable until gc frees it)."""

from __future__ import annotations

import argparse

from .base import SubParsers, add_command, open_store_for


def rm(args: argparse.Namespace) -> int:
    with open_store_for(args, write=True) as store:
        store.delete_model(args.domain, args.model_id)
    # gc keeps a deleted model for its grace period after the deletion (ops/gc.py)
    print(f"deleted {args.domain}/{args.model_id} (`cas restore {args.domain} {args.model_id}` brings it back "
          f"for two weeks; `cas gc --grace 0` frees its space now)")
    return 0


def register(sub: SubParsers) -> None:
    p = add_command(sub, "rm", "delete a model (its chunks are freed by gc)", "cas rm my-domain v1", rm)
    p.add_argument("domain")
    p.add_argument("model_id", metavar="ID")
