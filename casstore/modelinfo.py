"""What ``Store.model_info`` returns: a model's metadata, typed.

``ModelInfo.as_dict()`` is exactly the dict ``Store.get_model_info`` has always
returned (and ``cas show --json`` prints), so the public dict API is unchanged;
front ends read the typed fields instead of string keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FrameworkInfo:
    """One framework entry of a model: what ``commit_models`` saved under one keyword."""

    framework: str
    cls: str  # "class" in the dict
    format: str
    files: list[str]
    library: dict[str, Any]
    #: whether loading it runs code (a pickle): the Store's one answer to that question
    executes_code: bool

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FrameworkInfo:
        return cls(framework=d["framework"], cls=d["class"], format=d["format"], files=list(d["files"]),
                   library=dict(d["library"]), executes_code=bool(d["executes_code"]))

    def as_dict(self) -> dict[str, Any]:
        return {"framework": self.framework, "class": self.cls, "format": self.format, "files": list(self.files),
                "library": dict(self.library), "executes_code": self.executes_code}


@dataclass(frozen=True)
class FileInfo:
    """One stored file of a model."""

    path: str
    kind: str
    size: int
    digest: str  # "blake3:<hex>"
    chunks: int

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FileInfo:
        return cls(path=d["path"], kind=d["kind"], size=d["size"], digest=d["digest"], chunks=d["chunks"])

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "size": self.size, "digest": self.digest,
                "chunks": self.chunks}


@dataclass(frozen=True)
class ModelInfo:
    """A model's metadata: names, commit, author, frameworks, files, metadata, stats, states."""

    domain: str
    model_id: str
    commit: str
    created: str
    author: str
    frameworks: dict[str, FrameworkInfo]  # keyword -> entry, in commit order
    files: list[FileInfo]
    extra_files: list[str]
    extra_metadata: Any
    environment: dict[str, str]
    stats: dict[str, int]
    states: list[str]
    #: keys of the dict this type does not name yet, kept so that ``as_dict`` gives them back
    others: dict[str, Any] = field(default_factory=dict)
    #: the dict's key order, so that ``as_dict`` (and JSON made from it) keeps it
    key_order: tuple[str, ...] = field(default=(), repr=False, compare=False)

    _KEYS = ("domain", "model_id", "commit", "created", "author", "frameworks", "files", "extra_files",
             "extra_metadata", "environment", "stats", "states")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelInfo:
        """From the public dict (``get_model_info``, ``commit_models``)."""
        return cls(domain=d["domain"], model_id=d["model_id"], commit=d["commit"], created=d["created"],
                   author=d["author"],
                   frameworks={k: FrameworkInfo.from_dict(v) for k, v in d["frameworks"].items()},
                   files=[FileInfo.from_dict(f) for f in d["files"]], extra_files=list(d["extra_files"]),
                   extra_metadata=d["extra_metadata"], environment=dict(d["environment"]),
                   stats=dict(d["stats"]), states=list(d["states"]),
                   others={k: v for k, v in d.items() if k not in cls._KEYS}, key_order=tuple(d))

    @property
    def tags(self) -> list[str]:
        """The model's tags (``get_model_info`` leaves them out with ``annotations=False``)."""
        return list(self.others.get("tags") or [])

    @property
    def notes(self) -> list[dict[str, Any]]:
        """The model's notes, oldest first: each {"text", "author", "time"} (empty when not read)."""
        return list(self.others.get("notes") or [])

    def as_dict(self) -> dict[str, Any]:
        """The public dict, key for key and in the same order as ``get_model_info`` returns it."""
        out: dict[str, Any] = {
            "domain": self.domain, "model_id": self.model_id, "commit": self.commit, "created": self.created,
            "author": self.author, "frameworks": {k: v.as_dict() for k, v in self.frameworks.items()},
            "files": [f.as_dict() for f in self.files], "extra_files": list(self.extra_files),
            "extra_metadata": self.extra_metadata, "environment": dict(self.environment),
            "stats": dict(self.stats), "states": list(self.states),
        }
        out.update(self.others)
        if self.key_order:
            out = {**{k: out[k] for k in self.key_order if k in out}, **out}
        return out
