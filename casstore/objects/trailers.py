"""Commit trailers: the ``Cas-Key: value`` lines that end casstore's commit messages.

Model commits (``Cas-Domain``, ``Cas-Model``, ``Cas-Created``, ``Cas-Restored-From``
...), history events (``Cas-Event``, ``Cas-Commit``, ``Cas-Newest`` ...) and a
pull's merge commits (``Cas-Remote``, ``Cas-Conflicts``) are written and read here
only, so that a trailer is always read as a whole line, never found by a substring
search of the message (docs/format.md lists them).
"""

from __future__ import annotations

from collections.abc import Mapping

PREFIX = "Cas-"


def trailer_line(key: str, value: str) -> str:
    """``Cas-<key>: <value>`` (``key`` without the prefix; ``value`` one line)."""
    return f"{PREFIX}{key}: {value}"


def format_trailers(trailers: Mapping[str, str]) -> str:
    """The trailer lines of ``trailers`` (keys without the prefix), each ending in a newline."""
    return "".join(trailer_line(k, v) + "\n" for k, v in trailers.items())


def parse_trailers(message: bytes) -> dict[str, str]:
    """The ``Cas-Key: value`` lines of a commit message, by full key (``Cas-Event``); the last wins."""
    out: dict[str, str] = {}
    for line in message.decode("utf-8", "replace").splitlines():
        if line.startswith(PREFIX) and ": " in line:
            k, v = line.split(": ", 1)
            out[k] = v
    return out


def has_trailer(message: bytes, key: str, value: str) -> bool:
    """Whether the message's trailer ``key`` (full: ``Cas-Event``) is ``value``."""
    return parse_trailers(message).get(key) == value
