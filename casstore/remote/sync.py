"""push and pull: move model refs, their objects and domain histories between stores.

Model refs are only ever created or deleted on the other side, never moved:
a model ID committed on both sides with different content is a conflict that is
reported and left alone, while everything else completes.  Domain histories
are merged three-way (see merge.py): pull merges the remote history into the
local one (fast-forward when possible, else a merge commit); push sends a
history that contains the remote's (fast-forward on the remote), building that
merge locally when the remote's history is known here, and asks for a pull
first when it is not.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dulwich.config import ConfigFile
from dulwich.errors import GitProtocolError, HangupException
from dulwich.object_store import ObjectStoreGraphWalker
from dulwich.objects import ZERO_SHA, Commit, ObjectID
from dulwich.pack import UnpackedObject
from dulwich.refs import Ref

from ..errors import CasError, CorruptObjectError, RemoteError
from ..model.history import DomainIndex, model_refs, read_index, record_delete
from ..model.reading import read_named_manifest
from ..model.signatures import Verifier, check_received
from ..model.states import STATES_REF, states_at, write_states
from ..model.writer import domain_writer, refs_as_stamped, states_writer
from ..objects.odb import ObjectDB
from ..objects.refs import DOMAINS, MODELS, domain_ref, model_ref
from ..objects.repository import init_repository, is_repository
from ..objects.trailers import format_trailers
from ..util.identity import author
from ..util.locking import deferred_interrupts, yielding_lock
from ..util.names import check_domain, check_model_id
from ..util.progress import ProgressFn
from .bucket import BucketClient
from .config import cache_dir
from .hook import explain_rejection, hook_messages, install_hook
from .incoming import PackIndexer, Quarantine
from .localpath import LocalPathClient, Presence, chunk_claims, missing_objects, scratch_cidx_dir, transfer
from .merge import ancestry, deleted_commits, index_is, is_ancestor, merge_base, merge_indexes
from .transport import describe_transport_error, local_path, open_transport
from .walk import EntrySource, reachable_set, walk

if TYPE_CHECKING:
    from ..objects.repository import Repository


@dataclass
class RemoteRefs:
    models: dict[str, dict[str, ObjectID]] = field(default_factory=dict)  # domain -> id -> commit
    histories: dict[str, ObjectID] = field(default_factory=dict)
    states: ObjectID | None = None

    def domains(self) -> set[str]:
        return set(self.models) | set(self.histories)


def parse_refs(refs: Mapping[Ref, ObjectID], url: str) -> RemoteRefs:
    """casstore's refs among a remote's, with every name validated.

    Raises:
        CorruptObjectError: a ``refs/cas/`` ref with a bad name or value.
    """
    out = RemoteRefs()
    for name, sha in refs.items():
        if not name.startswith(b"refs/cas/"):
            continue
        if len(sha) != 40 or not all(c in b"0123456789abcdef" for c in sha):
            raise CorruptObjectError(name.decode("utf-8", "replace"), f"remote {url} sent a bad object id")
        try:
            text = name.decode("ascii")
            if name == STATES_REF:
                out.states = ObjectID(sha)
            elif name.startswith(MODELS):
                domain, _, mid = text[len(MODELS):].partition("/")
                out.models.setdefault(check_domain(domain), {})[check_model_id(mid)] = ObjectID(sha)
            elif name.startswith(DOMAINS):
                out.histories[check_domain(text[len(DOMAINS):])] = ObjectID(sha)
            else:
                raise ValueError("not a casstore ref")
        except (UnicodeDecodeError, ValueError) as e:
            raise CorruptObjectError(repr(name)[2:-1], f"remote {url} advertises a bad ref name: {e}") from None
    return out


@dataclass
class ModelChange:
    """One model a push or pull added, deleted or replaced, on the side it changed.

    ``old`` is the commit the model ref held there before (deleted, replaced),
    ``new`` the one it holds now (added, replaced); ``states`` the states that held
    the removed commit there, which it left with it.
    """

    model: str  # "domain/id"
    change: str  # "added", "deleted" or "replaced"
    old: str | None = None
    new: str | None = None
    states: list[str] = field(default_factory=list)
    #: why: "theirs" for a model of ours that ``pull --theirs`` replaced
    reason: str = ""

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass
class SyncResult:
    url: str
    models_added: list[str] = field(default_factory=list)  # "domain/id"
    models_deleted: list[str] = field(default_factory=list)
    #: the ID's model commit changed: one side's history deleted exactly the old one
    models_replaced: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    diverged: list[str] = field(default_factory=list)  # domains that need a pull first (push)
    rejected: dict[str, str] = field(default_factory=dict)  # ref -> reason given by the remote
    objects: int = 0
    bytes: int = 0
    #: every model added, deleted or replaced, with its commits and lost states (``models_*`` name them)
    changes: list[ModelChange] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.conflicts or self.diverged or self.rejected)

    @property
    def states_lost(self) -> list[ModelChange]:
        """The deletions and replacements that took a model out of a state (on the side they changed)."""
        return [c for c in self.changes if c.states]

    def record(self, change: ModelChange) -> None:
        """Add ``change`` to the report (and its name to ``models_<change>``)."""
        self.changes.append(change)
        {"added": self.models_added, "deleted": self.models_deleted,
         "replaced": self.models_replaced}[change.change].append(change.model)

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__, ok=self.ok, changes=[c.as_dict() for c in self.changes])


def _states_of(index: DomainIndex, model_id: str, sha: ObjectID | None) -> list[str]:
    """The states in which ``index`` holds ``model_id`` at ``sha``."""
    return sorted(s for s, members in index.states.items() if sha is not None and members.get(model_id) == sha)


def _hex(sha: ObjectID | None) -> str | None:
    return None if sha is None else sha.decode()


def _local_index(repo: Repository, domain: str) -> tuple[ObjectID | None, DomainIndex]:
    head = repo.refs.get(domain_ref(domain))
    idx = read_index(repo.odb, head)
    # the model refs are the truth; the history only records them
    idx.models = model_refs(repo.refs, domain)
    return head, idx


def _index_at(repo: Repository, head: ObjectID | None, models: dict[str, ObjectID] | None = None) -> DomainIndex:
    idx = read_index(repo.odb, head)
    if models is not None:
        idx.models = dict(models)
    return idx


def _history_commit(repo: Repository, index: DomainIndex, parents: list[ObjectID], message: str) -> ObjectID:

    # written as the changes to the first parent's index: only the changed paths of the models tree
    tree = index.to_tree(repo.odb, parents[0] if parents else None)
    return repo.odb.write_commit(tree, parents, author(repo.path), message.encode())


def _merge_message(url: str, conflicts: list[str]) -> str:
    trailers = {"Event": "merge", "Remote": url}
    if conflicts:
        trailers["Conflicts"] = " ".join(conflicts)
    return f"merge {url}\n\n" + format_trailers(trailers)


def _choose_head(repo: Repository, ours: ObjectID | None, theirs: ObjectID | None, result: DomainIndex,  # noqa: PLR0913 - what choosing a domain head needs
                 url: str, conflicts: list[str]) -> ObjectID | None:
    """The history head that records ``result`` and contains both histories."""
    odb = repo.odb
    if theirs is None or theirs == ours:
        if ours is not None and index_is(odb, ours, result):
            return ours
        return _history_commit(repo, result, [ours] if ours else [], _merge_message(url, conflicts))
    if ours is None:
        if index_is(odb, theirs, result):
            return theirs
        return _history_commit(repo, result, [theirs], _merge_message(url, conflicts))
    theirs_in_ours = is_ancestor(odb, theirs, ours)  # walks the commits since theirs, not the history
    if theirs_in_ours and index_is(odb, ours, result):
        return ours
    if is_ancestor(odb, ours, theirs) and index_is(odb, theirs, result):
        return theirs
    parents = [ours] if theirs_in_ours else [ours, theirs]
    return _history_commit(repo, result, parents, _merge_message(url, conflicts))


def _merge_states(repo: Repository, ours: ObjectID | None, theirs: ObjectID | None) -> tuple[set[str], ObjectID | None]:
    """Three-way merge of state names; returns the names and the head to keep if unchanged."""
    odb = repo.odb
    if theirs is None or theirs == ours:
        return states_at(odb, ours), ours
    if ours is None:
        return states_at(odb, theirs), theirs
    if theirs in ancestry(odb, ours):
        return states_at(odb, ours), ours
    if ours in ancestry(odb, theirs):
        return states_at(odb, theirs), theirs
    base = merge_base(odb, ours, theirs)
    b, lo, r = states_at(odb, base), states_at(odb, ours), states_at(odb, theirs)
    merged = (lo & r) | (lo - b) | (r - b)
    return merged, None


def _states_commit(repo: Repository, names: set[str], parents: list[ObjectID]) -> ObjectID:

    return write_states(repo.odb, names, parents, author(repo.path), "merge states")


def _store_config(repo: Repository) -> ConfigFile:
    return ConfigFile.from_path(repo.config_path)


def _open(repo: Repository, url: str, progress: ProgressFn | None) -> tuple[Any, str]:
    return open_transport(url, _store_config(repo), cache_dir(repo, url), progress)


class LocalGraph(ObjectStoreGraphWalker):
    """dulwich's walker over local history, plus what a remote without negotiation needs."""

    def __init__(self, heads: list[ObjectID], parents: Callable[[ObjectID], list[ObjectID]],
                 contains: Callable[[ObjectID], bool]) -> None:
        super().__init__(heads, parents)
        self.contains = contains


