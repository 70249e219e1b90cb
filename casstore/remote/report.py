"""What push and pull read of a remote and report: its casstore refs, validated, and the result.

``parse_refs`` turns the refs a transport read into ``RemoteRefs`` (every name and
value checked); ``SyncResult`` is what ``Store.push``/``pull`` return, with a
``ModelChange`` for each model added, deleted or replaced.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dulwich.objects import ObjectID
from dulwich.refs import Ref

from ..errors import CorruptObjectError
from ..model.states import STATES_REF
from ..objects.refs import DOMAINS, MODELS
from ..util.names import check_domain, check_model_id


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
