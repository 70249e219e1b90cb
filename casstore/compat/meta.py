"""modelstore's metadata: its names, its dict and its times, as modelstore writes and returns them.

Shared by ``ModelStore`` (modelstore.py), which writes this dict with each model, and
the importer, which reads modelstore's own files.
"""

from __future__ import annotations

import copy
import datetime as _dt
import getpass
import json
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from ..version import __version__

#: the casstore store's place under a modelstore root directory or bucket prefix
STORE_DIR = "casstore"
#: an archive may expand to at most this many times its compressed size (plus EXPANSION_ALLOWANCE):
#: model files compress a few times at most, a decompression bomb a thousand times
MAX_EXPANSION = 100
#: bytes any archive may expand to whatever its compressed size (tar headers, tiny files)
EXPANSION_ALLOWANCE = 64 << 20
#: modelstore's reserved state: the models deleted from a domain
DELETED_STATE = "modelstore-deleted"
RESERVED_STATES = (DELETED_STATE,)
#: the key of ``extra_metadata`` that holds modelstore's metadata dict
META_KEY = "modelstore"
#: modelstore's model-type file and extras directory, in every model it writes
MODEL_INFO = "model-info.json"
EXTRAS_DIR = "extras"
#: domain names modelstore refuses (they are directories of its own layout)
#: modelstore's own directory (or prefix) under its root directory (or bucket root prefix)
MODELSTORE_DIR = "operatorai-model-store"
RESERVED_DOMAINS = ("versions", "domains", "modelstore", "operatorai-model-store")
#: characters modelstore refuses in model IDs (casstore's own rules are stricter still)
MODELSTORE_ID_CHARS = set('<>:"/\\|?*#^`%~{}[]')
_TIME_FORMAT = "%Y/%m/%d/%H:%M:%S"


def modelstore_time(when: _dt.datetime) -> str:
    """modelstore's ``code.created``: local time, to the second."""
    return when.astimezone().strftime(_TIME_FORMAT)


def parse_modelstore_time(text: str) -> _dt.datetime:
    """The inverse of :func:`modelstore_time` (modelstore wrote naive local times).

    Raises:
        ValueError: not modelstore's format.
    """
    return _dt.datetime.strptime(text, _TIME_FORMAT).astimezone()


def is_valid_state_name(state_name: object) -> bool:
    """modelstore's rule for user state names: 3 characters or more, no path, not reserved."""
    return (isinstance(state_name, str) and len(state_name) >= 3
            and os.path.split(state_name)[1] == state_name and state_name not in RESERVED_STATES)


def model_type_of(frameworks: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """modelstore's ``model_type`` for a model's framework entries (``get_model_info()["frameworks"]``)."""
    types = [{"library": e["framework"], "type": str(e.get("class") or "").rsplit(".", 1)[-1] or None,
              "models": None} for e in frameworks.values()]
    if len(types) == 1:
        return types[0]
    return {"library": "multiple-models", "type": None, "models": types}


def uploaded_model_type(models: Mapping[str, Any], libraries: Mapping[str, str]) -> dict[str, Any]:
    """modelstore's ``model_type`` for an upload: ``libraries`` names each keyword's framework."""
    types = [{"library": lib, "type": type(models[k]).__name__ if lib != "model_file" else None,
              "models": None} for k, lib in libraries.items()]
    return types[0] if len(types) == 1 else {"library": "multiple-models", "type": None, "models": types}


def meta_of(info: Mapping[str, Any], storage: dict[str, Any]) -> dict[str, Any]:
    """modelstore's dict for a model: the one stored with it, else one built from its manifest.

    ``info`` is ``get_model_info()``'s dict; ``storage`` is modelstore's ``storage`` entry for it.
    """
    extra = info.get("extra_metadata")
    if isinstance(extra, dict) and isinstance(extra.get(META_KEY), dict):
        return copy.deepcopy(extra[META_KEY])  # type: ignore[no-any-return]
    created = _dt.datetime.fromisoformat(info["created"])
    libraries = {e["library"]["name"]: e["library"]["version"] for e in info["frameworks"].values()
                 if e["library"].get("name") and e["library"].get("version")}
    return {
        "model": {"domain": info["domain"], "model_id": info["model_id"],
                  "model_type": model_type_of(info["frameworks"]), "parameters": {}, "data": None},
        "storage": storage,
        "modelstore": f"casstore-{__version__}",
        "code": {"runtime": f"python:{info['environment'].get('python', '')}", "user": info["author"],
                 "created": modelstore_time(created), "dependencies": libraries, "git": None},
        "extra": extra,
    }


def _defaults(doc: Any, fields: tuple[str, ...]) -> None:
    if isinstance(doc, dict):
        for f in fields:
            doc.setdefault(f, None)


def as_modelstore_returns(meta: dict[str, Any]) -> dict[str, Any]:
    """The metadata JSON as modelstore's ``get_model_info`` returns it: its files leave
    out the optional fields that are None, its dataclasses put them back."""
    _defaults(meta, ("code", "extra"))
    model = meta.get("model")
    _defaults(model, ("parameters", "data"))
    if isinstance(model, dict):
        types = [model.get("model_type")]
        while types:
            t = types.pop()
            _defaults(t, ("type", "models"))
            if isinstance(t, dict) and isinstance(t.get("models"), list):
                types.extend(t["models"])
        data = model.get("data")
        _defaults(data, ("features", "labels"))
        if isinstance(data, dict):
            _defaults(data.get("features"), ("shape",))
            _defaults(data.get("labels"), ("shape", "values"))
    _defaults(meta.get("storage"), ("root", "path", "bucket", "prefix", "container"))
    _defaults(meta.get("code"), ("git",))
    return meta


def parameters(model: Any) -> dict[str, Any]:
    """modelstore's ``parameters``: ``get_params()`` when the model has it and it is JSON-serialisable."""
    get_params = getattr(model, "get_params", None)
    if not callable(get_params):
        return {}
    try:
        params = get_params()
        json.dumps(params)
    except Exception:  # modelstore drops parameters it cannot serialise, whatever the reason
        return {}
    return params if isinstance(params, dict) else {}


def dependencies(frameworks: Iterable[str]) -> dict[str, str]:
    """Versions of the frameworks' libraries and modelstore's usual companions, as imported now."""
    names = {"sklearn": "sklearn", "xgboost": "xgboost", "lightgbm": "lightgbm", "catboost": "catboost",
             "pytorch": "torch", "shap": "shap", "onnx": "onnx", "keras": "keras"}
    out: dict[str, str] = {}
    for module in [names.get(f, f) for f in frameworks] + ["numpy", "scipy", "pandas", "joblib"]:
        version = getattr(sys.modules.get(module), "__version__", None)
        if version:
            out[module] = str(version)
    return out


def user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in a container without a passwd entry
        return ""
