"""What the pages and the JSON API show: plain dicts built from the Store's public API.

Every page is rendered from the very dict its ``/api/...`` twin returns, so the
two cannot disagree.  Nothing here writes to the store.

Listing a domain cheaply: ``Store.list_models`` reads every model's commit to sort
by creation time, which for 100,000 models takes seconds.  A page needs only the
newest few, and the domain history already lists commits newest first: walking it
from its head and keeping the commit events whose model ref still points at the
same commit gives the newest models after reading about as many history commits
as the page shows (plus deletions and state changes in between).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from itertools import islice
from typing import Any

from dulwich.objects import ObjectID

from ..errors import DomainNotFoundException, StateNotFoundException
from ..store import Store
from ..util.jsonsafe import to_json
from ..util.names import check_domain, check_state
from . import table

log = logging.getLogger("casstore.serve")
MAX_LIMIT = 500


def _iso(t: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _head(store: Store, domain: str) -> ObjectID | None:
    return store.history_head(domain)


def count_models(store: Store, domain: str) -> int:
    """How many model refs the domain has (``Store.count_models``: a listing, no object read)."""
    return store.count_models(domain)


def _require_domain(store: Store, domain: str) -> ObjectID | None:
    head = _head(store, domain)
    if head is None and not count_models(store, domain):
        raise DomainNotFoundException(domain)
    return head


def domain_states(store: Store, domain: str, head: ObjectID | None) -> dict[str, dict[str, str]]:
    """state -> model ID -> model commit, from the domain index at ``head`` (``Store.model_states``)."""
    return store.model_states(domain, head)


def model_row(store: Store, domain: str, model_id: str, states: dict[str, dict[str, str]]) -> dict[str, Any]:
    """One line of a domain's model table (with its numeric metadata, ``metrics``)."""
    row = table.row_of(store.get_model_info(domain, model_id, annotations=False))
    del row["text"]
    row["states"] = sorted(s for s, members in states.items() if members.get(model_id) == row["commit"])
    return row


def list_page(store: Store, domain: str, *, offset: int = 0, limit: int = 50,  # noqa: PLR0913 - the listing's query options, keyword-only
              state: str | None = None, count: Callable[[], int | None] | None = None) -> dict[str, Any]:
    """One page of the domain's models, newest first, optionally only those in ``state``.

    Costs about ``offset + limit`` history commits plus ``limit`` manifests,
    whatever the size of the domain.  ``total`` is exact when the page reaches
    the end or filters by state; otherwise it is what ``count`` says (default:
    ``count_models``, a directory listing of every model ref; the server passes
    a background count instead, and ``total`` is None until it is known).
    """
    head = _require_domain(store, domain)
    offset, limit = max(offset, 0), min(max(limit, 1), MAX_LIMIT)
    states = domain_states(store, domain, head)
    members: dict[str, str] | None = None
    if state is not None:
        check_state(state)
        if state not in store.list_model_states():
            raise StateNotFoundException(state)
        members = states.get(state, {})
    rows: list[dict[str, Any]] = []
    skipped = 0
    more = False
    for mid, sha in store.iter_model_commits(domain, head):
        if members is not None and members.get(mid) != sha:
            continue
        if skipped < offset:
            skipped += 1
            continue
        if len(rows) == limit:
            more = True
            break
        rows.append(model_row(store, domain, mid, states))
    if members is not None:
        total: int | None = len(members)
    elif not more:
        total = skipped + len(rows)
    else:
        total = (count or (lambda: count_models(store, domain)))()
    return {"domain": domain, "state": state, "offset": offset, "limit": limit, "total": total,
            "has_more": more, "models": rows}


