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
from typing import TYPE_CHECKING, Any

from ..errors import DomainNotFoundException, OtherFilesWarning, RemoteError
from ..model.history import iter_log
from ..objects.refs import domain_ref
from ..store import Store, init_store, is_store, missing_store_error, open_store, resolve_store
from ..util.names import check_domain, check_model_id, shown
from ..util.progress import TerminalProgress
from .output import count, human, pager, paint, print_json, to_json, use_color

if TYPE_CHECKING:
    from ..remote.sync import ModelChange

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
    if args.require_signed is not None and not args.bare:
        raise ValueError("--require-signed FILE is for a store others push to: use it with --bare")
    if args.bare and _plain_git_repo(path):
        # a remote made with `git init --bare`: give it what `cas init --bare` would have
        from ..remote.hook import install_hook

        install_hook(path, args.require_signed)
        subprocess.run(["git", "--git-dir", path, "config", "receive.fsckObjects", "true"], check=True)
        print(f"installed the model-protecting hook in the git repository at {path}")
        return 0
    init_store(path, bare_remote=args.bare, require_signed=args.require_signed)
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

    if args.action == "upgrade":
        return _remote_upgrade(args)
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


def _bucket_client(args: argparse.Namespace, name: str) -> Any:
    from ..remote.bucket import BucketClient
    from ..remote.config import cache_dir, resolve_remote
    from ..remote.transport import open_transport

    with open_store_for(args) as store:
        url = resolve_remote(store.repo, name)
        client, _ = open_transport(url, cache_dir=cache_dir(store.repo, url))
    if not isinstance(client, BucketClient):
        raise RemoteError(url, "a git server's store is collected where it is: run `cas gc --store PATH` on the "
                               "server (e.g. from cron; docs/remotes.md); `cas gc REMOTE` takes a bucket (s3://, "
                               "gs://, az://) or a store on this machine")
    return client


def _served_path(args: argparse.Namespace, name: str) -> str | None:
    """The directory of REMOTE if it is a store on this machine (a path remote), else None."""
    from ..remote.config import resolve_remote
    from ..remote.transport import local_path

    direct = local_path(name)
    if direct is not None and is_store(direct) and not is_store(store_location(args)[0]):
        return direct  # a store's path, and no store here to have remotes named
    with open_store_for(args) as store:
        path = local_path(resolve_remote(store.repo, name))
    return path if path is not None and is_store(path) else None


def _gc_remote(args: argparse.Namespace, grace: float) -> int:
    served = _served_path(args, args.remote)
    if served is not None:  # a path remote: the same gc as in that store itself
        if args.dry_run:
            raise SystemExit("cas gc: --dry-run applies to a bucket remote (cas gc REMOTE --dry-run)")
        args.store, args.remote = served, None
        return gc(args)
    client = _bucket_client(args, args.remote)
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


def _remote_upgrade(args: argparse.Namespace) -> int:
    from ..ops.gc import parse_duration

    client = _bucket_client(args, args.url)
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