def _transport_errors(url: str, e: Exception) -> RemoteError:
    return RemoteError(url, describe_transport_error(e))


def list_refs(repo: Repository, url: str) -> RemoteRefs:
    """The casstore refs of the remote at ``url``, from its ref listing alone.

    A path remote that does not exist yet is empty (a push creates it).

    No object travels: the fetch wants nothing, so a git server sends only its
    ref advertisement and an S3 remote reads only its refs.  Names are validated
    as for a pull.

    Raises:
        RemoteError: the remote cannot be reached; CorruptObjectError: a bad ref.
    """
    local = local_path(url)
    if local is not None and not os.path.exists(local):
        return RemoteRefs()  # a path remote a first push creates: empty until then
    client, path = _open(repo, url, None)
    seen: dict[str, RemoteRefs] = {}

    def determine_wants(refs: Mapping[Ref, ObjectID], depth: int | None = None) -> list[ObjectID]:
        seen["refs"] = parse_refs(refs, url)
        return []

    try:
        client.fetch_pack(path, determine_wants, ObjectStoreGraphWalker([], lambda sha: []),  # type: ignore[arg-type]
                          lambda data: None)
    except (GitProtocolError, HangupException, OSError) as e:
        if isinstance(e, CasError):
            raise
        raise _transport_errors(url, e) from e
    return seen.get("refs", RemoteRefs())


