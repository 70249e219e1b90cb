"""``cas remote add|rm|set-url|rename|ls|upgrade``: the store's named remotes."""

from __future__ import annotations

import argparse

from .base import JSON_HELP, SubParsers, add_action, add_command, bucket_client, open_store_for
from .output import count, print_json


def remote(args: argparse.Namespace) -> int:
    if args.action == "upgrade":
        return _remote_upgrade(args)
    with open_store_for(args, write=args.action != "ls") as store:
        if args.action == "add":
            store.add_remote(args.name, args.url)
        elif args.action == "rm":
            store.remove_remote(args.name)
        elif args.action == "set-url":
            store.set_remote_url(args.name, args.url)
        elif args.action == "rename":
            store.rename_remote(args.name, args.new_name)
        else:
            remotes = store.list_remotes()
            if args.json:
                print_json(remotes)
            else:
                for name, url in remotes.items():
                    print(f"{name}\t{url}")
    return 0


def _remote_upgrade(args: argparse.Namespace) -> int:
    from ..util.durations import parse_duration

    client = bucket_client(args, args.url)
    url = client.url
    result = client.upgrade(parse_duration(args.settle, "settle time"))
    if args.json:
        print_json(dict(result.__dict__))
    elif result.old_format == 2 and not result.refs and not result.left:
        print(f"{url}: already format 2 (ref tables)")
    else:
        print(f"{url}: format {result.old_format} -> 2: {count(result.refs, 'ref')} moved into ref tables")
    for ref, sha in result.left.items():
        print(f"left in place: {ref} = {sha}: the ref tables hold another value (see docs/remotes.md)")
    return 0 if not result.left else 1


def register(sub: SubParsers) -> None:
    p = add_command(sub, "remote", "named remotes: add, ls, rm, set-url, rename",
                    "cas remote add origin ssh://host/srv/models.git", remote)
    rsub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    r = add_action(rsub, "add", "add a remote")
    r.add_argument("name")
    r.add_argument("url")
    r = add_action(rsub, "rm", "remove a remote")
    r.add_argument("name")
    r = add_action(rsub, "set-url", "change a remote's URL")
    r.add_argument("name")
    r.add_argument("url")
    r = add_action(rsub, "rename", "rename a remote")
    r.add_argument("name")
    r.add_argument("new_name", metavar="NEW")
    r = add_action(rsub, "ls", "list remotes")
    r.add_argument("--json", action="store_true", help=JSON_HELP)
    r = add_action(rsub, "upgrade", "convert a bucket remote to the newest format (ref tables), in place")
    r.add_argument("url", metavar="REMOTE", help="remote name or s3:// gs:// az:// URL")
    r.add_argument("--settle", default="10", metavar="DURATION",
                   help="wait this long after the new marker for older clients' pushes under way (default: 10s)")
    r.add_argument("--json", action="store_true", help=JSON_HELP)