def _sync(args: argparse.Namespace, verb: str) -> int:
    with open_store_for(args, write=True) as store, warnings.catch_warnings(record=True) as lost:
        # a model that left a state is warned about after the report that names it
        warnings.simplefilter("always")
        if verb == "push":
            result = store.push(args.remote, args.domains or None)
            if _hook_missing(result.url):
                warnings.warn(f"{result.url} has no casstore hook: plain git clients can overwrite or delete "
                              f"models there; install it with `cas init --bare {result.url}`", stacklevel=1)
        else:
            result = store.pull(args.remote, args.domains or None, theirs=args.theirs,
                                require_signed=args.require_signed)
    if args.json:
        print_json(result.as_dict())
    else:
        moved = "sent" if verb == "push" else "received"
        print(f"{verb} {result.url}: {count(len(result.models_added), 'model')} added, "
              f"{len(result.models_deleted)} deleted, {len(result.models_replaced)} replaced"
              f"; {count(result.objects, 'object')}, {human(result.bytes)} {moved}")
        for change in result.changes:
            print("  " + describe_change(change, verb))
        for m in result.conflicts:
            domain = m.split("/", 1)[0]
            print(f"conflict: {m} is a different model on each side; domain {domain} left as it was on both")
        if result.conflicts:
            # the commands to type, with this pull's names (not DOMAIN ID NEW_ID)
            copies = [f"`cas cp {d} {i} {i}-mine`" for d, _, i in (m.partition("/") for m in result.conflicts)]
            remote = f" {args.remote}" if args.remote else ""
            print(f"  resolve: `cas pull --theirs{remote}` (take theirs), or first "
                  + ", ".join(copies[:3]) + (", ..." if len(copies) > 3 else "")
                  + " to keep ours under a new ID; see docs/remotes.md")
        for d in result.diverged:
            print(f"diverged: {d}: the remote's history is new here; run `cas pull` first, then push")
        for ref, reason in result.rejected.items():
            print(f"rejected by the remote: {ref}: {reason}")
    sys.stdout.flush()
    for w in lost:  # every warning of the push or pull, in order, after its report
        warnings.warn(w.message, w.category, stacklevel=1)
    return 0 if result.ok else 1


def describe_change(change: ModelChange, verb: str) -> str:
    """One line of a push's or pull's list: what happened to one model, with its commits."""
    where = "on the remote" if verb == "push" else "here"
    old, new = (c[:10] if c else "" for c in (change.old, change.new))
    if change.change == "added":
        text = f"added     {change.model} ({new})"
    elif change.change == "deleted":
        text = f"deleted   {change.model} ({old})" + (" by --theirs" if change.reason == "theirs" else "")
    elif change.reason == "theirs":
        text = f"replaced  {change.model}: ours {old} by theirs {new} (--theirs)"
    else:
        text = f"replaced  {change.model}: {old} by {new}"
    if change.states:
        text += f"; it was in state {', '.join(change.states)} {where}"
    return text


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
        signing = store.signing_in_use()
        found: dict[str, dict[str, Any]] = {}

        def deletion(history_commit: str) -> dict[str, Any]:
            """Whether a delete event can still be restored, and until when (read once, when first needed)."""
            if not found:
                found.update({d["history_commit"]: d for d in store.deleted_models(args.domain)})
            return found.get(history_commit, {})

        if args.json:
            out: list[dict[str, object]] = []
            for e in events:
                d = {**e.as_dict(), "signature": store.signature(args.domain, e.history_commit).as_dict()}
                if e.event == "delete":
                    gone = deletion(e.history_commit)
                    d.update(restorable=gone.get("restorable", False), kept_until=gone.get("kept_until"),
                             id_taken=gone.get("id_taken", False))
                out.append(d)
            print_json(out)
            return 0
        with pager(not args.no_pager) as out_:
            color = use_color(sys.stdout)
            for i, e in enumerate(events):
                title = f"{e.event} {e.model_id}" + (f" {e.state}" if e.state else "")
                restore = _restore_note(args.domain, e.model_id, e.model_commit,
                                        deletion(e.history_commit)) if e.event == "delete" else ""
                if args.oneline:
                    extra = f" [{e.frameworks}]" if e.frameworks else ""
                    if " until " in restore:
                        extra += f" [restorable until {restore.rsplit(' until ', 1)[1].split(' +0000')[0]}]"
                    out_.write(f"{paint(e.model_commit[:10], 'yellow', color)} "
                               f"{time.strftime('%Y-%m-%d %H:%M +0000', time.gmtime(e.time))} {title}{extra}\n")
                    continue
                if i:
                    out_.write("\n")
                out_.write(paint(title, "yellow", color) + "\n")
                out_.write(f"Model:   {e.model_commit}\n")
                out_.write(f"Author:  {shown(e.author)}\n")
                out_.write(f"Date:    {_when(e.time)}\n")
                verdict = store.signature(args.domain, e.history_commit)
                if signing or verdict.status != "unsigned":
                    out_.write(f"Signed:  {verdict.describe()}\n")
                if restore:
                    out_.write(f"Restore: {restore}\n")
                if e.frameworks or e.summary:
                    out_.write("\n")
                if e.frameworks:
                    out_.write(f"    {e.frameworks}\n")
                if e.summary:
                    out_.write(f"    {e.summary}\n")
    return 0