# -- pull ---------------------------------------------------------------------


def _haves(repo: Repository) -> list[ObjectID]:
    """What to announce as "have" when fetching.

    Every model commit is a root, and git's pack-objects only subtracts the trees
    of uninteresting commits that are parents of wanted ones: ``v2 ^v1`` would
    send all of v2's chunks even though we have most of them through v1.  Naming
    the models' root trees as haves makes the server mark them, and every chunk
    below them, uninteresting -- so only chunks we lack travel.
    """
    odb = repo.odb
    out: list[ObjectID] = []
    for name, sha in sorted(repo.refs.container.as_dict(Ref(b"refs/cas")).items()):
        out.append(sha)
        if name.startswith(b"models/"):
            c = odb.read(sha)
            if isinstance(c, Commit):
                out.append(c.tree)
    return out


def _fetch_pack(client: Any, path: str, determine_wants: Callable[..., list[ObjectID]], walker: LocalGraph,  # noqa: PLR0913 - dulwich's fetch_pack arguments, passed on
                pack_path: str, url: str, progress: ProgressFn | None, indexer: PackIndexer | None = None) -> int:
    """Fetch a pack into ``pack_path`` through the client's protocol; returns the bytes received.

    ``indexer`` is fed every piece as it arrives: indexing the pack overlaps the
    server's work and the network instead of following them.
    """
    received = 0
    with open(pack_path, "wb") as f:
        def write(data: bytes) -> int:
            nonlocal received
            received += len(data)
            if progress:
                progress("receiving", received, 0)
            if indexer is not None:
                indexer.feed(data)
            return f.write(data)

        try:
            client.fetch_pack(path, determine_wants, walker, write)
        except (GitProtocolError, HangupException, OSError) as e:
            if isinstance(e, CasError):
                raise
            raise _transport_errors(url, e) from e
    return received


