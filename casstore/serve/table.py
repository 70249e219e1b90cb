"""The domain page's table: metric columns, sorting, filtering and rounding.

A page sorted by a metric, or filtered, needs every model's metadata.  Reading
100,000 manifests takes tens of seconds, so it is done once per domain version:
:func:`build` makes a compact table (one small dict per model: its ID, author,
frameworks, sizes, numeric metadata and short scalar metadata for search), kept
by the server's :class:`~casstore.serve.data.Background` cache keyed by the
domain history's head.  Any commit, deletion or state change moves the head, so
a table is never stale; requests sort and filter it in memory (~0.1 s for
100,000 rows).  The unsorted, unfiltered first page never needs it.
"""

from __future__ import annotations

import math
import operator
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from dulwich.objects import ObjectID

from ..errors import CasError
from ..store import Store

#: columns every table row has; any other sort key is a metric
BUILTIN = ("model_id", "created", "author", "size", "new_bytes")
#: metric columns shown when the visitor picks none
DEFAULT_COLUMNS = 6
#: segments that mark a framework's hyperparameters (modelstore keeps them under
#: ``modelstore.model.parameters``) or bookkeeping rather than a result
NOT_RESULTS = {"parameters", "params", "hyperparameters", "code", "storage", "environment"}
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge, "<=": operator.le, "!=": operator.ne, "==": operator.eq,
    ">": operator.gt, "<": operator.lt, "=": operator.eq,
}
_CLAUSE = re.compile(r"^\s*([^<>=!\s]+)\s*(>=|<=|!=|==|>|<|=)\s*([^<>=!\s].*?)\s*$")


class FilterError(CasError, ValueError):
    """A filter expression that cannot be read; the message says which part."""


def flatten(meta: Any, prefix: str = "", depth: int = 0) -> Iterator[tuple[str, Any]]:
    """Scalar leaves of extra_metadata as (``a.b.c``, value): numbers, strings, booleans."""
    if not isinstance(meta, dict) or depth > 4:
        return
    for k, v in meta.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            yield from flatten(v, key + ".", depth + 1)
        elif isinstance(v, (bool, int, float, str)):
            yield key, v


def numbers(meta: Any) -> dict[str, float | int]:
    """The numeric leaves (finite; booleans are not numbers)."""
    out: dict[str, float | int] = {}
    for k, v in flatten(meta):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if isinstance(v, float) and not math.isfinite(v):
            continue
        out[k] = v
    return out


def row_of(info: dict[str, Any]) -> dict[str, Any]:
    """The table row of one model, from ``Store.get_model_info``."""
    st = info.get("stats") or {}
    meta = info.get("extra_metadata")
    return {
        "model_id": info["model_id"],
        "commit": info["commit"],
        "created": info["created"],
        "author": info["author"],
        "frameworks": {k: v["framework"] for k, v in info["frameworks"].items()},
        "size": sum(f["size"] for f in info["files"]),
        "new_bytes": st.get("bytes_stored"),
        "metrics": numbers(meta),
        # for search: short scalar values only (a long text is not a key to look up)
        "text": {k: str(v) for k, v in flatten(meta) if not isinstance(v, str) or len(v) <= 200},
    }


def build(store: Store, domain: str, head: ObjectID | None) -> list[dict[str, Any]]:
    """Every live model's row, newest first: one manifest read per model."""
    return [row_of(store.get_model_info(domain, mid)) for mid, _ in store.iter_model_commits(domain, head)]


def _is_result(key: str) -> bool:
    return not any(part.lower() in NOT_RESULTS for part in key.split("."))


def default_columns(rows: Iterable[dict[str, Any]], limit: int = DEFAULT_COLUMNS) -> list[str]:
    """The metric keys most models share, hyperparameters left out.

    A modelstore import keeps the user's own metadata under ``modelstore.extra``:
    those come first when present.
    """
    seen: Counter[str] = Counter()
    n = 0
    for r in rows:
        n += 1
        seen.update(k for k in r["metrics"] if _is_result(k))
    if not n:
        return []
    common = [k for k, c in seen.items() if c * 2 >= n] or list(seen)

    def rank(k: str) -> tuple[int, int, str]:
        return (0 if k.startswith("modelstore.extra.") else 1, -seen[k], k)

    return sorted(common, key=rank)[:limit]


def parse_filter(text: str) -> list[tuple[str, str, Any]]:
    """``accuracy > 0.9, loss <= 0.3`` (``,`` or ``and`` between clauses) as (key, op, value).

    A value that reads as a number compares as one; anything else compares as text
    (``dataset = iris-v1``).

    Raises:
        FilterError: a clause that is not ``KEY OP VALUE``.
    """
    out: list[tuple[str, str, Any]] = []
    for clause in re.split(r",|\s+and\s+", text.strip()):
        if not clause.strip():
            continue
        m = _CLAUSE.match(clause)
        if m is None:
            raise FilterError(f"cannot read filter {clause.strip()!r}: write KEY OP VALUE, e.g. accuracy > 0.9 "
                              f"(OP is one of > >= < <= = !=)")
        key, op, raw = m.groups()
        value: Any = raw.strip("'\"")
        try:
            value = float(raw)
        except ValueError:
            pass
        out.append((key, op, value))
    return out


