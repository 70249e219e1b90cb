"""push and pull: move model refs, their objects and domain histories between stores.

Model refs are only ever created or deleted on the other side, never moved:
a model ID committed on both sides with different content is a conflict that is
reported and left alone, while everything else completes.  Domain histories
are merged three-way (see merge.py): pull merges the remote history into the
local one (fast-forward when possible, else a merge commit); push sends a
history that contains the remote's (fast-forward on the remote), building that
merge locally when the remote's history is known here, and asks for a pull
first when it is not.

Both make the same per-domain plan (``plan_domain``: the three-way merge of our
side with the remote's, and ``DomainPlan.moves``: the model refs that move); pull
applies it to this store, push to the remote.  The objects and refs travel
through a ``Transport`` (``remote/transports/``), whatever the kind of remote:
nothing here asks which kind it is.  What they read and report is report.py.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dulwich.config import ConfigFile
from dulwich.objects import ZERO_SHA, ObjectID
from dulwich.refs import Ref

from ..model.history import DomainIndex, model_refs, read_index, record_delete
from ..model.reading import read_named_manifest
from ..model.signatures import Verifier, check_received
from ..model.states import STATES_REF, states_at, write_states
from ..model.writer import domain_writer, refs_as_stamped, states_writer
from ..objects.refs import domain_ref, model_ref
from ..objects.trailers import format_trailers
from ..util.identity import author
from ..util.locking import deferred_interrupts
from ..util.names import check_domain
from ..util.progress import ProgressFn
from .config import cache_dir
from .hook import explain_rejection, hook_messages
from .incoming import Quarantine
from .merge import MergeResult, ancestry, deleted_commits, index_is, is_ancestor, merge_base, merge_indexes
from .report import ModelChange as ModelChange
from .report import RemoteRefs as RemoteRefs
from .report import SyncResult as SyncResult
from .report import parse_refs as parse_refs
from .transports import Transport, open_transport

if TYPE_CHECKING:
    from ..objects.repository import Repository
    from .staging import Staging


def _states_of(index: DomainIndex, model_id: str, sha: ObjectID | None) -> list[str]:
    """The states in which ``index`` holds ``model_id`` at ``sha``."""
    return sorted(s for s, members in index.states.items() if sha is not None and members.get(model_id) == sha)


def _hex(sha: ObjectID | None) -> str | None:
    return None if sha is None else sha.decode()


def _change(domain: str, model_id: str, old: ObjectID | None, new: ObjectID | None, index: DomainIndex) -> ModelChange:
    """The report of one model ref moved from ``old`` to ``new`` on the side whose index is ``index``."""
    kind = "added" if old is None else "deleted" if new is None else "replaced"
    return ModelChange(f"{domain}/{model_id}", kind, _hex(old), _hex(new), _states_of(index, model_id, old))


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


def _chosen(domains: set[str], selected: set[str] | None) -> list[str]:
    """``domains`` limited to ``selected`` (None: all), in order."""
    return sorted(domains if selected is None else domains & selected)


# -- the per-domain plan: what push and pull both decide first ----------------


@dataclass
class DomainPlan:
    """One domain's three-way merge of our side with the remote's.

    Pull moves our refs to ``merged``, push the remote's: ``moves`` lists what
    changes on either side, ``ours``/``theirs`` are the history heads the new head
    must contain.
    """

    domain: str
    ours: ObjectID | None  # our history head
    theirs: ObjectID | None  # the remote's
    local: DomainIndex  # our index, its models from our model refs
    remote: DomainIndex  # the remote's, its models from its model refs
    merged: MergeResult  # ``merged.conflicts``: IDs with different commits, neither deleted by the other side

    def moves(self, side: Mapping[str, ObjectID]) -> Iterator[tuple[str, ObjectID | None, ObjectID | None]]:
        """(model ID, old, new) for each model ref of ``side`` (one side's refs) that must move to
        hold the merge: added (old None), replaced, deleted (new None)."""
        models = self.merged.index.models
        for mid, sha in models.items():
            had = side.get(mid)
            if had != sha:
                yield mid, had, sha
        for mid, had in side.items():
            if mid not in models:
                yield mid, had, None


def plan_domain(repo: Repository, domain: str, theirs: ObjectID | None, remote_models: dict[str, ObjectID],
                locked: bool) -> DomainPlan:
    """The merge step of push and pull: our side of ``domain`` (as it is now) with the remote's.

    ``theirs`` is the remote's history head (its objects are here), ``remote_models``
    its model refs.  Deletions apply only to the commit their delete event names, and
    only those since the merge base count (merge.py).  ``locked``: the caller holds the
    domain lock, so our history head records exactly our model refs and the merged
    index is written as changes to its tree; otherwise only when the refs are as their
    last writer stamped them (``refs_as_stamped``).
    """
    odb = repo.odb
    ours, local = _local_index(repo, domain)
    remote = _index_at(repo, theirs, remote_models)
    base = merge_base(odb, ours, theirs) if ours and theirs else None
    trusted = ours if locked or (refs_as_stamped(repo, domain) and repo.refs.get(domain_ref(domain)) == ours) else None
    # the deletions since the merge base; the merged index written as changes to ours when trusted
    merged = merge_indexes(_index_at(repo, base), local, remote, deleted_commits(odb, ours, base),
                           deleted_commits(odb, theirs, base), trusted)
    return DomainPlan(domain, ours, theirs, local, remote, merged)


# -- opening a remote, listing it ----------------------------------------------


def _store_config(repo: Repository) -> ConfigFile:
    return ConfigFile.from_path(repo.config_path)


def _open(repo: Repository, url: str, progress: ProgressFn | None) -> Transport:
    return open_transport(url, _store_config(repo), cache_dir(repo, url), progress)


def list_refs(repo: Repository, url: str) -> RemoteRefs:
    """The casstore refs of the remote at ``url``, from its ref listing alone.

    A path remote that does not exist yet is empty (a push creates it).

    No object travels: a git server sends only its ref advertisement and a bucket
    remote reads only its refs.  Names are validated as for a pull.

    Raises:
        RemoteError: the remote cannot be reached; CorruptObjectError: a bad ref.
    """
    return parse_refs(_open(repo, url, None).read_refs(), url)


# -- pull ---------------------------------------------------------------------


def pull(repo: Repository, url: str, domains: list[str] | None = None,  # noqa: PLR0913 - the public pull's options
         progress: ProgressFn | None = None, take_theirs: bool = False,
         require_signed: Verifier | None = None, staging: Staging | None = None) -> SyncResult:
    """Fetch models and histories from ``url`` and merge them into this store.

    Everything received is verified before any ref moves.  A domain with a
    conflict (the same ID, different model commits, neither deleted by the other
    side) is left exactly as it was and reported in ``conflicts``; other domains
    complete.  ``take_theirs`` resolves conflicts by deleting our model (recorded
    in the history) and taking the remote's.  ``require_signed``: every new model commit
    and history event must be signed by a key it allows, else UnsignedModelError and
    nothing changes.  ``staging``: the files of one new model are also written, as they
    are verified, for the download that follows (staging.py).
    """
    selected = {check_domain(d) for d in domains} if domains else None
    result = SyncResult(url)
    transport = _open(repo, url, progress)
    odb = repo.odb
    with repo.lock():
        quarantine = Quarantine(repo)
        quarantine.staging = staging
        try:
            seen: dict[str, RemoteRefs] = {}

            def wants(refs: Mapping[Ref, ObjectID]) -> list[ObjectID]:
                remote = seen["refs"] = parse_refs(refs, url)
                wanted: list[ObjectID] = []
                for domain in _chosen(remote.domains(), selected):
                    wanted.extend(remote.models.get(domain, {}).values())
                    if domain in remote.histories:
                        wanted.append(remote.histories[domain])
                if remote.states is not None:
                    wanted.append(remote.states)
                return sorted({w for w in wanted if not odb.contains(w)})

            received = transport.fetch(repo, wants, quarantine, selected, progress)
            result.objects, result.bytes = received.objects, received.bytes
            remote = seen.get("refs", RemoteRefs())
            _verify_received(repo, quarantine, remote, selected, require_signed)
            quarantine.publish()
        finally:
            quarantine.close()

        for domain in _chosen(remote.domains(), selected):
            # under the domain lock, after recording what killed local writers left out
            with domain_writer(repo, domain):
                _pull_domain(repo, domain, remote, url, result, take_theirs)
        conflicted = {c.split("/", 1)[0] for c in result.conflicts}
        transport.note_merged({d for d in _chosen(remote.domains(), selected) if d not in conflicted})
        _pull_states(repo, remote.states)
    return result


def _verify_received(repo: Repository, quarantine: Quarantine, remote: RemoteRefs, selected: set[str] | None,
                     require_signed: Verifier | None) -> None:
    """Check every model, history and state list the pull brings (still in the quarantine).

    Raises:
        CorruptObjectError, MissingObjectError: what came is damaged or incomplete;
        UnsignedModelError: ``require_signed`` refuses a commit.
    """
    odb = repo.odb
    staging = quarantine.staging
    for domain in _chosen(remote.domains(), selected):
        if staging is not None:  # pull --download: choose the model whose files to write as they are checked
            staging.choose(quarantine.odb, domain, remote.models.get(domain, {}), lambda sha: not odb.contains(sha))
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
        for domain in _chosen(remote.domains(), selected):
            check_received(require_signed, quarantine.odb, domain, remote.models.get(domain, {}),
                           remote.histories.get(domain), odb.contains)


def _pull_domain(repo: Repository, domain: str, remote: RemoteRefs, url: str, result: SyncResult,  # noqa: PLR0913 - the per-domain merge and its report
                 take_theirs: bool) -> None:
    """Merge one domain's remote history and model refs into this store.

    A conflict leaves the domain exactly as it was here (refs and history) and is
    reported; with ``take_theirs`` each conflicting local model is first deleted
    (a delete event naming our commit), so the remote's model then comes in.
    """
    theirs = remote.histories.get(domain)
    remote_models = remote.models.get(domain, {})
    if theirs is not None and repo.refs.get(domain_ref(domain)) == theirs:
        if _local_index(repo, domain)[1].models == remote_models:
            return  # the same history and models on both sides: nothing to merge
    ours_taken: dict[str, tuple[ObjectID, list[str]]] = {}  # ``take_theirs``: ID -> our commit, its states
    raced = False  # a foreign writer (git) moved our refs under the lock: our head no longer records them
    while True:
        plan = plan_domain(repo, domain, theirs, remote_models, locked=not raced)
        local = plan.local
        if plan.merged.conflicts:
            if take_theirs:
                _delete_ours(repo, plan, ours_taken)
                continue
            result.conflicts.extend(f"{domain}/{m}" for m in plan.merged.conflicts)
            return
        # the merge's changes on our side are plan.moves(local.models), without a pass over every model
        changed = plan.merged.changes.items()
        moves = [(mid, had, sha) for mid, (had, sha) in changed if sha is not None] + [
            (mid, had, sha) for mid, (had, sha) in changed if sha is None]
        for mid, _, sha in moves:
            if sha is not None:
                read_named_manifest(repo, domain, mid, sha)  # every ref a pull moves names its model
        for mid, had, sha in moves:
            _move_local(repo, domain, mid, had, sha, local, ours_taken, result)
        # our refs listed again (their packed part is reused while packed-refs is unchanged, see
        # Refs.model_refs): a foreign writer's change since the first listing means a merge again
        if repo.refs.model_refs(domain) != plan.merged.index.models:
            raced = True  # merge again, the merged index then written whole (not as changes to our head)
            continue
        head = _choose_head(repo, plan.ours, theirs, plan.merged.index, url, plan.merged.conflicts)
        if head == plan.ours or repo.refs.set_if_equals(domain_ref(domain), plan.ours, head):  # type: ignore[arg-type]
            for mid, (old, states) in ours_taken.items():  # taken out, and theirs did not come
                result.record(ModelChange(f"{domain}/{mid}", "deleted", _hex(old), None, states, "theirs"))
            return


def _move_local(repo: Repository, domain: str, mid: str, had: ObjectID | None, sha: ObjectID | None,  # noqa: PLR0913 - one ref move and its report
                local: DomainIndex, ours_taken: dict[str, tuple[ObjectID, list[str]]], result: SyncResult) -> None:
    """Move our model ref ``mid`` from ``had`` to ``sha`` if it still holds ``had``, and report it."""
    ref = model_ref(domain, mid)
    if had is None:
        assert sha is not None
        if repo.refs.add_if_new(ref, sha):
            if mid in ours_taken:  # ours went first, theirs came: one replacement, both named
                old, states = ours_taken.pop(mid)
                result.record(ModelChange(f"{domain}/{mid}", "replaced", _hex(old), _hex(sha), states, "theirs"))
            else:
                result.record(_change(domain, mid, None, sha, local))
    elif sha is not None:
        # our history deleted exactly the commit we hold here... or theirs deleted ours
        if repo.refs.set_if_equals(ref, had, sha):
            result.record(_change(domain, mid, had, sha, local))
    elif repo.refs.remove_if_equals(ref, had):  # only the commit the remote's history deleted
        result.record(_change(domain, mid, had, None, local))


def _delete_ours(repo: Repository, plan: DomainPlan, ours_taken: dict[str, tuple[ObjectID, list[str]]]) -> None:
    """Delete each of our models in conflict, logged as a delete event (``pull --theirs``); note
    in ``ours_taken`` the commit and states of each (the first time only).

    The caller holds the domain's lock; a ref that changed meanwhile is left
    alone (the caller merges again).
    """
    local = plan.local
    for mid in plan.merged.conflicts:
        sha = local.models[mid]
        ours_taken.setdefault(mid, (sha, _states_of(local, mid, sha)))
        with deferred_interrupts():
            record_delete(repo.odb, repo.refs, plan.domain, author(repo.path), mid, sha)


def _pull_states(repo: Repository, theirs: ObjectID | None) -> None:
    """Merge the remote's state list into ours (under the states lock; again if ours moved meanwhile)."""
    with states_writer(repo):
        while True:
            ours = repo.refs.get(STATES_REF)
            names, keep = _merge_states(repo, ours, theirs)
            if keep == ours:
                return
            new = keep if keep is not None else _states_commit(
                repo, names, [p for p in (ours, theirs) if p is not None])
            if repo.refs.set_if_equals(STATES_REF, ours, new):
                return


# -- push ---------------------------------------------------------------------


def push(repo: Repository, url: str, domains: list[str] | None = None,
         progress: ProgressFn | None = None) -> SyncResult:
    """Send models and histories that ``url`` lacks; never overwrite a remote model."""
    selected = {check_domain(d) for d in domains} if domains else None
    result = SyncResult(url)
    # A writer killed between a model ref and its history event left the ref unrecorded: record
    # it first, as the next local write would, or the remote's hook refuses the model (it is not
    # in the history pushed with it) and fsck keeps flagging the gap.
    with repo.lock():
        for domain in _chosen(repo.refs.domains(), selected):
            with domain_writer(repo, domain):
                pass
    transport = _open(repo, url, progress)
    pushed = set(_chosen(repo.refs.domains(), selected))  # the domains whose refs may change there

    def update_refs(refs: dict[Ref, ObjectID]) -> dict[Ref, ObjectID]:
        remote = parse_refs(refs, url)
        changes: dict[Ref, ObjectID] = {}
        # may run twice (the retry without atomic push): start the report afresh
        result.models_added, result.models_deleted, result.conflicts, result.diverged = [], [], [], []
        result.models_replaced, result.changes = [], []
        for domain in _chosen(repo.refs.domains(), selected):
            _push_domain(repo, domain, remote, url, changes, result)
        _push_states(repo, remote.states, changes, result)
        return {**refs, **changes}

    with repo.lock():
        sent = transport.send(repo, update_refs, pushed, progress)
    result.objects, result.bytes = sent.objects, sent.bytes
    said = hook_messages(sent.messages)
    for ref, reason in sent.ref_status.items():
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


def _push_domain(repo: Repository, domain: str, remote: RemoteRefs, url: str,  # noqa: PLR0913 - the per-domain plan and its report
                 changes: dict[Ref, ObjectID], result: SyncResult) -> None:
    """Add to ``changes`` the remote refs of ``domain`` that move to hold the merge, and report them."""
    theirs = remote.histories.get(domain)
    if theirs is not None and not repo.odb.contains(theirs):
        result.diverged.append(domain)  # we have never seen their history: pull first
        return
    plan = plan_domain(repo, domain, theirs, remote.models.get(domain, {}), locked=False)
    if plan.merged.conflicts:
        # nothing of this domain moves: a history that lists our model while the
        # remote's ref holds theirs would be a lie, and a partial one could not be
        # merged back without losing the conflict
        result.conflicts.extend(f"{domain}/{m}" for m in plan.merged.conflicts)
        return
    for mid, had, sha in plan.moves(plan.remote.models):
        if sha is not None:
            # never spread a ref that aliases another model's commit (bucket remotes have no hook);
            # a replacement only when our history deleted exactly ``had``
            read_named_manifest(repo, domain, mid, sha)
        # a deletion: our history (or theirs) deleted exactly this commit; the remote
        # checks the old value (git's old-sha, a bucket's conditional write)
        changes[model_ref(domain, mid)] = ZERO_SHA if sha is None else sha
        result.record(_change(domain, mid, had, sha, plan.remote))
    head = _choose_head(repo, theirs, plan.ours, plan.merged.index, url, plan.merged.conflicts)
    if head is not None and head != theirs:
        changes[domain_ref(domain)] = head


def _push_states(repo: Repository, theirs: ObjectID | None, changes: dict[Ref, ObjectID],
                 result: SyncResult) -> None:
    """Add the remote's new state list to ``changes``: ours merged with theirs (a pull first when
    theirs is new here)."""
    ours = repo.refs.get(STATES_REF)
    if theirs is not None and not repo.odb.contains(theirs):
        # their state list is new here: it cannot be merged before a pull (like a history)
        if ours is not None:
            result.diverged.append(STATES_REF.decode())
        return
    names, keep = _merge_states(repo, theirs, ours)
    if keep != theirs:
        changes[STATES_REF] = keep if keep is not None else _states_commit(
            repo, names, [p for p in (theirs, ours) if p is not None])
