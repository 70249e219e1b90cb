"""Who is writing: the author recorded in model commits, history events and manifests.

Git writes ``Name <email>`` into every commit, and ``git fsck --strict`` (so every
git server with ``receive.fsckObjects``) rejects a commit whose identity is
malformed.  An identity is therefore validated *before* anything is written:
a bad ``CAS_AUTHOR`` would otherwise end up in a commit that no push can send.

Where it comes from, first match wins:

1. ``CAS_AUTHOR``: ``Name <email>``, or a bare name (the email is then
   ``user@host``);
2. git's ``user.name`` / ``user.email``: the store's own config, then the
   user's (``~/.gitconfig``, ``$XDG_CONFIG_HOME/git/config``), then the system's;
3. the login name and ``user@host``.
"""

from __future__ import annotations

import getpass
import os
import re

from dulwich.config import ConfigFile, StackedConfig

from ..errors import InvalidIdentityError

# git's fsck_ident: the name is non-empty and holds no '<', '>' or newline, one
# space separates it from '<email>', and the email holds no '<', '>' or newline.
# Control characters are refused everywhere (they break `git log` and trailers).
_BAD = re.compile(r"[<>\x00-\x1f\x7f]")
_IDENT = re.compile(r"(?P<name>[^<>]*?)\s*<(?P<email>[^<>]*)>")


def check_identity(name: str, email: str, source: str) -> bytes:
    """``Name <email>`` as bytes, or InvalidIdentityError naming ``source``."""
    name = name.strip()
    shown = f"{name} <{email}>"
    if not name:
        raise InvalidIdentityError(source, shown, "the name is empty")
    if _BAD.search(name):
        raise InvalidIdentityError(source, shown, "the name contains '<', '>' or a control character")
    if _BAD.search(email):
        raise InvalidIdentityError(source, shown, "the email contains '<', '>' or a control character")
    return f"{name} <{email}>".encode()


def parse_identity(text: str, source: str) -> bytes:
    """Parse ``Name <email>`` (or a bare name) as given in ``source``."""
    text = text.strip()
    if "<" not in text and ">" not in text:
        return check_identity(text, _default_email(), source)
    m = _IDENT.fullmatch(text)
    if m is None:
        raise InvalidIdentityError(source, text, "expected 'Name <email>'")
    return check_identity(m["name"], m["email"], source)


def _default_email() -> str:
    return f"{_login()}@{os.uname().nodename}"  # gethostname(), without importing socket


def _login() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in containers without a passwd entry
        return "casstore"


def _git_identity(store_path: str | None) -> tuple[str | None, str | None, str]:
    """git's user.name and user.email, the store's config first, and where they came from."""
    backends = []
    if store_path is not None and os.path.isfile(os.path.join(store_path, "config")):
        try:
            backends.append(ConfigFile.from_path(os.path.join(store_path, "config")))
        except (OSError, ValueError):
            pass  # a damaged store config is reported by the store itself, not here
    backends.extend(StackedConfig.default_backends())
    name = email = None
    for cfg in backends:
        try:
            name = name or cfg.get((b"user",), b"name").decode("utf-8", "replace")
        except KeyError:
            pass
        try:
            email = email or cfg.get((b"user",), b"email").decode("utf-8", "replace")
        except KeyError:
            pass
    return name, email, "git config (user.name / user.email)"


def author(store_path: str | None = None) -> bytes:
    """The identity to record, validated; see the module docstring for its sources.

    Raises:
        InvalidIdentityError: the configured identity would make a commit that
            ``git fsck --strict`` rejects.
    """
    env = os.environ.get("CAS_AUTHOR")
    if env:
        return parse_identity(env, "CAS_AUTHOR")
    name, email, source = _git_identity(store_path)
    if name or email:
        return check_identity(name or _login(), email or _default_email(), source)
    return check_identity(_login(), _default_email(), "the login name")
