"""``cas import-modelstore``: migrate a modelstore store into casstore (casstore/compat/importer.py)."""

from __future__ import annotations

import argparse
import os
import sys

from ..compat.meta import EXPANSION_ALLOWANCE, MAX_EXPANSION, STORE_DIR  # the light module: `cas` builds every parser
from ..store import init_store, is_store
from .base import JSON_HELP, SubParsers, add_command, open_store_for, store_path
from .output import print_json


def import_modelstore(args: argparse.Namespace) -> int:  # noqa: C901 - one branch per kind of source and outcome the import reports
    from ..compat.importer import import_modelstore as run
    from ..compat.importer import open_source

    source = open_source(args.source)  # a missing source creates no store
    root = getattr(source, "root", None)  # a modelstore root directory
    if getattr(args, "store", None) is None and root is not None:
        # where the user's unchanged ModelStore.from_file_system(root_directory=root) looks
        args.store = os.path.join(root, STORE_DIR)
        print(f"cas: store {args.store} (beside the modelstore store: "
              f"ModelStore.from_file_system(root_directory={root!r}) reads it)", file=sys.stderr)
    elif root is not None and os.path.abspath(store_path(args)) != os.path.join(root, STORE_DIR):
        print(f"cas: note: ModelStore.from_file_system(root_directory={root!r}) reads "
              f"{os.path.join(root, STORE_DIR)}, not this store; without --store the import goes there",
              file=sys.stderr)
    # the one command besides `cas init` that creates its store: its job is to fill a new one
    path = store_path(args)
    if not is_store(path):
        init_store(path)
    with open_store_for(args, write=True) as store:
        def say(text: str) -> None:
            if not args.json and sys.stderr.isatty():
                print(f"cas import-modelstore: {text}", file=sys.stderr, flush=True)

        report = run(store, source, say, max_expansion=args.max_expansion, map_ids=args.map_ids)
    if args.json:
        print_json(report.as_dict())
    else:
        for key in report.imported:
            print(f"imported: {key}")
        for key in report.deleted:
            print(f"imported as deleted: {key}")
        for name in report.states_created:
            print(f"state created: {name}")
        for item in report.states_set:
            print(f"state set: {item}")
        for key, note in report.notes.items():
            print(f"note: {key}: {note}")
        for key, why in report.failed.items():
            print(f"failed: {key}: {why}")
        print(f"{len(report.imported)} models imported, {len(report.deleted)} deleted models, "
              f"{len(report.skipped)} already here, {len(report.failed)} failed")
    return 0 if report.ok else 1


def register(sub: SubParsers) -> None:
    p = add_command(sub, "import-modelstore",
                    "copy a modelstore store (domains, models, states, deletions) into this store; resumable",
                    "cas --store ./models import-modelstore /data/modelstore-root", import_modelstore)
    p.add_argument("source", metavar="SOURCE",
                   help="a modelstore root directory (or its operatorai-model-store), or s3://bucket/root_prefix")
    p.add_argument("--max-expansion", type=_ratio, default=MAX_EXPANSION, metavar="RATIO",
                   help=f"refuse an archive that expands to more than RATIO times its compressed size, plus "
                        f"{EXPANSION_ALLOWANCE >> 20} MiB, as a decompression bomb (default {MAX_EXPANSION})")
    p.add_argument("--map-ids", action="store_true",
                   help="import a model whose modelstore ID casstore refuses (e.g. v1+exp) under an ID made from "
                        "it (v1-exp-<hash>), keeping modelstore's in meta['model']['modelstore_model_id']")
    p.add_argument("--json", action="store_true", help=JSON_HELP)


def _ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 1 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: a ratio of at least 1")
    return value