def _git_dir(path: str) -> str:
    dot_git = os.path.join(path, ".git")
    return dot_git if os.path.isdir(dot_git) else path


def _copy_in(repo: Repository, quarantine: Quarantine, path: str, wants: list[ObjectID],
             progress: ProgressFn | None) -> tuple[int, int]:
    """Copy what ``wants`` reaches and this store lacks from a local store into the quarantine.

    Returns (objects, pack bytes).  Every entry is verified on the way (localpath.py:
    framing, SHA-1, trailer); the quarantine's model checks then decompress each new
    chunk once and check its key before anything is published.
    """
    if not wants:
        return 0, 0
    src = ObjectDB(_git_dir(path))
    have = Presence(repo.odb)
    try:
        objects, _ = missing_objects(src, wants, have)
        # no chunk claims: the copy checks the git objects, and the quarantine's model checks
        # decompress and check each new chunk once (Quarantine.verify_model)
        stats = transfer(src, objects, quarantine.odb.pack_dir, quarantine.odb.cidx_dir, {},
                         hostile=True, progress=progress, label="receiving")
    finally:
        have.close()
        src.close()
    for pc in stats.packs:
        quarantine.adopt_pack(pc.name, pc.locations, pc.chunks)
    quarantine.adopt(stats.writer, stats.pack, stats.chunks)
    return stats.objects, stats.pack_bytes