def _print_list(items: Iterable[str], as_json: bool) -> None:
    if as_json:
        print_json(list(items))
    else:
        for item in items:
            print(item)


def _restore_note(domain: str, model_id: str, commit: str, gone: dict[str, Any]) -> str:
    """What ``cas log`` says under a delete event: how to restore it and until when, or why not."""
    if not gone.get("kept_until"):
        return "no: gc has freed its objects"
    until = gone["kept_until"].replace("T", " ").replace("Z", " +0000")
    if gone.get("id_taken"):  # another model holds the ID now: only under another ID
        return (f"`cas restore {domain} {model_id} --commit {commit[:10]} --as NEW_ID` ({model_id} holds another "
                f"model now), until {until}")
    return f"`cas restore {domain} {model_id} --commit {commit[:10]}`, until {until} (gc's grace period)"


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
        verdict = store.signature(info["domain"], info["commit"])
        info["signature"] = verdict.as_dict()
        signing = store.signing_in_use()
        card = None if args.json else store.model_card(args.domain, args.model_id, max_bytes=4096)
    if args.json:
        print_json(info)
        return 0
    color = use_color(sys.stdout)
    print(paint(f"model {info['domain']}/{info['model_id']}", "yellow", color))
    print(f"Commit:  {info['commit']}")
    print(f"Author:  {shown(info['author'])}")
    print(f"Created: {info['created']}")
    if signing or verdict.status != "unsigned":
        print(f"Signed:  {verdict.describe()}")
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
        except RecursionError:  # Python's parser gives up near 1000 levels, with its own words
            depth = len(value) - len(value.lstrip("[{ "))
            raise ValueError(f"--meta {key}: the value is nested too deeply ({depth}+ levels of JSON "
                             f"arrays/objects; at most {MAX_META_DEPTH} are supported)") from None
        if _depth(out[key]) > MAX_META_DEPTH:
            raise ValueError(f"--meta {key}: the value is nested too deeply (more than {MAX_META_DEPTH} "
                             f"levels of JSON arrays/objects)")
    return out


#: how deeply a --meta value may nest: far beyond any real metadata, and well within
#: what msgpack, ``cas show`` and ``--json`` output handle
MAX_META_DEPTH = 100


def _depth(v: Any) -> int:
    """How deeply ``v`` nests (0 for a scalar); iterative, so any depth is measured safely."""
    deepest, stack = 0, [(v, 0)]
    while stack:
        item, d = stack.pop()
        if isinstance(item, (list, dict)):
            if d + 1 > deepest:
                deepest = d + 1
            if deepest > MAX_META_DEPTH:
                return deepest
            stack.extend((x, d + 1) for x in (item.values() if isinstance(item, dict) else item))
    return deepest


def _is_model_id(text: str) -> bool:
    try:
        check_model_id(text)
        return True
    except ValueError:
        return False


