"""``cas config``: read and write settings, like ``git config`` (docs/config.md lists them)."""

from __future__ import annotations

import argparse
import os
import sys

from ..store import check_remote_url
from ..util.config import (
    ConfigKeyError,
    check_key,
    check_value,
    list_values,
    read_value,
    user_config_path,
    write_value,
)
from .base import SubParsers, add_command, name_store, require_store


def config(args: argparse.Namespace) -> int:  # noqa: PLR0912 - one branch per config subcommand
    if args.global_:
        if args.key and args.key.startswith("user."):
            # the author comes from git's config (util/identity.py), not from this file
            raise ConfigKeyError(args.key, "set it for every store with `git config --global` instead")
        path = user_config_path()
    else:
        path = os.path.join(require_store(args), "config")
    if args.list:
        for key, value in list_values(path).items():
            if args.global_ or key.startswith(("cas.", "remote.", "user.")):
                print(f"{key}={value}")
        return 0
    if not args.key:
        raise ValueError("cas config: give KEY, KEY VALUE, --unset KEY or --list")
    if args.unset or args.value is not None:
        check_key(args.key)
        if args.value is not None:
            check_value(args.key, args.value)
            if args.key.startswith("remote."):
                check_remote_url(args.value)
        write_value(path, args.key, None if args.unset else args.value)
        if args.global_:
            print(f"cas: user config {path}", file=sys.stderr)
        else:
            name_store(args, os.path.dirname(path))
        return 0
    found = read_value(path, args.key)
    if found is None:
        return 1  # like git config: unset is exit 1 and no output
    print(found)
    return 0


def register(sub: SubParsers) -> None:
    p = add_command(sub, "config", "read or set a setting of the store (--global: of every store you open)",
                    "cas config cas.defaultRemote backup", config)
    p.add_argument("key", nargs="?", metavar="KEY", help="e.g. cas.allowPickle, cas.defaultRemote, "
                   "cas.loadCacheLimit, remote.NAME.url (docs/config.md)")
    p.add_argument("value", nargs="?", metavar="VALUE", help="set KEY to VALUE (without: print its value)")
    p.add_argument("--global", dest="global_", action="store_true",
                   help="the user's config file (defaults for every store), not the store's")
    p.add_argument("--unset", action="store_true", help="remove KEY")
    p.add_argument("--list", "-l", action="store_true", help="every setting in that file")
