"""``cas verify DOMAIN [ID]``: who signed each model and each history event (docs/signing.md)."""

from __future__ import annotations

import argparse

from .base import SubParsers, add_command, open_store_for
from .output import print_json


def verify(args: argparse.Namespace) -> int:
    with open_store_for(args) as store:
        report = store.verify_model(args.domain, args.model_id)
    if args.json:
        print_json(report)
    else:
        if report["allowed_signers"] is None:
            print("no allowed signers file (cas.allowedSigners or git's gpg.ssh.allowedSignersFile): "
                  "no key is trusted")
        for m in report["models"]:
            print(f"model {args.domain}/{m['model_id']} {m['commit'][:10]}: {m['signature']['summary']}")
        for e in report["events"]:
            print(f"  event {e['history_commit'][:10]} {e['time']} {e['event']} {e['model_id']}: "
                  f"{e['signature']['summary']}")
        print("ok: every model and event is signed by an allowed key" if report["ok"]
              else "NOT OK: some models or events are not signed by an allowed key")
    return 0 if report["ok"] else 1


def register(sub: SubParsers) -> None:
    p = add_command(sub, "verify", "check who signed a domain's models and history events",
                    "cas verify my-domain v1", verify)
    p.add_argument("domain")
    p.add_argument("model_id", metavar="ID", nargs="?", help="one model (default: every model of the domain)")
    p.add_argument("--json", action="store_true", help="print JSON")
