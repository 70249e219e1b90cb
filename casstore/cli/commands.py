"""One function per ``cas`` subcommand; each calls the API and formats the result."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from itertools import islice
from typing import Any

from ..errors import DomainNotFoundException
from ..model.history import iter_log
from ..objects.refs import domain_ref
from ..store import Store, init_store, is_store, missing_store_error, open_store, resolve_store
from ..util.names import check_domain, shown
from ..util.progress import TerminalProgress
from .output import count, human, pager, paint, print_json, to_json, use_color

Command = Callable[[argparse.Namespace], int]


def store_location(args: argparse.Namespace) -> tuple[str, str]:
    """The store a command names (``--store``, ``$CAS_STORE``, ``~/.casstore``) and where that came from."""
    return resolve_store(getattr(args, "store", None))


def store_path(args: argparse.Namespace) -> str:
    return store_location(args)[0]


def require_store(args: argparse.Namespace) -> str:
    """The store's path; NotAStoreError naming the path and its source when nothing is there.

    Only ``cas init`` creates a store: a mistyped ``$CAS_STORE``, or a relative one used
    from another directory, must fail here rather than leave a new empty store behind.
    """
    path, source = store_location(args)
    if not os.path.exists(path):
        raise missing_store_error(path, source)
    if not is_store(path):
        raise missing_store_error(path, source)
    return path


@contextmanager
def open_store_for(args: argparse.Namespace, write: bool = False) -> Iterator[Store]:
    """The store a command names, with progress on a tty; never creates one.

    ``write=True`` (commands that change the store): once the command succeeded, a
    store chosen by ``$CAS_STORE`` or the default (not one named with ``--store``) is
    named on stderr, so that changing an unexpected store is never silent.
    """
    path = require_store(args)
    store = open_store(path, create=False)
    progress = TerminalProgress() if sys.stderr.isatty() else None
    store.progress = progress
    try:
        yield store
    finally:
        if progress:
            progress.finish()
        store.close()
    if write:
        name_store(args, path)


def name_store(args: argparse.Namespace, path: str) -> None:
    """``cas: store PATH`` on stderr, unless the user named the store with ``--store``."""
    if getattr(args, "store", None) is None:
        print(f"cas: store {path} (from {store_location(args)[1]})", file=sys.stderr)


def _when(t: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S +0000", time.gmtime(t))


def init(args: argparse.Namespace) -> int:
    path = os.path.abspath(args.path or store_path(args))
    if is_store(path):
        print(f"store already exists at {path}")
        return 0
    if args.bare and _plain_git_repo(path):
        # a remote made with `git init --bare`: give it what `cas init --bare` would have
        from ..remote.hook import install_hook

        install_hook(path)
        subprocess.run(["git", "--git-dir", path, "config", "receive.fsckObjects", "true"], check=True)
        print(f"installed the model-protecting hook in the git repository at {path}")
        return 0
    init_store(path, bare_remote=args.bare)
    kind = "bare remote store (with the model-protecting hook)" if args.bare else "store"
    print(f"initialised empty {kind} at {path}")
    return 0


def _plain_git_repo(path: str) -> bool:
    """Whether ``path`` is a bare git repository (not made by casstore)."""
    return all(os.path.exists(os.path.join(path, p)) for p in ("HEAD", "objects", "refs", "config"))


def _hook_missing(url: str) -> bool:
    """Whether ``url`` is a local git repository without casstore's pre-receive hook.

    Only local remotes can be checked; a server's hooks are invisible to a client.
    """
    from ..remote.hook import PRE_RECEIVE
    from ..remote.transport import local_path

    path = local_path(url)
    if path is None or not _plain_git_repo(path):
        return False
    try:
        with open(os.path.join(path, "hooks", "pre-receive")) as f:
            return f.read() != PRE_RECEIVE
    except FileNotFoundError:
        return True


def remote(args: argparse.Namespace) -> int:
    from ..remote.config import add_remote, list_remotes, remove_remote, rename_remote, set_remote_url

    with open_store_for(args, write=args.action != "ls") as store:
        if args.action == "add":
            add_remote(store.repo, args.name, args.url)
        elif args.action == "rm":
            remove_remote(store.repo, args.name)
        elif args.action == "set-url":
            set_remote_url(store.repo, args.name, args.url)
        elif args.action == "rename":
            rename_remote(store.repo, args.name, args.new_name)
        else:
            remotes = list_remotes(store.repo)
            if args.json:
                print_json(remotes)
            else:
                for name, url in remotes.items():
                    print(f"{name}\t{url}")
    return 0


def _sync(args: argparse.Namespace, verb: str) -> int:
    with open_store_for(args, write=True) as store:
        if verb == "push":
            result = store.push(args.remote, args.domains or None)
            if _hook_missing(result.url):
                warnings.warn(f"{result.url} has no casstore hook: plain git clients can overwrite or delete "
                              f"models there; install it with `cas init --bare {result.url}`", stacklevel=1)
        else:
            result = store.pull(args.remote, args.domains or None, theirs=args.theirs)
    if args.json:
        print_json(result.as_dict())
    else:
        moved = "sent" if verb == "push" else "received"
        print(f"{verb} {result.url}: {count(len(result.models_added), 'model')} added, "
              f"{len(result.models_deleted)} deleted"
              + (f", {len(result.models_replaced)} replaced" if result.models_replaced else "")
              + f"; {count(result.objects, 'object')}, {human(result.bytes)} {moved}")
        for m in result.conflicts:
            domain = m.split("/", 1)[0]
            print(f"conflict: {m} is a different model on each side; domain {domain} left as it was on both")
        if result.conflicts:
            print("  resolve: `cas pull --theirs` (take theirs), or `cas cp DOMAIN ID NEW_ID` first to keep ours "
                  "under a new ID; see docs/remotes.md")
        for d in result.diverged:
            print(f"diverged: {d}: the remote's history is new here; run `cas pull` first, then push")
        for ref, reason in result.rejected.items():
            print(f"rejected by the remote: {ref}: {reason}")
    return 0 if result.ok else 1


def push(args: argparse.Namespace) -> int:
    return _sync(args, "push")


def pull(args: argparse.Namespace) -> int:
    return _sync(args, "pull")


def log(args: argparse.Namespace) -> int:
    with open_store_for(args) as store:
        head = store.refs.get(domain_ref(check_domain(args.domain)))
        if head is None:
            raise DomainNotFoundException(args.domain)
        events = iter_log(store.odb, head)
        if args.max_count is not None:
            events = islice(events, max(args.max_count, 0))
        if args.json:
            print_json([e.as_dict() for e in events])
            return 0
        with pager(not args.no_pager) as out:
            color = use_color(sys.stdout)
            for i, e in enumerate(events):
                title = f"{e.event} {e.model_id}" + (f" {e.state}" if e.state else "")
                if args.oneline:
                    extra = f" [{e.frameworks}]" if e.frameworks else ""
                    out.write(f"{paint(e.model_commit[:10], 'yellow', color)} "
                              f"{time.strftime('%Y-%m-%d %H:%M +0000', time.gmtime(e.time))} {title}{extra}\n")
                    continue
                if i:
                    out.write("\n")
                out.write(paint(title, "yellow", color) + "\n")
                out.write(f"Model:   {e.model_commit}\n")
                out.write(f"Author:  {shown(e.author)}\n")
                out.write(f"Date:    {_when(e.time)}\n")
                if e.frameworks or e.summary:
                    out.write("\n")
                if e.frameworks:
                    out.write(f"    {e.frameworks}\n")
                if e.summary:
                    out.write(f"    {e.summary}\n")
    return 0


def _print_list(items: Iterable[str], as_json: bool) -> None:
    if as_json:
        print_json(list(items))
    else:
        for item in items:
            print(item)


def domains(args: argparse.Namespace) -> int:
    with open_store_for(args) as store:
        _print_list(store.list_domains(), args.json)
    return 0


def ls(args: argparse.Namespace) -> int:
    with open_store_for(args) as store:
        # streamed newest first from the history: `cas ls | head` reads a few events, not every model
        _print_list(store.iter_models(args.domain, state_name=args.state), args.json)
    return 0


#: lines of a model card (README.md / MODEL_CARD.md) ``cas show`` prints
CARD_LINES = 6


def show(args: argparse.Namespace) -> int:
    with open_store_for(args) as store:
        info = store.get_model_info(args.domain, args.model_id)
        info["states"] = store.get_model_states(args.domain, args.model_id)
        card = None if args.json else store.model_card(args.domain, args.model_id, max_bytes=4096)
    if args.json:
        print_json(info)
        return 0
    color = use_color(sys.stdout)
    print(paint(f"model {info['domain']}/{info['model_id']}", "yellow", color))
    print(f"Commit:  {info['commit']}")
    print(f"Author:  {shown(info['author'])}")
    print(f"Created: {info['created']}")
    if info["states"]:
        print(f"States:  {', '.join(info['states'])}")
    print("\nFrameworks:")
    for kwarg, fw in info["frameworks"].items():
        lib = fw["library"]
        version = f" ({lib.get('name')} {lib.get('version')})" if lib.get("version") else ""
        # a store pulled from elsewhere may be hostile: say which entries run code on load
        safety = "loading runs code (pickle)" if fw["executes_code"] else "data only"
        print(shown(f"  {kwarg}: {fw['framework']} {fw['class']} [{fw['format']}]{version}  {safety}"))
    print("\nFiles:")
    for f in info["files"]:
        print(f"  {shown(f['path']):<40} {human(f['size']):>10}  {f['kind']:<5}  {f['digest'][:23]}...")
    if info["extra_metadata"]:
        print("\nMetadata:")
        for line in json.dumps(to_json(info["extra_metadata"]), indent=2).splitlines():
            print(f"  {line}")
    if card:
        lines = [ln for ln in card[1].splitlines() if ln.strip()]
        print(f"\nCard ({shown(card[0])}):")
        for line in lines[:CARD_LINES]:
            print(f"  {shown(line)}")
        if len(lines) > CARD_LINES:
            print("  ...")
    s = info["stats"]
    print(f"\nStored:  {human(s['bytes_stored'])} written for {human(s['bytes_given'])} given "
          f"({_chunks_new(s['chunks_new'], s['chunks_total'])})")
    return 0


def _chunks_new(new: int, total: int) -> str:
    return f"{new}/{count(total, 'chunk')} new"


def _meta(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--meta {pair!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def commit(args: argparse.Namespace) -> int:
    meta = _meta(args.meta)
    for f in args.files:
        if os.path.isdir(f):  # the API's advice (extra_files=) is not what a shell user types
            raise IsADirectoryError(f"{f} is a directory: model FILEs are files; "
                                    f"commit a directory with --extra {f}")
    model = args.files[0] if len(args.files) == 1 else list(args.files)
    with open_store_for(args, write=True) as store:
        info = store.commit_models(args.domain, model=model, model_id=args.model_id,
                                   extra_files=args.extra or None, extra_metadata=meta or None)
    if args.json:
        print_json(info)
    else:
        s = info["stats"]
        # raw bytes given vs compressed bytes written: never both called "new"
        print(f"committed {info['domain']}/{info['model_id']} ({info['commit'][:10]}): "
              f"{human(s['bytes_given'])} given, {_chunks_new(s['chunks_new'], s['chunks_total'])}, "
              f"{human(s['bytes_stored'])} stored")
    return 0


def download(args: argparse.Namespace) -> int:
    if os.path.exists(args.directory) and not os.path.isdir(args.directory):
        raise NotADirectoryError(f"{args.directory} is a file, not a directory: DIR is where the model's "
                                 f"files are written (to write one file, use --file PATH)")
    root = os.path.abspath(args.directory)
    with open_store_for(args) as store:
        info = store.get_model_info(args.domain, args.model_id)
        known = {f["path"] for f in info["files"]}
        for p in args.files or []:
            if p not in known:
                raise FileNotFoundError(f"{args.domain}/{args.model_id} has no file {p!r} "
                                        f"(its files: {', '.join(sorted(known))})")
        info["files"] = [f for f in info["files"] if not args.files or f["path"] in args.files]
        paths = [f["path"] for f in info["files"]]
        # like `git checkout`, never replace a user's file without being told to
        present = [p for p in paths if os.path.lexists(os.path.join(root, p))]
        if present and not args.force:
            listed = ", ".join(map(shown, present[:5])) + (", ..." if len(present) > 5 else "")
            raise FileExistsError(f"{root} already holds {count(len(present), 'file')} of "
                                  f"{args.domain}/{args.model_id} ({listed}): nothing written; "
                                  f"use --force to replace them, or another DIR")
        before = _all_files(root)
        store.download(root, args.domain, args.model_id, files=args.files)
    name = f"{info['domain']}/{info['model_id']}"
    print(f"downloaded {name}: {count(len(paths), 'file')}, {human(sum(f['size'] for f in info['files']))} "
          f"into {root}")
    for p in present:
        print(f"replaced {shown(p)}")
    others = before - set(paths) - set(present)
    if others:
        print(f"note: {root} also holds {count(len(others), 'other file')} that {name} does not have "
              f"(left untouched)")
    return 0


def _all_files(root: str) -> set[str]:
    """Relative paths of the files under ``root`` (empty if it does not exist)."""
    out: set[str] = set()
    for dirpath, _, files in os.walk(root):
        for fn in files:
            out.add(os.path.relpath(os.path.join(dirpath, fn), root).replace(os.sep, "/"))
    return out


def cp(args: argparse.Namespace) -> int:

    with open_store_for(args, write=True) as store:
        info = store.copy_model(args.domain, args.model_id, args.new_id)
    if args.json:
        print_json(info)
    else:
        print(f"copied {args.domain}/{args.model_id} to {info['domain']}/{info['model_id']} ({info['commit'][:10]})")
    return 0


def rm(args: argparse.Namespace) -> int:
    with open_store_for(args, write=True) as store:
        store.delete_model(args.domain, args.model_id)
    print(f"deleted {args.domain}/{args.model_id} (run `cas gc` to free its space)")
    return 0


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
            _print_list(store.get_model_states(args.domain, args.model_id) if args.domain
                        else store.list_model_states(), args.json)
    return 0


def diff(args: argparse.Namespace) -> int:
    with open_store_for(args) as store:
        d = store.diff(args.domain, args.id_a, args.id_b)
    if args.json:
        print_json(d)
        return 0
    color = use_color(sys.stdout)
    for p in d["added"]:
        print(paint(f"+ {shown(p)}", "green", color))
    for p in d["removed"]:
        print(paint(f"- {shown(p)}", "red", color))
    for c in d["changed"]:
        name = shown(f"{c['path_a']} -> {c['path']}" if "path_a" in c else c["path"])
        # raw bytes the new version does not share, not what storing them cost (see commit)
        print(paint(f"~ {name}", "yellow", color) +
              f"  {human(c['size_a'])} -> {human(c['size_b'])}; shares {c['chunks_shared']}/"
              f"{count(c['chunks'], 'chunk')} ({human(c['bytes_shared'])}), {human(c['bytes_new'])} of new data")
    for p in d["unchanged"]:
        print(f"  {shown(p)}")
    m = d["metadata"]
    for k, v in m["added"].items():
        print(paint(f"+ metadata {shown(str(k))}={json.dumps(to_json(v))}", "green", color))
    for k, v in m["removed"].items():
        print(paint(f"- metadata {shown(str(k))}={json.dumps(to_json(v))}", "red", color))
    for k, (a, b) in m["changed"].items():
        print(paint(f"~ metadata {shown(str(k))}: {json.dumps(to_json(a))} -> {json.dumps(to_json(b))}",
                    "yellow", color))
    return 0


def du(args: argparse.Namespace) -> int:
    with open_store_for(args) as store:
        d = store.du()
    if args.json:
        print_json(d)
        return 0
    print(f"{'DOMAIN':<30} {'MODELS':>7} {'LOGICAL':>11} {'STORED':>11}")
    for name, v in d["domains"].items():
        print(f"{name:<30} {v['models']:>7} {human(v['logical_bytes']):>11} {human(v['stored_bytes']):>11}")
    t = d["total"]
    print(f"{'total (on disk)':<30} {t['models']:>7} {human(t['logical_bytes']):>11} "
          f"{human(t['stored_bytes']):>11}")
    return 0


def fsck(args: argparse.Namespace) -> int:
    with open_store_for(args, write=args.repair) as store:
        report = store.fsck(read_data=args.read_data, repair=args.repair)
    if args.json:
        print_json(report.as_dict())
    else:
        for r in report.repaired:
            print(f"repaired: {r}")
        for p in report.problems:
            print(f"problem: {p}")
        verified = f", {human(report.bytes_verified)} verified" if args.read_data else ""
        print(f"{count(report.models, 'model')}, {count(report.files, 'file')}, "
              f"{count(report.chunks, 'chunk')} checked{verified}: "
              + ("ok" if report.ok else count(len(report.problems), "problem")))
    return 0 if report.ok else 1


def gc(args: argparse.Namespace) -> int:
    from ..ops.gc import DEFAULT_GRACE, DEFAULT_WAIT, parse_duration

    grace = DEFAULT_GRACE if args.grace is None else parse_duration(args.grace, "grace period")
    wait = DEFAULT_WAIT if args.wait is None else parse_duration(args.wait, "wait")

    def waiting(holders: str, waited: float) -> None:
        print(f"cas gc: waiting for writers in progress to finish ({waited:.0f}s so far): "
              f"the store lock is held by {holders}", file=sys.stderr, flush=True)

    with open_store_for(args, write=True) as store:
        report = store.gc(grace_period=grace, wait=wait, on_wait=waiting)
    if args.json:
        print_json(report.as_dict())
    else:
        print(f"removed {count(report.objects_removed, 'object')} ({count(report.packs_removed, 'pack')} removed, "
              f"{report.packs_rewritten} rewritten), freed {human(report.bytes_freed)}")
    return 0