def _matches(row: dict[str, Any], clauses: list[tuple[str, str, Any]]) -> bool:
    for key, op, want in clauses:
        if key in BUILTIN:
            have: Any = row.get(key)
        elif isinstance(want, float):
            have = row["metrics"].get(key)
        else:
            have = row["text"].get(key)
        if have is None:
            return False
        if isinstance(want, float) and not isinstance(have, (int, float)):
            try:
                have = float(have)
            except (TypeError, ValueError):
                return False
        if isinstance(have, (int, float)) and not isinstance(want, float):
            have = str(have)
        if not _OPS[op](have, want):
            return False
    return True


def select(rows: list[dict[str, Any]], *, clauses: list[tuple[str, str, Any]] | None = None,
           members: dict[str, str] | None = None, author: str | None = None,
           framework: str | None = None) -> list[dict[str, Any]]:
    """The rows that pass every filter (``members``: state members, model ID -> commit)."""
    needle = author.lower() if author else None
    out = []
    for r in rows:
        if members is not None and members.get(r["model_id"]) != r["commit"]:
            continue
        if needle is not None and needle not in r["author"].lower():
            continue
        if framework and framework not in r["frameworks"].values():
            continue
        if clauses and not _matches(r, clauses):
            continue
        out.append(r)
    return out


def sort_rows(rows: list[dict[str, Any]], key: str, descending: bool) -> list[dict[str, Any]]:
    """Sorted by a built-in column or a metric; models lacking the value go last either way."""
    def value(r: dict[str, Any]) -> Any:
        return r.get(key) if key in BUILTIN else r["metrics"].get(key)

    have = [r for r in rows if value(r) is not None]
    lack = [r for r in rows if value(r) is None]
    return sorted(have, key=value, reverse=descending) + lack


def format_column(values: list[float | int | None]) -> list[str]:
    """Each value with the fewest significant digits (3 to 12) that keep the column's
    distinct values distinct: 0.91234 and 0.91236 are not both shown as 0.912."""
    present = {v for v in values if v is not None}
    digits = 3
    while digits < 12 and len({_fmt(v, digits) for v in present}) < len(present):
        digits += 1
    return ["" if v is None else _fmt(v, digits) for v in values]


def _fmt(v: float | int, digits: int) -> str:
    if isinstance(v, int) and abs(v) < 10 ** 15:
        return str(v)
    return f"{v:.{digits}g}"


#: query words that name a model's fields rather than a metadata key
FIELDS = ("state", "author", "framework", "domain", "id")


def parse_query(q: str) -> list[tuple[str, str, Any]]:
    """A search: words, all of which must match.  ``KEY OP VALUE`` (``accuracy>0.9``,
    ``dataset=iris``, ``state:production``, ``author:ana``, ``framework:sklearn``,
    ``domain:zoo``, ``id:v3``) or a bare word (part of an ID, author, framework or
    metadata value)."""
    q = re.sub(r"\s*(>=|<=|!=|==|>|<|=|:)\s*", r"\1", q.strip())
    out: list[tuple[str, str, Any]] = []
    for word in q.split():
        if ":" in word and not _CLAUSE.match(word):
            key, _, value = word.partition(":")
            out.append((key.lower(), "=", value))
            continue
        m = _CLAUSE.match(word)
        if m is None:
            out.append(("", "~", word.lower()))
            continue
        key, op, raw = m.groups()
        try:
            out.append((key, op, float(raw)))
        except ValueError:
            out.append((key, op, raw.strip("'\"")))
    return out


def _field_match(key: str, text: str, domain: str, row: dict[str, Any], states: list[str]) -> bool:
    if key == "state":
        return text in (s.lower() for s in states)
    if key == "author":
        return text in row["author"].lower()
    if key == "framework":
        return text in (f.lower() for f in row["frameworks"].values())
    if key == "domain":
        return text == domain.lower()
    return text in row["model_id"].lower()


def search_match(domain: str, row: dict[str, Any], states: list[str], terms: list[tuple[str, str, Any]]) -> bool:
    """Whether the model (its table row and current ``states``) matches every term."""
    for key, op, want in terms:
        if op == "~":
            hay = [row["model_id"], row["author"], *row["frameworks"].values(), *row["text"].values()]
            if not any(want in h.lower() for h in hay):
                return False
        elif key in FIELDS and op == "=":
            ok = _field_match(key, str(want).lower(), domain, row, states)
            if not ok:
                return False
        elif not _matches(row, [(key, op, want)]):
            return False
    return True
