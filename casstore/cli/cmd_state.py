"""``cas state create|rm|set|unset|ls``: model states."""

from __future__ import annotations

import argparse

from .base import JSON_HELP, SubParsers, add_action, add_command, open_store_for, print_list


def state(args: argparse.Namespace) -> int:
    with open_store_for(args, write=args.action != "ls") as store:
        if args.action == "create":
            store.create_model_state(args.name)
        elif args.action == "rm":
            store.delete_model_state(args.name)
        elif args.action == "set":
            store.set_model_state(args.domain, args.model_id, args.name)
        elif args.action == "unset":
            store.remove_model_state(args.domain, args.model_id, args.name)
        else:
            if args.domain and not args.model_id:
                raise ValueError("cas state ls takes no argument, or DOMAIN and ID")
            print_list(store.get_model_states(args.domain, args.model_id) if args.domain
                        else store.list_model_states(), args.json)
    return 0


def register(sub: SubParsers) -> None:
    p = add_command(sub, "state", "model states: create, set, unset, ls, rm",
                    "cas state create production && cas state set my-domain v1 production", state)
    ssub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    s = add_action(ssub, "create", "create a state")
    s.add_argument("name")
    s = add_action(ssub, "rm", "delete a state (every model leaves it)")
    s.add_argument("name")
    s = add_action(ssub, "set", "put a model in a state")
    s.add_argument("domain")
    s.add_argument("model_id", metavar="ID")
    s.add_argument("name", metavar="STATE")
    s = add_action(ssub, "unset", "take a model out of a state")
    s.add_argument("domain")
    s.add_argument("model_id", metavar="ID")
    s.add_argument("name", metavar="STATE")
    s = add_action(ssub, "ls", "list states, or a model's states")
    s.add_argument("domain", nargs="?")
    s.add_argument("model_id", nargs="?", metavar="ID")
    s.add_argument("--json", action="store_true", help=JSON_HELP)
