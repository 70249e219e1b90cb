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
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from dulwich.objects import ObjectID

from ..errors import CasError, ModelNotFoundException
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
    return [row_of(store.get_model_info(domain, mid, annotations=False))
            for mid, _ in store.iter_model_commits(domain, head)]


def update(store: Store, domain: str, head: ObjectID | None,
           old: tuple[Any, list[dict[str, Any]] | None] | None) -> list[dict[str, Any]]:
    """The table at ``head``, from ``old`` (the head and table computed before) when the
    history since is a straight line: only the models committed or deleted since are read
    (a commit to a 100,000-model domain costs one manifest, not 100,000).  Otherwise,
    or when the result does not hold as many models as the domain has refs, ``build``."""
    if old is None or not isinstance(old[0], bytes) or old[1] is None or head is None:
        return build(store, domain, head)
    events = store.events_since(domain, head, ObjectID(old[0]))
    if events is None:
        return build(store, domain, head)
    touched: list[str] = []
    for ev in events:
        if ev.event in ("commit", "delete") and ev.model_id not in touched:
            touched.append(ev.model_id)
    fresh = []
    for mid in touched:
        try:
            fresh.append(row_of(store.get_model_info(domain, mid, annotations=False)))
        except ModelNotFoundException:
            continue  # deleted since
    gone = set(touched)
    return fresh + [r for r in old[1] if r["model_id"] not in gone]


def is_result(key: str) -> bool:
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
        seen.update(k for k in r["metrics"] if is_result(k))
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
    values: list[Any] = [r.get(key) for r in rows] if key in BUILTIN else [r["metrics"].get(key) for r in rows]
    have = [i for i, v in enumerate(values) if v is not None]
    have.sort(key=lambda i: values[i], reverse=descending)
    return [rows[i] for i in have] + [r for r, v in zip(rows, values, strict=True) if v is None]


class Views:
    """The last few sorted/filtered selections of a table, so that paging through one
    (or reloading it) does not sort 100,000 rows again.  A selection is kept with the
    table it came from (a new history head means a new table, and misses)."""

    def __init__(self, size: int = 16) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._kept: OrderedDict[tuple[Any, ...], tuple[list[dict[str, Any]], list[dict[str, Any]]]] = OrderedDict()

    def get(self, rows: list[dict[str, Any]], key: tuple[Any, ...],
            compute: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
        with self._lock:
            have = self._kept.get(key)
            if have is not None and have[0] is rows:
                self._kept.move_to_end(key)
                return have[1]
        out = compute()
        with self._lock:
            self._kept[key] = (rows, out)
            while len(self._kept) > self._size:
                self._kept.popitem(last=False)
        return out


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
FIELDS = ("state", "author", "framework", "domain", "id", "tag")


def parse_query(q: str) -> list[tuple[str, str, Any]]:
    """A search: words, all of which must match.  ``KEY OP VALUE`` (``accuracy>0.9``,
    ``dataset=iris``, ``state:production``, ``author:ana``, ``framework:sklearn``,
    ``domain:zoo``, ``id:v3``, ``tag:candidate``) or a bare word (part of an ID, author,
    framework, metadata value, tag or note)."""
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
    if key == "tag":
        return text in (t.lower() for t in row.get("tags", ()))
    return text in row["model_id"].lower()


def search_match(domain: str, row: dict[str, Any], states: list[str], terms: list[tuple[str, str, Any]]) -> bool:
    """Whether the model (its table row and current ``states``) matches every term."""
    for key, op, want in terms:
        if op == "~":
            hay = [row["model_id"], row["author"], *row["frameworks"].values(), *row["text"].values(),
                   *row.get("tags", ()), *(n["text"] for n in row.get("notes", ()))]
            if not any(want in h.lower() for h in hay):
                return False
        elif key in FIELDS and op == "=":
            ok = _field_match(key, str(want).lower(), domain, row, states)
            if not ok:
                return False
        elif not _matches(row, [(key, op, want)]):
            return False
    return True


#: metric names where lower is better (a loss); anything else numeric: higher is better
LOWER_IS_BETTER = re.compile(r"loss|err|mse|mae|rmse|perplexity|latency|time|size", re.I)


def side_by_side(a: Any, b: Any) -> list[dict[str, Any]]:
    """Every metadata leaf of two models (dotted keys; lists are leaves), with its status
    (changed, added, removed, same) and, for numbers, the change from a to b and whether
    that is an improvement (``better``: lower is better for losses and errors)."""
    fa, fb = dict(_leaves(a)), dict(_leaves(b))
    out = []
    for key in sorted(set(fa) | set(fb)):
        va, vb = fa.get(key, _MISSING), fb.get(key, _MISSING)
        status = ("added" if va is _MISSING else "removed" if vb is _MISSING
                  else "same" if va == vb and type(va) is type(vb) else "changed")
        row: dict[str, Any] = {"key": key, "a": None if va is _MISSING else va,
                               "b": None if vb is _MISSING else vb, "status": status}
        if (status == "changed" and _is_number(va) and _is_number(vb)):
            delta = vb - va
            row["delta"] = delta
            row["delta_text"] = ("+" if delta > 0 else "") + format_column([delta])[0]
            if delta:
                row["better"] = (delta < 0) == bool(LOWER_IS_BETTER.search(key.rsplit(".", 1)[-1]))
        out.append(row)
    return out


_MISSING: Any = object()


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _leaves(meta: Any, prefix: str = "", depth: int = 0) -> Iterator[tuple[str, Any]]:
    if isinstance(meta, dict) and depth <= 6:
        for k, v in meta.items():
            yield from _leaves(v, f"{prefix}{k}.", depth + 1)
    elif prefix:
        yield prefix[:-1], meta