def domain_page(store: Store, domain: str, *, offset: int = 0, limit: int = 50, state: str | None = None,  # noqa: PLR0913 - the page's query options, keyword-only
                sort: str | None = None, descending: bool = True, where: str | None = None,
                author: str | None = None, framework: str | None = None, columns: list[str] | None = None,
                count: Callable[[], int | None] | None = None,
                rows: Callable[[], list[dict[str, Any]] | None] | None = None,
                views: table.Views | None = None) -> dict[str, Any]:
    """The domain page: ``list_page`` plus metric columns, sorting and filters.

    Newest first with at most a state filter is ``list_page`` (cost independent of
    the domain's size).  Sorting or any other filter works on the domain's table
    (``table.build``): ``rows`` returns it (the server's cached one; None while it
    is being built, and then the page is newest first with ``pending`` set).
    ``columns`` are metric keys (default: ``table.default_columns`` of the page);
    ``views`` keeps recent selections (the server's), so paging does not sort again.

    Raises:
        FilterError: ``where`` cannot be read.
    """
    clauses = table.parse_filter(where) if where else []
    needs_table = bool(sort or clauses or author or framework)
    pending = False
    d: dict[str, Any] | None = None
    if needs_table:
        head = _require_domain(store, domain)
        everything = (rows or (lambda: table.build(store, domain, head)))()
        if everything is None:
            pending = True
        else:
            offset, limit = max(offset, 0), min(max(limit, 1), MAX_LIMIT)
            states = domain_states(store, domain, head)
            members = None
            if state is not None:
                check_state(state)
                if state not in store.list_model_states():
                    raise StateNotFoundException(state)
                members = states.get(state, {})
            def choose() -> list[dict[str, Any]]:
                chosen = table.select(everything, clauses=clauses, members=members, author=author,
                                      framework=framework)
                return table.sort_rows(chosen, sort, descending) if sort else chosen

            key = (domain, state, sort, descending, where, author, framework)
            chosen = (views or table.Views(0)).get(everything, key, choose)
            page = []
            for r in chosen[offset:offset + limit]:
                row = {k: v for k, v in r.items() if k != "text"}
                row["states"] = sorted(s for s, m in states.items() if m.get(r["model_id"]) == r["commit"])
                page.append(row)
            d = {"domain": domain, "state": state, "offset": offset, "limit": limit, "total": len(chosen),
                 "has_more": offset + limit < len(chosen), "models": page}
    if d is None:
        d = list_page(store, domain, offset=offset, limit=limit, state=state, count=count)
    cols = columns if columns else table.default_columns(d["models"])
    shown_cols = {c: table.format_column([r["metrics"].get(c) for r in d["models"]]) for c in cols}
    for i, r in enumerate(d["models"]):
        r["metric_text"] = {c: shown_cols[c][i] for c in cols}
    d.update({"columns": cols, "sort": sort, "descending": descending, "where": where or "",
              "author": author or "", "framework": framework or "", "pending": pending})
    return d


def search(store: Store, q: str, rows: Callable[[str], list[dict[str, Any]] | None],
           limit: int = 200) -> dict[str, Any]:
    """Models of every domain matching ``q`` (``table.parse_query``), newest first per domain.

    ``rows(domain)`` gives the domain's table (None while it is being built: the
    domain is listed in ``pending``).  At most ``limit`` results.
    """
    terms = table.parse_query(q)
    results: list[dict[str, Any]] = []
    pending: list[str] = []
    more = False
    if terms:
        for d in list_domains(store):
            everything = rows(d)
            if everything is None:
                pending.append(d)
                continue
            states = domain_states(store, d, store.history_head(d))
            notes = store.domain_annotations(d)  # tags and notes are searchable too
            for r in everything:
                st = sorted(s for s, m in states.items() if m.get(r["model_id"]) == r["commit"])
                if r["model_id"] in notes:
                    r = {**r, **notes[r["model_id"]]}
                if table.search_match(d, r, st, terms):
                    if len(results) == limit:
                        more = True
                        break
                    results.append({"domain": d, "model_id": r["model_id"], "created": r["created"],
                                    "author": r["author"], "frameworks": r["frameworks"], "states": st,
                                    "metrics": r["metrics"], "tags": r.get("tags", [])})
            if more:
                break
    return {"q": q, "terms": [list(t) for t in terms], "results": results, "has_more": more, "pending": pending}


def history_page(store: Store, domain: str, *, offset: int = 0, limit: int = 100) -> dict[str, Any]:
    """Events newest first, like ``cas log``: commits, deletions, state changes."""
    head = _require_domain(store, domain)
    offset, limit = max(offset, 0), min(max(limit, 1), MAX_LIMIT)
    events = [] if head is None else list(islice(store.iter_log(domain, head), offset, offset + limit + 1))
    more = len(events) > limit
    events = events[:limit]
    return {"domain": domain, "offset": offset, "limit": limit, "has_more": more,
            "signing_in_use": store.signing_in_use(),
            "events": [{**e.as_dict(), "signature": store.signature(domain, e.history_commit).as_dict()}
                       for e in events]}