def commit(args: argparse.Namespace) -> int:
    meta = _meta(args.meta)
    for i, f in enumerate(args.files):
        if not os.path.lexists(f):
            hint = ""
            if i == len(args.files) - 1 and i > 0 and args.model_id is None and _is_model_id(f):
                # `cas commit fraud model.onnx v1`: the ID given where FILEs go
                hint = f"; to name the model {f}, use --id {f} (`cas commit {args.domain} " \
                       f"{' '.join(args.files[:-1])} --id {f}`)"
            raise FileNotFoundError(f"{f}: no such file{hint}")
    model = args.files[0] if len(args.files) == 1 else list(args.files)
    with open_store_for(args, write=True) as store:
        if args.verify_signature:
            if len(args.files) != 1:
                raise ValueError("--verify-signature checks one model path (a file or a directory), "
                                 f"not {len(args.files)}")
            who = store.check_model_signature(args.files[0], args.verify_signature)
            print(f"model signature {args.verify_signature} verified: signed by {who}")
        info = store.commit_models(args.domain, model=model, model_id=args.model_id,
                                   extra_files=args.extra or None, extra_metadata=meta or None,
                                   sign=args.sign)
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
    if args.state is not None:  # `cas download DOMAIN --state STATE DIR`: argparse took DIR for the ID
        if args.directory is not None:
            raise ValueError(f"give an ID ({args.model_id}) or --state {args.state}, not both")
        args.directory, args.model_id = args.model_id, None
    elif args.directory is None:
        # `cas download fraud ./o3`: the directory given where the ID goes
        given = args.model_id
        if "/" in given or given.startswith(".") or os.path.isdir(given):
            raise ValueError(f"cas download DOMAIN ID DIR: no DIR given, and {given!r} looks like a directory, "
                             f"not a model ID: `cas download {args.domain} ID {given}` "
                             f"(`cas ls {args.domain}` lists the IDs)")
        raise ValueError(f"cas download DOMAIN ID DIR: no DIR given: where should the files of "
                         f"{args.domain}/{given} go? (`cas download {args.domain} {given} DIR`, or "
                         f"`cas download {args.domain} --state STATE DIR`)")
    if os.path.exists(args.directory) and not os.path.isdir(args.directory):
        raise NotADirectoryError(f"{args.directory} is a file, not a directory: DIR is where the model's "
                                 f"files are written (to write one file, use --file PATH)")
    with open_store_for(args) as store, warnings.catch_warnings():
        # the note below says it, from the same result
        warnings.simplefilter("ignore", OtherFilesWarning)
        info = store.get_model_info(args.domain, args.model_id, state=args.state)
        args.model_id = info["model_id"]  # the very model `--state` found, downloaded below
        done = store.download(args.directory, args.domain, args.model_id, files=args.files, force=args.force)
        sig = store.sign_directory(done) if args.signature else None
    name = f"{info['domain']}/{info['model_id']}"
    sizes = {f["path"]: f["size"] for f in info["files"]}
    paths = [*done.written, *done.unchanged]
    print(f"downloaded {name}: {count(len(paths), 'file')}, {human(sum(sizes[p] for p in paths))} into {done}")
    for p in done.replaced:
        print(f"replaced {shown(p)}")
    for p in done.unchanged:
        print(f"unchanged {shown(p)} (already held the same bytes)")
    if done.others:
        listed = ", ".join(map(shown, done.others[:10])) + (", ..." if len(done.others) > 10 else "")
        print(f"note: {done} also holds {count(len(done.others), 'other file')} that {name} does not have "
              f"(left untouched): {listed}")
    if sig is not None:
        print(f"signed {done} for OpenSSF model signing: {sig} "
              f"(check: model_signing verify key {done} --signature {sig} --public_key KEY.pem)")
    return 0


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
    # gc keeps a deleted model for its grace period after the deletion (ops/gc.py)
    print(f"deleted {args.domain}/{args.model_id} (`cas restore {args.domain} {args.model_id}` brings it back "
          f"for two weeks; `cas gc --grace 0` frees its space now)")
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


def convert_layout(args: argparse.Namespace) -> int:
    with open_store_for(args, write=True) as store:
        done = store.convert_layout(args.domain)
    for d in done:
        print(f"converted {d}")
    if not done:
        print("nothing to convert: every history is in the current layout")
    return 0


def gc(args: argparse.Namespace) -> int:
    from ..ops.gc import DEFAULT_GRACE, DEFAULT_WAIT, parse_duration

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