def pull(repo: Repository, url: str, domains: list[str] | None = None,  # noqa: C901, PLR0912, PLR0913, PLR0915 - pull's transports and steps; one Transport to come (issue 23)
         progress: ProgressFn | None = None, take_theirs: bool = False,
         require_signed: Verifier | None = None) -> SyncResult:
    """Fetch models and histories from ``url`` and merge them into this store.

    Everything received is verified before any ref moves.  A domain with a
    conflict (the same ID, different model commits, neither deleted by the other
    side) is left exactly as it was and reported in ``conflicts``; other domains
    complete.  ``take_theirs`` resolves conflicts by deleting our model (recorded
    in the history) and taking the remote's.  ``require_signed``: every new model commit
    and history event must be signed by a key it allows, else UnsignedModelError and
    nothing changes.
    """
    selected = {check_domain(d) for d in domains} if domains else None
    result = SyncResult(url)
    client, path = _open(repo, url, progress)
    if isinstance(client, BucketClient):
        client.domains = selected  # a bucket reads the ref tables of these domains only
        client.skip_merged = True  # and not those of the domains it merged as they are
    odb = repo.odb
    with repo.lock():
        quarantine = Quarantine(repo)
        try:
            seen: dict[str, RemoteRefs] = {}
            # a bucket's domains whose ref table is the one merged last time: nothing new to fetch or merge
            unchanged: set[str] = set()

            def determine_wants(refs: Mapping[Ref, ObjectID], depth: int | None = None) -> list[ObjectID]:
                remote = parse_refs(refs, url)
                seen["refs"] = remote
                if isinstance(client, BucketClient):
                    unchanged.clear()  # a fetch that started again (after a gc) read another root
                    unchanged.update(client.unchanged_since_merged())
                wanted: list[ObjectID] = []
                for domain in remote.domains():
                    if (selected is not None and domain not in selected) or domain in unchanged:
                        continue
                    wanted.extend(remote.models.get(domain, {}).values())
                    if domain in remote.histories:
                        wanted.append(remote.histories[domain])
                if remote.states is not None:
                    wanted.append(remote.states)
                return sorted({w for w in wanted if not odb.contains(w)})

            # a bucket only asks the walker whether an object is here: no haves to list (O(models))
            heads = [] if isinstance(client, BucketClient) else _haves(repo)

            def parents(sha: ObjectID) -> list[ObjectID]:
                c = odb.read(sha)
                return list(c.parents) if isinstance(c, Commit) else []

            walker = LocalGraph(heads, parents, odb.contains)
            pack_path = os.path.join(quarantine.dir, "incoming.pack")
            received = 0
            indexer: PackIndexer | None = None
            if isinstance(client, LocalPathClient):
                # a directory on this machine: copy the entries we lack (verified) instead of
                # having git's pack-objects build, and us rewrite, a pack (localpath.py)
                try:
                    remote_refs = client.remote_refs(path)
                except (GitProtocolError, HangupException, OSError) as e:
                    raise _transport_errors(url, e) from e
                result.objects, received = _copy_in(repo, quarantine, path, determine_wants(remote_refs),
                                                    progress)
            else:
                indexer = PackIndexer()
                received = _fetch_pack(client, path, determine_wants, walker, pack_path, url, progress, indexer)
            result.bytes = received
            remote = seen.get("refs", RemoteRefs())
            if received and not isinstance(client, LocalPathClient):
                result.objects = quarantine.import_pack(pack_path, indexer)
            if os.path.exists(pack_path):
                os.unlink(pack_path)
            # verify everything new before any ref moves
            for domain in remote.domains():
                if (selected is not None and domain not in selected) or domain in unchanged:
                    continue
                for mid, sha in remote.models.get(domain, {}).items():
                    if not odb.contains(sha):
                        quarantine.verify_model(domain, mid, sha)
                    else:  # present already, maybe under another name: the ref must name it
                        quarantine.verify_model_name(domain, mid, sha)
                if domain in remote.histories and not odb.contains(remote.histories[domain]):
                    quarantine.verify_history(remote.histories[domain])
            if remote.states is not None and not odb.contains(remote.states):
                quarantine.verify_states(remote.states)
            if require_signed is not None:
                for domain in sorted(remote.domains()):
                    if selected is None or domain in selected:
                        check_received(require_signed, quarantine.odb, domain, remote.models.get(domain, {}),
                                       remote.histories.get(domain), odb.contains)
            quarantine.publish()
        finally:
            quarantine.close()

        for domain in sorted(remote.domains()):
            if (selected is not None and domain not in selected) or domain in unchanged:
                continue
            # under the domain lock, after recording what killed local writers left out
            with domain_writer(repo, domain):
                _pull_domain(repo, domain, remote, url, result, take_theirs)
        if isinstance(client, BucketClient):
            conflicted = {c.split("/", 1)[0] for c in result.conflicts}
            client.note_merged({d for d in remote.domains() if d not in conflicted
                                and (selected is None or d in selected)})
        with states_writer(repo):
            while True:
                ours = repo.refs.get(STATES_REF)
                names, keep = _merge_states(repo, ours, remote.states)
                if keep == ours:
                    break
                new = keep if keep is not None else _states_commit(
                    repo, names, [p for p in (ours, remote.states) if p is not None])
                if repo.refs.set_if_equals(STATES_REF, ours, new):
                    break
    return result


