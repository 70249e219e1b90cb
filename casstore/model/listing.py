"""Listing a domain's models, newest first (``Store.list_models``, ``iter_models``).

Needs only a Repository (no Store): the model refs say which models are live, the
domain history says in what order they came and, with its ``Cas-Newest`` bound
(history.walk_log), when a first page is complete without reading every model.
Readers take no lock (see store.py's docstring for what a reader may see).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator

from dulwich.objects import Commit, ObjectID

from ..errors import (
    DomainNotFoundException,
    InvalidIdError,
    ModelNotFoundException,
    NoModelInStateError,
    StateNotFoundException,
)
from ..objects.refs import domain_ref, model_ref
from ..objects.repository import Repository
from ..objects.trailers import parse_trailers
from ..util.names import check_domain, check_model_id, check_state
from .history import Event, has_newest, iter_log, read_index, walk_log
from .reading import StoredModel, read_model
from .states import list_states
from .writer import refs_as_stamped


def check_state_exists(repo: Repository, state: str) -> None:
    """Raises InvalidIdError for a bad state name, StateNotFoundException for one never created."""
    check_state(state)
    if state not in list_states(repo.odb, repo.refs):
        raise StateNotFoundException(state)


def model_times(repo: Repository, domain: str) -> list[tuple[str, str]]:
    """(created, ID) of every model ref of the domain: one ref and one commit read each."""
    out = []
    for mid in repo.refs.model_ids(domain):
        sha = repo.refs.get(model_ref(domain, mid))
        if sha is None:
            continue
        c = repo.odb.read(sha, Commit)
        assert isinstance(c, Commit)
        out.append((parse_trailers(c.message).get("Cas-Created", ""), mid))
    return out


def list_models(repo: Repository, domain: str, state_name: str | None = None,
                limit: int | None = None) -> list[str]:
    """The domain's model IDs, newest first; only those in ``state_name`` if given.

    Newest first means by creation time (``created``), then by ID, both
    descending.  With ``limit``, the first ``limit`` of that same list, read
    from the newest end of the domain history: about ``limit`` history events,
    ref reads and model commits, whatever the domain's size (see
    ``first_models`` for when it must read every model instead).

    Raises:
        DomainNotFoundException: the domain was never used.
        StateNotFoundException: ``state_name`` was never created.
        ValueError: ``limit`` is negative.
    """
    check_domain(domain)
    if limit is not None:
        if limit < 0:
            raise ValueError(f"list_models: limit must be >= 0, not {limit}")
        first = first_models(repo, domain, state_name, limit)
        if first is not None:
            return first
        return list_models(repo, domain, state_name)[:limit]
    times = model_times(repo, domain)
    if not times and repo.refs.get(domain_ref(domain)) is None:
        raise DomainNotFoundException(domain)
    ids = [mid for _, mid in sorted(times, reverse=True)]
    if state_name is not None:
        check_state_exists(repo, state_name)
        members = read_index(repo.odb, repo.refs.get(domain_ref(domain))).states.get(state_name, {})
        ids = [mid for mid in ids if mid in members]
    return ids


def first_models(repo: Repository, domain: str, state_name: str | None, limit: int) -> list[str] | None:
    """``list_models(repo, domain, state_name)[:limit]`` from the newest history events; None: cannot tell.

    Walks the history newest first, keeping each live model (ref at the commit
    of the event) with its creation time, and stops once ``limit`` of them are
    newer than anything the rest of the history can hold: every history commit
    casstore writes bounds the creation times of its ancestry (``Cas-Newest``,
    see history.walk_log).  None, for the full sort, when the refs may hold a
    model the history does not record (the refs stamp does not hold: a killed
    writer, a foreign one), or when the bound is missing (a history written
    before the bound existed) until the walk reaches the end.
    """
    odb, refs = repo.odb, repo.refs
    head = refs.get(domain_ref(domain))
    if head is None or not refs_as_stamped(repo, domain) or not has_newest(odb, head):
        return None
    members: dict[str, ObjectID] | None = None
    if state_name is not None:
        check_state_exists(repo, state_name)
        members = read_index(odb, head).states.get(state_name, {})
    found: list[tuple[str, str]] = []  # (created, id), as model_times
    done: set[str] = set()
    for ev, bound in walk_log(odb, head):
        if ev.event == "commit" and ev.model_id not in done:
            try:
                current = refs.get(model_ref(domain, check_model_id(ev.model_id)))
            except InvalidIdError:
                current = None  # a name no ref can have: fsck reports it
            if current is not None and current.decode() == ev.model_commit:
                done.add(ev.model_id)
                if members is None or ev.model_id in members:
                    c = odb.read(current, Commit)
                    assert isinstance(c, Commit)
                    found.append((parse_trailers(c.message).get("Cas-Created", ""), ev.model_id))
                    found.sort(reverse=True)
                    del found[limit:]
        if bound == -1:
            # the whole history was read (a small domain, or a model created after the
            # rest at its very start): exact if every ref was met at its event; an
            # index written by other tools may list models without one: sort every ref
            return [mid for _, mid in found] if len(done) == len(refs.model_ids(domain)) else None
        if bound is not None and (limit == 0 or len(found) == limit):
            # the rest records models created before bound + 1 s; ours are all newer?
            try:
                last = _dt.datetime.fromisoformat(found[-1][0]).timestamp() if limit else float("inf")
            except ValueError:
                continue
            if last >= bound + 1:
                return [mid for _, mid in found]
    return None


def iter_models(repo: Repository, domain: str, state_name: str | None = None) -> Iterator[str]:
    """The domain's model IDs, newest first, read lazily from the domain history.

    See ``Store.iter_models`` for the order and the cost.

    Raises:
        DomainNotFoundException: the domain was never used (raised at once).
        StateNotFoundException: ``state_name`` was never created.
    """
    check_domain(domain)
    head = repo.refs.get(domain_ref(domain))
    if head is None and not repo.refs.has_domain(domain):
        raise DomainNotFoundException(domain)
    members: dict[str, ObjectID] | None = None
    if state_name is not None:
        check_state_exists(repo, state_name)
        members = read_index(repo.odb, head).states.get(state_name, {})
    return (mid for mid, sha in iter_model_commits(repo, domain, head)
            if members is None or members.get(mid) == sha.encode())


def iter_model_commits(repo: Repository, domain: str, head: ObjectID | None) -> Iterator[tuple[str, str]]:
    """(model ID, model commit) of the domain's live models, newest first (see ``Store.iter_models``).

    ``head`` is the domain history's head as the caller read it (None: no history),
    so that a caller paging through the list reads one version of it.
    """
    # A model is listed at the newest commit event of the very commit its ref holds.
    # Delete events decide nothing: after a merge, a delete of *another* commit under
    # the same ID (the other side's) can be newer than the commit event of ours.
    refs = repo.refs
    done: set[str] = set()
    for ev in iter_log(repo.odb, head):
        if ev.event != "commit" or ev.model_id in done:
            continue
        try:
            current = refs.get(model_ref(domain, check_model_id(ev.model_id)))
        except InvalidIdError:
            continue  # a name no ref can have: fsck reports it
        if current is not None and current.decode() == ev.model_commit:
            done.add(ev.model_id)
            yield ev.model_id, ev.model_commit
    rest = refs.model_ids(domain) - done
    if rest:
        for mid in list_models(repo, domain):
            if mid in rest:
                sha = refs.get(model_ref(domain, mid))
                if sha is not None:
                    yield mid, sha.decode()


def domain_head(repo: Repository, domain: str) -> ObjectID:
    """The head of the domain's history.

    Raises:
        InvalidIdError; DomainNotFoundException: the domain has no history.
    """
    head = repo.refs.get(domain_ref(check_domain(domain)))
    if head is None:
        raise DomainNotFoundException(domain)
    return head


def log_events(repo: Repository, domain: str, head: ObjectID | None = None) -> Iterator[Event]:
    """The domain's history events from ``head`` (default: the current head), newest first, read lazily.

    Raises:
        DomainNotFoundException: the domain has no history (raised at once).
    """
    check_domain(domain)
    return iter_log(repo.odb, domain_head(repo, domain) if head is None else head)


def in_state(repo: Repository, domain: str, model_id: str | None, state: str | None) -> str | None:
    """The ID to read: ``model_id``, or with ``state`` the newest model in that state
    (newest as ``list_models`` orders them).

    Raises:
        ValueError: both given.  NoModelInStateError, StateNotFoundException.
    """
    if state is None:
        return model_id
    if model_id is not None:
        raise ValueError(f"give a model ID ({model_id!r}) or a state ({state!r}), not both")
    found = list_models(repo, domain, state, limit=1)
    if not found:
        raise NoModelInStateError(domain, state)
    return found[0]


def resolve_model(repo: Repository, domain: str, model_id: str | None) -> StoredModel:
    """The model ``model_id`` of ``domain``, or its newest model when ``model_id`` is None.

    Raises:
        InvalidIdError, DomainNotFoundException, ModelNotFoundException.
    """
    check_domain(domain)
    if model_id is None:
        # the newest event, not a sort of every model: cheap in a domain of any size
        model_id = next(iter_models(repo, domain), None)
        if model_id is None:
            raise ModelNotFoundException(domain, None)
    return read_model(repo, domain, model_id)
