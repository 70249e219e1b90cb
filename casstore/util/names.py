"""Validation of model IDs, domains and state names.

Names become git ref components (``refs/cas/models/<domain>/<id>``), so they
must be valid under ``git check-ref-format`` *and* portable file names.  We
accept a deliberately small alphabet: ASCII letters, digits, ``-``, ``_``
and ``.``, at most 128 characters, not starting with ``.``, not ending with
``.`` or ``.lock``, and never containing ``..``.
"""

from __future__ import annotations

import re
import uuid

from ..errors import InvalidIdError

MAX_NAME_LENGTH = 128
_ALLOWED = re.compile(r"[A-Za-z0-9._-]+")


def check_name(name: object, kind: str = "model ID") -> str:
    """Return ``name`` if it is a valid ID/domain/state name, else raise.

    Raises:
        InvalidIdError: naming the first rule the name breaks.
    """
    if not isinstance(name, str):
        raise InvalidIdError(kind, name, f"must be a str, not {type(name).__name__}")
    if not name:
        raise InvalidIdError(kind, name, "must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidIdError(kind, name, f"must be at most {MAX_NAME_LENGTH} characters")
    if not _ALLOWED.fullmatch(name):
        bad = sorted({c for c in name if not _ALLOWED.fullmatch(c)})
        raise InvalidIdError(
            kind,
            name,
            "may contain only ASCII letters, digits, '-', '_' and '.' "
            f"(found {''.join(bad)!r})",
        )
    if name.startswith("."):
        raise InvalidIdError(kind, name, "must not start with '.'")
    if name.endswith("."):
        raise InvalidIdError(kind, name, "must not end with '.'")
    if name.endswith(".lock"):
        raise InvalidIdError(kind, name, "must not end with '.lock'")
    if ".." in name:
        raise InvalidIdError(kind, name, "must not contain '..'")
    return name


def check_model_id(model_id: object) -> str:
    return check_name(model_id, "model ID")


def check_domain(domain: object) -> str:
    return check_name(domain, "domain")


def check_state(state: object) -> str:
    return check_name(state, "state")


def new_model_id() -> str:
    """A fresh default model ID (UUID4, as modelstore does)."""
    return str(uuid.uuid4())