class Background:
    """Slow answers (``Store.du``, counting a big domain's refs) computed off the request.

    Each slot (``"du"``, a domain) remembers one value and the key it was
    computed for (the domain history heads: any change moves them).  A caller
    waits at most ``wait`` seconds for a fresh value and otherwise gets the
    previous one (None the first time; always None for ``stale=False`` until the
    value for ``key`` is there), so no page hangs on a huge store.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, tuple[object, Any]] = {}
        self._running: dict[str, tuple[object, threading.Thread]] = {}

    def get(self, slot: str, key: object, compute: Callable[[], Any], wait: float, stale: bool = True) -> Any:
        with self._lock:
            have = self._values.get(slot)
            if have is not None and have[0] == key:
                return have[1]
            running = self._running.get(slot)
            if running is None or running[0] != key:
                worker = threading.Thread(target=self._run, args=(slot, key, compute), daemon=True,
                                          name=f"cas-serve-{slot}")
                self._running[slot] = (key, worker)
                worker.start()
            else:
                worker = running[1]
        if wait > 0:
            worker.join(wait)
        with self._lock:
            have = self._values.get(slot)
            if have is None or (not stale and have[0] != key):
                return None  # stale=False: the value for this key or nothing
            return have[1]

    def previous(self, slot: str) -> tuple[object, Any] | None:
        """The (key, value) the slot holds now, whatever its key (to update it from)."""
        with self._lock:
            return self._values.get(slot)

    def _run(self, slot: str, key: object, compute: Callable[[], Any]) -> None:
        try:
            value = compute()
        except Exception as e:  # a damaged object: fsck names it; the page shows no number
            log.warning("cas serve: %s: %s", slot, e)
            value = None
        with self._lock:
            self._values[slot] = (key, value)
            if self._running.get(slot, (None,))[0] == key:
                del self._running[slot]


def list_domains(store: Store) -> list[str]:
    """Every domain with model refs or a history, sorted (``Store.list_domains``: directory
    listings, no ref read), without names casstore never writes (fsck reports those)."""
    out = []
    for n in store.list_domains():
        try:
            out.append(check_domain(n))
        except ValueError:
            continue
    return out


def warm_up(store: Store) -> None:
    """Open the packs and their indexes now (reading each domain's newest event), so
    that the first visitor does not pay for it.  Costs one object per domain."""
    for d in list_domains(store):
        try:
            head = _head(store, d)
            if head is not None:
                next(store.iter_log(d, head), None)
        except Exception as e:  # one damaged domain must not stop the server: its pages name it
            log.warning("cas serve: domain %s: %s", d, e)


def domains(store: Store, cache: Background, wait: float = 2.0) -> dict[str, Any]:
    """Every domain: model count, newest model, last change, bytes stored.

    Sizes come from ``Store.du`` (it reads every manifest), computed in the
    background and waited for at most ``wait`` seconds; ``sizes_pending``
    says they are not known yet.
    """
    names = list_domains(store)
    heads = tuple((d, _head_or_error(store, d)) for d in names)
    usage = cache.get("du", heads, store.du, wait)
    sizes = usage["domains"] if usage is not None else {}
    out = []
    for d in names:
        row: dict[str, Any] = {"domain": d, "models": None, "newest": None, "last_change": None,
                               "logical_bytes": sizes[d]["logical_bytes"] if d in sizes else None,
                               "stored_bytes": sizes[d]["stored_bytes"] if d in sizes else None}
        try:
            row.update(_domain_summary(store, d))
        except Exception as e:  # one damaged domain: its row names the damage, the others stay
            log.warning("cas serve: domain %s: %s", d, e)
            row["error"] = f"{type(e).__name__}: {e}"
        out.append(row)
    return {"domains": out, "states": store.list_model_states(), "sizes_pending": usage is None}


def _head_or_error(store: Store, domain: str) -> str | None:
    """The domain history's head as hex, or the error reading it (a key for the du cache)."""
    try:
        h = _head(store, domain)
    except Exception as e:
        return f"error: {e}"
    return h.decode() if h else None


def _domain_summary(store: Store, d: str) -> dict[str, Any]:
    head = _head(store, d)
    last: dict[str, Any] | None = None
    if head is not None:
        ev = next(store.iter_log(d, head), None)
        if ev is not None:
            last = {"event": ev.event, "model_id": ev.model_id, "state": ev.state, "time": _iso(ev.time)}
    newest = next(store.iter_model_commits(d, head), None)
    return {"models": count_models(store, d), "newest": newest[0] if newest else None, "last_change": last}


def model(store: Store, domain: str, model_id: str) -> dict[str, Any]:
    """Everything about one model, plus how to load it.

    ``executes_code`` is the Store's (``frameworks.entry_executes_code``, as
    ``cas show`` says); metadata values JSON lacks are mapped as ``cas show --json``
    maps them (``util.jsonsafe``), so the page and the API show the same.
    """
    info = store.get_model_info(domain, model_id)
    states = domain_states(store, domain, _head(store, domain))
    info["states"] = sorted(s for s, members in states.items() if members.get(model_id) == info["commit"])
    card = store.model_card(domain, model_id)
    info["card"] = {"path": card[0], "markdown": card[1]} if card else None
    # who signed it (docs/signing.md): the Store's verdict, shown as `cas show` shows it
    info["signature"] = store.signature(domain, info["commit"]).as_dict()
    info["signing_in_use"] = store.signing_in_use()
    for n in info.get("notes", []):
        n["when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(n["time"]))
    info["load"] = {
        "python": f"casstore.open({store.path!r}).load({domain!r}, {model_id!r})",
        "shell": f"cas --store {store.path} download {domain} {model_id} ./{model_id}",
    }
    out: dict[str, Any] = to_json(info)
    return out


def compare(store: Store, domain: str, a: str, b: str) -> dict[str, Any]:
    """``cas diff`` plus both models' files side by side."""
    d = store.diff(domain, a, b)
    d["models"] = {
        "a": store.get_model_info(domain, a),
        "b": store.get_model_info(domain, b),
    }
    bytes_b = sum(f["size"] for f in d["models"]["b"]["files"])
    unchanged = {f["path"]: f["size"] for f in d["models"]["b"]["files"] if f["path"] in d["unchanged"]}
    d["shared"] = {
        "bytes_shared": sum(unchanged.values()) + sum(c["bytes_shared"] for c in d["changed"]),
        "bytes_b": bytes_b,
        "chunks_shared": sum(c["chunks_shared"] for c in d["changed"]) + sum(
            f["chunks"] for f in d["models"]["b"]["files"] if f["path"] in unchanged),
        "chunks_b": sum(f["chunks"] for f in d["models"]["b"]["files"]),
    }
    d["meta_side"] = table.side_by_side(d["models"]["a"]["extra_metadata"], d["models"]["b"]["extra_metadata"])
    out: dict[str, Any] = to_json(d)
    return out


def metrics(store: Store, domain: str, *, limit: int = 200) -> dict[str, Any]:
    """Numeric extra_metadata keys across the newest ``limit`` versions, oldest first."""
    head = _require_domain(store, domain)
    limit = min(max(limit, 1), MAX_LIMIT)
    versions: list[tuple[str, str, dict[str, float]]] = []
    for mid, _ in store.iter_model_commits(domain, head):
        if len(versions) == limit:
            break
        info = store.get_model_info(domain, mid, annotations=False)
        nums = {k: float(v) for k, v in table.numbers(info["extra_metadata"]).items()}
        versions.append((mid, info["created"], nums))
    versions.reverse()  # newest last
    # framework hyperparameters (modelstore.model.parameters.*) are settings, not results
    keys = sorted({k for _, _, nums in versions for k in nums if table.is_result(k)})
    return {
        "domain": domain,
        "limit": limit,
        "versions": [{"model_id": mid, "created": created} for mid, created, _ in versions],
        "series": {k: [nums.get(k) for _, _, nums in versions] for k in keys},
    }
