"""What push and pull read of a remote and report: its casstore refs, validated, and the result.

``parse_refs`` turns the refs a transport read into ``RemoteRefs`` (every name and
value checked); ``SyncResult`` is what ``Store.push``/``pull`` return, with a
``ModelChange`` for each model added, deleted or replaced.
"""

from __future__ import annotations

import re
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


#: one model ref as ``parse_refs`` lines them up, ``<sha> refs/cas/models/<domain>/<id>\n``, its two
#: names of ``check_name``'s alphabet and length (util/names.py); ``_BAD_PART`` finds its other rules
_MODEL_LINE = re.compile(rb"[0-9a-f]{40} " + re.escape(MODELS) + rb"[A-Za-z0-9._-]{1,128}/[A-Za-z0-9._-]{1,128}\n")
#: ``..`` anywhere, a name starting with ``.`` (after ``/``), ending with ``.`` or ``.lock`` (before ``/`` or the end)
_BAD_PART = re.compile(rb"\.\.|/\.|\.(?:lock)?[/\n]")


def parse_refs(refs: Mapping[Ref, ObjectID], url: str) -> RemoteRefs:
    """casstore's refs among a remote's, with every name validated.

    The model refs (a million in a big domain) are checked together: lined up as
    ``<sha> <name>`` lines, every line must match one regular expression (removing
    the matches leaves nothing, and there are as many as refs: no name or value
    holds a newline) and no line may break a rule of ``check_name`` that the
    expression leaves out.  When anything does not hold, every ref goes through
    the check of one ref at a time, which names the first bad one.

    Raises:
        CorruptObjectError: a ``refs/cas/`` ref with a bad name or value.
    """
    models = [(name, sha) for name, sha in refs.items() if name.startswith(MODELS)]
    others = [] if len(models) == len(refs) else \
        [(name, sha) for name, sha in refs.items() if name.startswith(b"refs/cas/") and not name.startswith(MODELS)]
    if models:
        lines = b"".join([sha + b" " + name + b"\n" for name, sha in models])
        rest, n = _MODEL_LINE.subn(b"", lines)
        if not rest and n == len(models) and not (b"." in lines and _BAD_PART.search(lines)):
            out = RemoteRefs()
            tables = out.models
            for name, sha in models:
                domain, _, mid = name[len(MODELS):].decode().partition("/")
                table = tables.get(domain)
                if table is None:
                    table = tables[domain] = {}
                table[mid] = sha
            return _parse_one_by_one(others, url, out)
    return _parse_one_by_one([(name, sha) for name, sha in refs.items() if name.startswith(b"refs/cas/")], url,
                             RemoteRefs())


def _parse_one_by_one(refs: list[tuple[Ref, ObjectID]], url: str, out: RemoteRefs) -> RemoteRefs:
    """``parse_refs``, one ref at a time: the first bad name or value is named."""
    for name, sha in refs:
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
