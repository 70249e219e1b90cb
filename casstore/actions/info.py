"""The dict of a model's metadata: what ``commit_models`` returns and ``get_model_info`` fills in.

Its keys are the public dict API (modelinfo.py's ``ModelInfo`` is the typed view, and
``as_dict()`` gives this dict back); whether an entry's loading runs code is the
frameworks' one rule (``entry_executes_code``), as ``load`` applies it.
"""

from __future__ import annotations

from typing import Any

from dulwich.objects import ObjectID

from ..frameworks import entry_executes_code
from ..model.manifest import Manifest
from ..model.manifest import decode as decode_manifest
from ..model.reading import StoredModel
from ..model.views import DomainViews


def info_dict(m: Manifest, sha: ObjectID) -> dict[str, Any]:
    """What ``commit_models`` returns and ``get_model_info`` starts from (modelinfo.py types it)."""
    return {
        "domain": m.domain,
        "model_id": m.model_id,
        "commit": sha.decode(),
        "created": m.created,
        "author": m.author,
        "frameworks": {
            e.kwarg: {"framework": e.framework, "class": e.cls, "format": e.format,
                      "files": list(e.files), "library": dict(e.library),
                      "executes_code": entry_executes_code(e)}
            for e in m.frameworks
        },
        "files": [
            {"path": f.path, "kind": f.kind, "size": f.size, "digest": "blake3:" + f.blake3.hex(),
             "chunks": len(f.keys)}
            for f in m.files
        ],
        "extra_files": m.extra_files,
        "extra_metadata": m.extra_metadata,
        "environment": dict(m.environment),
        "stats": dict(m.stats),
        "states": [],  # a new model is in none; get_model_info fills them in
        "notes": [], "tags": [],  # nor has it notes or tags (add_note, set_tag)
    }


def committed_info(m: Manifest, sha: ObjectID) -> dict[str, Any]:
    """What a commit (or a copy) returns: the dict of the manifest as a reader will decode it
    (msgpack's round trip: tuples become lists ...), so it equals ``get_model_info``'s."""
    return info_dict(decode_manifest(m.encode()), sha)


def full_info(views: DomainViews, m: StoredModel, annotations: bool) -> dict[str, Any]:
    """``get_model_info``: the model's dict with the states it is in and (``annotations``) its
    notes and tags, read once per history head (model/views.py)."""
    info = info_dict(m.manifest, m.commit)
    info["states"] = views.states_of(m.manifest.domain, m.manifest.model_id, m.commit)
    if annotations:
        info.update(views.annotations_of(m.manifest.domain, m.manifest.model_id, m.commit))
    return info