def _pull_domain(repo: Repository, domain: str, remote: RemoteRefs, url: str, result: SyncResult,  # noqa: C901, PLR0912, PLR0913 - the per-domain merge; one plan shared with push to come (issue 23)
                 take_theirs: bool) -> None:
    """Merge one domain's remote history and model refs into this store.

    A conflict leaves the domain exactly as it was here (refs and history) and is
    reported; with ``take_theirs`` each conflicting local model is first deleted
    (a delete event naming our commit), so the remote's model then comes in.
    """
    odb = repo.odb
    theirs = remote.histories.get(domain)
    remote_models = remote.models.get(domain, {})
    if theirs is not None and repo.refs.get(domain_ref(domain)) == theirs:
        if _local_index(repo, domain)[1].models == remote_models:
            return  # the same history and models on both sides: nothing to merge
    ours_taken: dict[str, tuple[ObjectID, list[str]]] = {}  # ``take_theirs``: ID -> our commit, its states
    while True:
        ours, local = _local_index(repo, domain)
        base = merge_base(odb, ours, theirs) if ours and theirs else None
        # the deletions since the merge base; the merged index written as changes to ours (under the lock)
        merged = merge_indexes(_index_at(repo, base), local, _index_at(repo, theirs, remote_models),
                               deleted_commits(odb, ours, base), deleted_commits(odb, theirs, base), ours)
        if merged.conflicts:
            if take_theirs:
                for mid in merged.conflicts:
                    ours_taken.setdefault(mid, (local.models[mid], _states_of(local, mid, local.models[mid])))
                    _delete_local(repo, domain, mid, local.models[mid])
                continue
            result.conflicts.extend(f"{domain}/{m}" for m in merged.conflicts)
            return
        for mid, sha in merged.index.models.items():
            if local.models.get(mid) != sha:
                read_named_manifest(repo, domain, mid, sha)  # every ref a pull moves names its model
        for mid, sha in merged.index.models.items():
            had = local.models.get(mid)
            if had is None:
                if repo.refs.add_if_new(model_ref(domain, mid), sha):
                    if mid in ours_taken:  # ours went first, theirs came: one replacement, both named
                        old, states = ours_taken.pop(mid)
                        result.record(ModelChange(f"{domain}/{mid}", "replaced", _hex(old), _hex(sha), states,
                                                  "theirs"))
                    else:
                        result.record(ModelChange(f"{domain}/{mid}", "added", None, _hex(sha)))
            elif had != sha:
                # our history deleted exactly the commit we hold here... or theirs deleted ours
                if repo.refs.set_if_equals(model_ref(domain, mid), had, sha):
                    result.record(ModelChange(f"{domain}/{mid}", "replaced", _hex(had), _hex(sha),
                                              _states_of(local, mid, had)))
        for mid, sha in local.models.items():
            if mid not in merged.index.models:
                # only the commit the remote's history deleted: remove_if_equals checks it
                if repo.refs.remove_if_equals(model_ref(domain, mid), sha):
                    result.record(ModelChange(f"{domain}/{mid}", "deleted", _hex(sha), None,
                                              _states_of(local, mid, sha)))
        _, now = _local_index(repo, domain)
        if now.models != merged.index.models:
            continue  # a local commit or delete raced with us: merge again
        head = _choose_head(repo, ours, theirs, merged.index, url, merged.conflicts)
        if head == ours or repo.refs.set_if_equals(domain_ref(domain), ours, head):  # type: ignore[arg-type]
            for mid, (old, states) in ours_taken.items():  # taken out, and theirs did not come
                result.record(ModelChange(f"{domain}/{mid}", "deleted", _hex(old), None, states, "theirs"))
            return


def _delete_local(repo: Repository, domain: str, model_id: str, sha: ObjectID) -> None:
    """Delete our model ``sha`` under ``model_id``, logged as a delete event (``pull --theirs``).

    The caller holds the domain's lock; a ref that changed meanwhile is left
    alone (the caller merges again).
    """
    with deferred_interrupts():
        record_delete(repo.odb, repo.refs, domain, author(repo.path), model_id, sha)


# -- push ---------------------------------------------------------------------


def _copy_out(repo: Repository, path: str, wants: list[ObjectID], result: SyncResult,
              progress: ProgressFn | None) -> None:
    """Copy what ``wants`` reaches and the local remote at ``path`` lacks there (localpath.transfer)."""
    git_dir = _git_dir(path)
    dest = ObjectDB(git_dir)
    have = Presence(dest)
    try:
        objects, models = missing_objects(repo.odb, wants, have)
    finally:
        have.close()
        dest.close()
    claims = chunk_claims(repo.odb, models)
    cidx_dir = scratch_cidx_dir(git_dir)
    try:
        # our own chunks were verified when they entered this store: check each entry's
        # oid (cheap, catches damage on disk), not every chunk's BLAKE3 again
        stats = transfer(repo.odb, objects, os.path.join(git_dir, "objects", "pack"), cidx_dir, claims,
                         hostile=False, progress=progress, label="sending")
    finally:
        if not cidx_dir.startswith(git_dir):
            shutil.rmtree(cidx_dir, ignore_errors=True)
    result.objects, result.bytes = stats.objects, stats.pack_bytes


