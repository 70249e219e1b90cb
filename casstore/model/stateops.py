"""Changing model states (create and delete a state, put a model in one and take it out),
and recording notes and tags: history events about a model that leave its commit as it is.

The state *names* are the store-wide list (states.py, under ``states_writer``); which
model is in which state is recorded in each domain's history (history/), under the
domain's lock (writer.py's ``domain_writer``).  Callers (the Store) check the names
and hold the shared store lock, so gc keeps each new commit until a ref names it.
Needs only a Repository.
"""

from __future__ import annotations

from dulwich.objects import ObjectID

from ..objects.refs import domain_ref
from ..objects.repository import Repository
from ..util.identity import author
from .history import DomainIndex, append_event, convert_layout, read_index
from .notes import check_note, check_tag, note_trailer
from .reading import model_commit
from .states import update_states
from .views import DomainViews
from .writer import domain_writer, states_writer


def create_state(repo: Repository, state_name: str) -> None:
    """Add ``state_name`` to the list of states (a no-op if it is there)."""

    def add(names: set[str]) -> bool:
        if state_name in names:
            return False
        names.add(state_name)
        return True

    with states_writer(repo):
        update_states(repo.odb, repo.refs, author(repo.path), f"create state {state_name}", add)


def set_state(repo: Repository, domain: str, model_id: str, state_name: str) -> None:
    """Put the model in ``state_name``, recorded in the domain history (nothing if it is in it).

    Raises:
        ModelNotFoundException: no such model.
    """
    with domain_writer(repo, domain):
        sha = model_commit(repo, domain, model_id)

        def put(idx: DomainIndex) -> bool:
            members = idx.states.setdefault(state_name, {})
            if members.get(model_id) == sha:
                return False
            members[model_id] = sha
            return True

        append_event(repo.odb, repo.refs, domain, author(repo.path), "state-set", model_id, sha, put,
                     state=state_name)


def remove_state(repo: Repository, domain: str, model_id: str, state_name: str) -> None:
    """Take the model out of ``state_name`` (a no-op if it is not in it).

    Raises:
        ModelNotFoundException: no such model.
    """
    with domain_writer(repo, domain):
        unset_state(repo, domain, model_id, model_commit(repo, domain, model_id), state_name)


def unset_state(repo: Repository, domain: str, model_id: str, sha: ObjectID, state_name: str) -> None:
    """Record that ``model_id`` left ``state_name`` (nothing when it was not in it).

    Callers hold the store lock and the domain's lock.
    """

    def drop(idx: DomainIndex) -> bool:
        members = idx.states.get(state_name, {})
        if model_id not in members:
            return False
        del members[model_id]
        return True

    append_event(repo.odb, repo.refs, domain, author(repo.path), "state-unset", model_id, sha, drop,
                 state=state_name)


def delete_state(repo: Repository, state_name: str) -> None:
    """Every model leaves ``state_name`` (recorded in each domain's history), then the state goes."""

    def remove(names: set[str]) -> bool:
        if state_name not in names:
            return False
        names.discard(state_name)
        return True

    for domain in sorted(repo.refs.domains()):
        with domain_writer(repo, domain):
            index = read_index(repo.odb, repo.refs.get(domain_ref(domain)))
            for mid, sha in sorted(index.states.get(state_name, {}).items()):
                unset_state(repo, domain, mid, sha, state_name)
    with states_writer(repo):
        update_states(repo.odb, repo.refs, author(repo.path), f"delete state {state_name}", remove)


def annotate(repo: Repository, domain: str, model_id: str, event: str,  # noqa: PLR0913 - the event and what it carries
             trailers: dict[str, str] | None = None, raw: dict[str, str] | None = None, summary: str = "") -> None:
    """Record a note or tag event (notes.py) of the model: a history event that leaves the index as it is.

    Raises:
        ModelNotFoundException: no such model.
    """
    with domain_writer(repo, domain):
        sha = model_commit(repo, domain, model_id)
        append_event(repo.odb, repo.refs, domain, author(repo.path), event, model_id, sha,
                     lambda idx: True, trailers={**(trailers or {}), "Summary": summary},
                     raw_trailers=raw)


def annotate_model(repo: Repository, views: DomainViews, domain: str, model_id: str, event: str,  # noqa: PLR0913 - the model and the event
                   value: object) -> None:
    """Record ``event`` of the model: ``note`` (``value`` the text), ``tag`` or ``untag`` (``value``
    the tag; a tag the model already has, or an untag of one it lacks, records nothing).

    Raises:
        NoteError: a bad note or tag name.  ModelNotFoundException: no such model.
    """
    if event == "note":
        text = check_note(value)
        annotate(repo, domain, model_id, "note", raw={"Note": note_trailer(text)}, summary=text)
        return
    tag = check_tag(value)
    has = tag in views.annotations_of(domain, model_id, model_commit(repo, domain, model_id))["tags"]
    if has == (event == "untag"):
        annotate(repo, domain, model_id, event, trailers={"Tag": tag})


def convert_layouts(repo: Repository, domains: list[str]) -> list[str]:
    """Rewrite each domain's index in the current layout (one ``layout`` event each, under the
    domain's lock; history/append.py's ``convert_layout``); returns the domains converted."""
    done = []
    for d in domains:
        with domain_writer(repo, d):
            if convert_layout(repo.odb, repo.refs, d, author(repo.path)):
                done.append(d)
    return done
