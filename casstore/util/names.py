"""Validation of model IDs, domains and state names.

Names become git ref components (``refs/cas/models/<domain>/<id>``), so they
must be valid under ``git check-ref-format`` *and* portable file names.  We
accept a deliberately small alphabet: ASCII letters, digits, ``-``, ``_``
and ``.``, at most 128 characters, not starting with ``.``, not ending with
``.`` or ``.lock``, and never containing ``..``.
"""

from __future__ import annotations

import re
import unicodedata
import uuid

from ..errors import InvalidIdError, UnsafePathError

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


#: Unicode categories of characters that display as something else, or as nothing:
#: controls (C0, DEL, C1), format characters (U+202E right-to-left override, U+200B
#: zero-width space, U+2066..U+2069 isolates, U+FEFF), line and paragraph separators
#: (U+2028, U+2029), surrogates, private-use and unassigned code points.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def hidden_chars(name: str) -> list[str]:
    """The characters of ``name`` that a terminal or a browser would not show as themselves.

    Spaces other than U+0020 (U+00A0, U+3000, ...) count too: they look like a
    plain space.
    """
    return [c for c in name
            if unicodedata.category(c) in _HIDDEN_CATEGORIES or (c.isspace() and c != " ")]


def check_shown_name(path: str) -> str:
    """Refuse a file name that would display as another name.

    Applied to every file name a commit stores (model files and extra files).
    Names already in a store (committed before this rule, or pulled from a store
    that did not have it) stay readable; :func:`shown` escapes them wherever they
    are displayed.

    Raises:
        UnsafePathError: naming the first such character as ``U+XXXX``.
    """
    bad = hidden_chars(path)
    if bad:
        c = bad[0]
        raise UnsafePathError(path, f"contains U+{ord(c):04X} ({unicodedata.name(c, 'a control character')}), "
                                    "which displays as something else or as nothing")
    return path


def shown(name: str) -> str:
    """``name`` as a terminal or a page may display it: every hidden character as ``\\uXXXX``.

    Unambiguous for stored file names, which never contain a backslash.  JSON
    output keeps names exact; only text meant for eyes goes through this.
    """
    if not hidden_chars(name):
        return name
    return "".join((f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}") if hidden_chars(c) else c
                   for c in name)