@contextmanager
def _path_remote_lock(path: str | None) -> Iterator[None]:
    """A path remote's store lock, held shared from the copy of the objects until its refs moved.

    The copied packs are unreferenced until ``git-receive-pack`` moves the refs, and
    a ``cas gc --grace 0`` there would take them for garbage: it waits for this push
    (as for a local writer), and this push for it.
    """
    git_dir = _git_dir(path) if path is not None else None
    if git_dir is None or not is_repository(git_dir):
        yield
        return
    with yielding_lock(os.path.join(git_dir, "cas", "gc.lock")):
        yield


def push(repo: Repository, url: str, domains: list[str] | None = None,  # noqa: C901, PLR0915 - push's transports and steps; one Transport to come (issue 23)
         progress: ProgressFn | None = None) -> SyncResult:
    """Send models and histories that ``url`` lacks; never overwrite a remote model."""
    selected = {check_domain(d) for d in domains} if domains else None
    result = SyncResult(url)
    target = local_path(url)
    if target is not None and (not os.path.exists(target) or (os.path.isdir(target) and not os.listdir(target))):
        init_repository(target, served=True)
        install_hook(target)
    # A writer killed between a model ref and its history event left the ref unrecorded: record
    # it first, as the next local write would, or the remote's hook refuses the model (it is not
    # in the history pushed with it) and fsck keeps flagging the gap.
    with repo.lock():
        for domain in sorted(repo.refs.domains() if selected is None else selected & repo.refs.domains()):
            with domain_writer(repo, domain):
                pass
    client, path = _open(repo, url, progress)
    if isinstance(client, BucketClient):
        # a bucket reads the ref tables of the domains this push may change only
        client.domains = repo.refs.domains() if selected is None else selected & repo.refs.domains()
    odb = repo.odb
    report = progress  # generate_pack_data's own ``progress`` is dulwich's

    def update_refs(refs: dict[Ref, ObjectID]) -> dict[Ref, ObjectID]:
        remote = parse_refs(refs, url)
        changes: dict[Ref, ObjectID] = {}
        # may run twice (the retry without atomic push): start the report afresh
        result.models_added, result.models_deleted, result.conflicts, result.diverged = [], [], [], []
        result.models_replaced, result.changes = [], []
        local_domains = repo.refs.domains()
        for domain in sorted(local_domains if selected is None else selected & local_domains):
            ours, local = _local_index(repo, domain)
            theirs = remote.histories.get(domain)
            if theirs is not None and not odb.contains(theirs):
                result.diverged.append(domain)  # we have never seen their history: pull first
                continue
            remote_models = remote.models.get(domain, {})
            base = merge_base(odb, ours, theirs) if ours and theirs else None
            # the deletions since the merge base; the merged index written as changes to ours when
            # the refs are as its last writer left them (refs_as_stamped: the history lists them)
            merged = merge_indexes(_index_at(repo, base), local, _index_at(repo, theirs, remote_models),
                                   deleted_commits(odb, ours, base), deleted_commits(odb, theirs, base),
                                   ours if refs_as_stamped(repo, domain) and repo.refs.get(domain_ref(domain)) == ours
                                   else None)
            if merged.conflicts:
                # nothing of this domain moves: a history that lists our model while the
                # remote's ref holds theirs would be a lie, and a partial one could not be
                # merged back without losing the conflict
                result.conflicts.extend(f"{domain}/{m}" for m in merged.conflicts)
                continue
            their_index = _index_at(repo, theirs, remote_models)
            for mid, sha in merged.index.models.items():
                had = remote_models.get(mid)
                if had != sha:
                    # never spread a ref that aliases another model's commit (bucket remotes have no hook)
                    read_named_manifest(repo, domain, mid, sha)
                    # a replacement only when our history deleted exactly ``had``
                    changes[model_ref(domain, mid)] = sha
                    result.record(ModelChange(f"{domain}/{mid}", "added" if had is None else "replaced", _hex(had),
                                              _hex(sha), _states_of(their_index, mid, had)))
            for mid, had in remote_models.items():
                if mid not in merged.index.models:
                    # our history (or theirs) deleted exactly this commit; the remote
                    # checks the old value (git's old-sha, S3's If-Match)
                    changes[model_ref(domain, mid)] = ZERO_SHA
                    result.record(ModelChange(f"{domain}/{mid}", "deleted", _hex(had), None,
                                              _states_of(their_index, mid, had)))
            head = _choose_head(repo, theirs, ours, merged.index, url, merged.conflicts)
            if head is not None and head != theirs:
                changes[domain_ref(domain)] = head
        ours_states = repo.refs.get(STATES_REF)
        if remote.states is not None and not odb.contains(remote.states):
            # their state list is new here: it cannot be merged before a pull (like a history)
            if ours_states is not None:
                result.diverged.append(STATES_REF.decode())
            return {**refs, **changes}
        names, keep = _merge_states(repo, remote.states, ours_states)
        if keep != remote.states:
            new = keep if keep is not None else _states_commit(
                repo, names, [p for p in (remote.states, ours_states) if p is not None])
            changes[STATES_REF] = new
        return {**refs, **changes}

    def generate_pack_data(have: set[ObjectID], want: set[ObjectID], *, ofs_delta: bool = False,
                           progress: object = None) -> tuple[int, Iterator[UnpackedObject]]:
        if isinstance(client, LocalPathClient):
            # objects go by file copy, published in the remote before git moves any ref;
            # receive-pack then gets an empty pack, and its hooks judge the ref updates
            _copy_out(repo, path, [w for w in want if w != ZERO_SHA], result, report)
            return 0, iter([])
        known = [h for h in have if h != ZERO_SHA and odb.contains(h)]
        stop = reachable_set(odb, known)
        objects = list(walk(odb, [w for w in want if w != ZERO_SHA], stop))
        objects.sort(key=lambda o: o[1] == 3)  # commits and trees first: a reader can walk them in one range
        result.objects = len(objects)
        return len(objects), source.records(objects)

    with repo.lock(), _path_remote_lock(path if isinstance(client, LocalPathClient) else None):
        source = EntrySource(odb, progress)
        sideband = bytearray()  # what the server's hooks say: the reasons for a refusal
        try:
            try:
                status = client.send_pack(path.encode() if isinstance(path, str) else path,
                                          update_refs, generate_pack_data, progress=sideband.extend,  # type: ignore[arg-type]
                                          atomic=True)
            except GitProtocolError as e:
                if "atomic" not in str(e):
                    raise
                status = client.send_pack(path.encode() if isinstance(path, str) else path,
                                          update_refs, generate_pack_data,  # type: ignore[arg-type]
                                          progress=sideband.extend)
        except (GitProtocolError, HangupException, OSError) as e:
            if isinstance(e, CasError):
                raise
            raise _transport_errors(url, e) from e
        finally:
            source.close()
        if not isinstance(client, LocalPathClient):
            result.bytes = source.bytes_sent
    said = hook_messages(bytes(sideband))
    for ref, reason in (status.ref_status or {}).items():
        if reason is not None:
            name = ref.decode("utf-8", "replace")
            result.rejected[name] = explain_rejection(name, reason, said)
    if result.rejected:
        def moved(m: str) -> bool:
            return model_ref(*m.split("/", 1)).decode() not in result.rejected

        result.models_added = [m for m in result.models_added if moved(m)]
        result.models_deleted = [m for m in result.models_deleted if moved(m)]
        result.models_replaced = [m for m in result.models_replaced if moved(m)]
        result.changes = [c for c in result.changes if moved(c.model)]
    return result
