"""What ``ModelStore.upload`` checks and prepares before it commits, by modelstore's rules.

The names (modelstore's reserved domains and ID characters, then casstore's own
rules), the extra files (files only, one per name, a warning for each dropped),
``extra_metadata`` (a JSON-serialisable dict), the framework of each model, and
modelstore's archive layout (``model-info.json``, ``extras/<name>``) in a scratch
directory.
"""

from __future__ import annotations

import json
import os
import re
import uuid
import warnings
from typing import Any

from ..errors import InvalidIdError, NoMatchingFrameworkError
from ..frameworks import resolve
from ..util.names import check_domain, check_model_id
from .meta import EXTRAS_DIR, MODEL_INFO, MODELSTORE_ID_CHARS, RESERVED_DOMAINS

#: kwargs modelstore reads as training data for its metadata, never stored as models
DATA_KWARGS = ("X_train", "y_train")


def checked_names(domain: object, model_id: object) -> str:
    """The model ID to upload under (a new UUID for None), after modelstore's checks and casstore's.

    Raises:
        InvalidIdError: an empty or reserved domain, or an ID modelstore or casstore refuses.
    """
    if not isinstance(domain, str) or not domain:
        raise InvalidIdError("domain", domain, "must not be empty (please provide a non-empty domain name)")
    if domain in RESERVED_DOMAINS:
        raise InvalidIdError("domain", domain, "is a directory of modelstore's layout; please use a different "
                                               "domain name")
    check_domain(domain)
    model_id = str(model_id) if model_id is not None else str(uuid.uuid4())
    if re.search(" +", model_id) or MODELSTORE_ID_CHARS & set(model_id):
        raise InvalidIdError("model ID", model_id, "contains invalid characters (spaces, or one of "
                                                   "modelstore's reserved <>:\"/\\|?*#^`%~{}[])")
    check_model_id(model_id)
    return model_id


def extra_paths(kwargs: dict[str, Any]) -> list[str]:
    """Pop the extra files modelstore would archive: files only, one per name, with warnings for the rest."""
    given = kwargs.pop("extra_files", None)
    if "extras" in kwargs:
        warnings.warn("extras= is deprecated; use extra_files=", DeprecationWarning, stacklevel=3)
        old = kwargs.pop("extras")
        given = old if given is None else given
    if given is None:
        return []
    paths = given if isinstance(given, (list, tuple, set)) else [given]
    out: list[str] = []
    names: dict[str, str] = {}
    for p in paths:
        p = os.fspath(p)
        name = os.path.basename(p)
        if not os.path.isfile(p):
            warnings.warn(f"casstore: extra file {p!r} is not a file: not stored", stacklevel=3)
        elif name in names:
            if os.path.abspath(names[name]) != os.path.abspath(p):
                warnings.warn(f"casstore: extra file {p!r} has the same name as {names[name]!r}: "
                              "only the first is stored", stacklevel=3)
        else:
            names[name] = p
            out.append(p)
    return out


def extra_metadata_of(kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """Pop ``extra_metadata``.

    Raises:
        TypeError: it is not a JSON-serialisable dict.
    """
    extra_metadata = kwargs.pop("extra_metadata", None)
    if extra_metadata is None:
        return None
    if not isinstance(extra_metadata, dict):
        raise TypeError("extra_metadata is not a dictionary")
    try:
        json.dumps(extra_metadata)
    except (TypeError, ValueError) as e:
        raise TypeError("extra_metadata must be json serializable") from e
    return extra_metadata


def _given_paths(obj: Any) -> list[str]:
    """The paths of a ``model=`` given as a path or a list of paths."""
    items = obj if isinstance(obj, (list, tuple)) else [obj]
    return [os.fspath(p) for p in items]


def frameworks_of(models: dict[str, Any]) -> dict[str, Any]:
    """The framework that saves each keyword's object, as modelstore matches its managers.

    Raises:
        NoMatchingFrameworkError: an object no framework recognises, a ``model_file``
            path that does not exist, or no model at all.
    """
    plan = {}
    for kwarg, obj in models.items():
        t = type(obj)
        try:
            plan[kwarg] = resolve(kwarg, obj)
        except TypeError:
            raise NoMatchingFrameworkError(kwarg, f"{t.__module__}.{t.__qualname__}") from None
        if plan[kwarg].name == "model_file" and not all(os.path.exists(p) for p in _given_paths(obj)):
            # modelstore's file manager matches only a path that exists: anything else matches no manager
            raise NoMatchingFrameworkError(kwarg, f"{t.__module__}.{t.__qualname__}")
    if not plan:
        raise NoMatchingFrameworkError(None, None)
    return plan


def write_layout(work: str, model_type: dict[str, Any], extras: list[str]) -> list[str]:
    """modelstore's files beside the models in the scratch directory ``work``: the paths to commit as extras."""
    info_path = os.path.join(work, MODEL_INFO)
    with open(info_path, "w") as f:
        json.dump(model_type, f)
    files: list[str] = [info_path]
    if extras:
        # extras/<name>, as modelstore's archive: a directory of links to the files
        d = os.path.join(work, EXTRAS_DIR)
        os.mkdir(d)
        for path in extras:
            os.symlink(os.path.abspath(path), os.path.join(d, os.path.basename(path)))
        files.append(d)
    return files
