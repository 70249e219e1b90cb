"""What the Store reads about a domain's models once per history head: their states and
their notes and tags.

Every commit, deletion, state change and note moves the domain history's head, so a
view computed at one head stays right until the head moves.  A listing that asks for
every model's info (``cas ls -l``, ``cas serve``'s pages) then reads the domain index's
states and walks the history's note and tag events (notes.py) once, not once per
model.  Needs only a Repository.
"""

from __future__ import annotations

from typing import Any

from dulwich.objects import ObjectID

from ..objects.refs import domain_ref
from ..objects.repository import Repository
from .history import read_index
from .notes import Annotations, read_annotations


class DomainViews:
    """The per-head views of one store's domains (safe to share: a stale read only recomputes)."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        #: domain -> (history head, its states)
        self._states: dict[str, tuple[ObjectID | None, dict[str, dict[str, ObjectID]]]] = {}
        #: domain -> (history head, (model ID, commit) -> its notes and tags)
        self._annotations: dict[str, tuple[ObjectID | None, dict[tuple[str, str], Annotations]]] = {}

    def states_of(self, domain: str, model_id: str, sha: ObjectID) -> list[str]:
        """The states ``model_id`` (at commit ``sha``) is in, from the domain index of the
        history's head; the index's states are kept per head, so a listing that asks for
        every model's info reads them once."""
        head = self.repo.refs.get(domain_ref(domain))
        cached = self._states.get(domain)
        if cached is None or cached[0] != head:
            cached = (head, read_index(self.repo.odb, head).states)
            self._states[domain] = cached
        return sorted(s for s, members in cached[1].items() if members.get(model_id) == sha)

    def _annotations_at_head(self, domain: str) -> tuple[ObjectID | None, dict[tuple[str, str], Annotations]]:
        head = self.repo.refs.get(domain_ref(domain))
        cached = self._annotations.get(domain)
        if cached is None or cached[0] != head:
            cached = (head, read_annotations(self.repo.odb, head))
            self._annotations[domain] = cached
        return cached

    def annotations_of(self, domain: str, model_id: str, sha: ObjectID) -> dict[str, Any]:
        """The notes and tags of ``model_id`` at commit ``sha``, from one walk of the history per head."""
        a = self._annotations_at_head(domain)[1].get((model_id, sha.decode()))
        if a is None:
            return {"notes": [], "tags": []}
        return {"notes": [dict(n) for n in a.notes], "tags": a.tags}

    def domain_annotations(self, domain: str) -> dict[str, dict[str, Any]]:
        """The notes and tags of every live model of the domain that has some, by ID."""
        head, found = self._annotations_at_head(domain)
        models = read_index(self.repo.odb, head).models
        out: dict[str, dict[str, Any]] = {}
        for (mid, sha), a in found.items():
            if models.get(mid) == sha.encode() and (a.notes or a.tags):
                out[mid] = {"notes": [dict(n) for n in a.notes], "tags": a.tags}
        return out
