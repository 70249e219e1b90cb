"""``cas gc [REMOTE]``: remove objects no model or history needs any more (here, or in a bucket remote)."""

from __future__ import annotations

import argparse
import sys

from ..store import is_store, local_remote_path
from .base import JSON_HELP, SubParsers, add_command, bucket_client, open_store_for, store_location
from .output import count, human, print_json


def gc(args: argparse.Namespace) -> int:
    from ..ops.gc import DEFAULT_GRACE, DEFAULT_WAIT
    from ..util.durations import parse_duration

    grace = DEFAULT_GRACE if args.grace is None else parse_duration(args.grace, "grace period")
    wait = DEFAULT_WAIT if args.wait is None else parse_duration(args.wait, "wait")

    def waiting(holders: str, waited: float) -> None:
        print(f"cas gc: waiting for writers in progress to finish ({waited:.0f}s so far): "
              f"the store lock is held by {holders}", file=sys.stderr, flush=True)

    if args.remote is not None:
        return _gc_remote(args, grace)
    if args.dry_run:
        raise SystemExit("cas gc: --dry-run applies to a bucket remote (cas gc REMOTE --dry-run)")
    with open_store_for(args, write=True) as store:
        report = store.gc(grace_period=grace, wait=wait, on_wait=waiting)
    if args.json:
        print_json(report.as_dict())
    else:
        print(f"removed {count(report.objects_removed, 'object')} ({count(report.packs_removed, 'pack')} removed, "
              f"{report.packs_rewritten} rewritten), freed {human(report.bytes_freed)}")
        if report.packs_adopted or report.loose_packed:  # a store git serves (docs/remotes.md)
            print(f"merged {count(report.packs_adopted, 'pack')} and {count(report.loose_packed, 'loose object')} "
                  "that pushes left into one pack")
        # "freed 0 B" right after `cas rm` must say why, and how to free it now
        period = args.grace if args.grace is not None else "2w"
        if report.models_kept_restorable:
            print(f"kept {count(report.models_kept_restorable, 'deleted model')} "
                  f"({count(report.objects_kept_deleted, 'object')}, {human(report.bytes_kept_deleted)}) "
                  f"deleted less than the grace period ({period}) ago, restorable with `cas restore`; "
                  f"`cas gc --grace now` frees them now")
        if report.objects_kept_young:
            print(f"kept {count(report.objects_kept_young, 'unreachable object')} "
                  f"({human(report.bytes_kept_young)}) younger than the grace period ({period}); "
                  f"`cas gc --grace now` frees them now")
    return 0


def _served_path(args: argparse.Namespace, name: str) -> str | None:
    """The directory of REMOTE if it is a store on this machine (a path remote), else None."""
    direct = local_remote_path(name)
    if direct is not None and is_store(direct) and not is_store(store_location(args)[0]):
        return direct  # a store's path, and no store here to have remotes named
    with open_store_for(args) as store:
        path = local_remote_path(store.resolve_remote(name))
    return path if path is not None and is_store(path) else None


def _gc_remote(args: argparse.Namespace, grace: float) -> int:
    served = _served_path(args, args.remote)
    if served is not None:  # a path remote: the same gc as in that store itself
        if args.dry_run:
            raise SystemExit("cas gc: --dry-run applies to a bucket remote (cas gc REMOTE --dry-run)")
        args.store, args.remote = served, None
        return gc(args)
    client = bucket_client(args, args.remote)
    report = client.gc(grace, dry_run=args.dry_run)
    if args.json:
        print_json(report.as_dict())
    else:
        would = "would remove" if report.dry_run else "removed"
        print(f"{client.url}: {would} {count(report.objects_removed, 'object')} "
              f"({count(len(report.packs_deleted), 'pack')} deleted, {len(report.packs_rewritten)} rewritten, "
              f"{count(report.tables_deleted, 'ref table')}), "
              f"{'would free' if report.dry_run else 'freed'} {human(max(report.bytes_freed, 0))}; "
              f"{count(report.packs_young, 'pack')} younger than the grace period left alone")
    return 0


def register(sub: SubParsers) -> None:
    p = add_command(sub, "gc", "remove objects no model or history needs any more", "cas gc --grace 0", gc)
    p.add_argument("remote", nargs="?", default=None, metavar="REMOTE",
                   help="a bucket remote (name or s3:// gs:// az:// URL) to collect instead of the store")
    p.add_argument("--dry-run", action="store_true", help="REMOTE: report what would be removed, remove nothing")
    p.add_argument("--grace", default=None, metavar="DURATION",
                   help="keep unreachable objects younger than this: seconds, or 30m, 12h, 3d, 2w, now, "
                        "never (default: 2w)")
    p.add_argument("--wait", default=None, metavar="DURATION",
                   help="wait at most this long for writers in progress (default: 5m; never: no limit)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
