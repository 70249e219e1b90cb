"""The web application: HTML pages and the JSON API over one Store.

Routes (every page has a JSON twin built from the same dict, see data.py)::

    /                                   /api/domains
    /d/{domain}?state=&page=            /api/domains/{domain}/models?state=&offset=&limit=
    /d/{domain}/log?page=               /api/domains/{domain}/log?offset=&limit=
    /d/{domain}/m/{id}                  /api/domains/{domain}/models/{id}
    /d/{domain}/compare?a=&b=           /api/domains/{domain}/compare?a=&b=
    /d/{domain}/metrics?keys=&keys=     /api/domains/{domain}/metrics?limit=
    /d/{domain}/m/{id}/view/{path}      /api/domains/{domain}/models/{id}/preview/{path}
    /search?q=                          /api/search?q=
    /files/{domain}/{id}/{path}         (download, streamed and verified)
    /raw/{domain}/{id}/{path}           (an image shown on a file page)
    /api/openapi.json                   (the API's OpenAPI description)

Safety: domains and IDs go through the same validation as everywhere else; a
file is found by comparing ``path`` with the manifest's names, never by opening
a path, so no URL can name anything outside the store.  Who may ask is guard.py's
(a token, or loopback Host names only).  State changes (writes.py) exist only
with ``write=True``, which requires a token; files.py sends stored files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib import resources
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from ..errors import (
    CasError,
    InvalidIdError,
    ModelNotFoundException,
    NoteError,
    StateNotFoundException,
    UnsafePathError,
    UnsignedModelError,
)
from ..store import Store
from ..util import progress
from ..util.names import shown
from ..version import __version__
from . import chart, data, preview, table
from .downloads import Budget, Limits
from .files import add_file_routes
from .guard import add_guard, local
from .writes import add_write_routes

log = logging.getLogger("casstore.serve")
PAGE = 50
#: domains up to this many models: a sorted page waits for the domain's table to be built
#: (~1 s per 1,000 models); bigger ones answer newest first meanwhile (``pending``)
TABLE_WAIT_MODELS = 5000


def human(n: int | None) -> str:
    """A byte count as the pages show it (``-``: not known)."""
    return "-" if n is None else progress.human(n)


def _templates() -> Environment:
    # every value a page shows goes through shown(): a stored name with U+202E or a
    # control character is displayed escaped, never as the name it imitates
    env = Environment(loader=PackageLoader("casstore.serve", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      finalize=lambda v: shown(v) if isinstance(v, str) and not isinstance(v, Markup) else v)
    env.filters["human"] = human
    env.globals["with_query"] = _with
    env.filters["markdown"] = preview.markdown
    env.globals["version"] = __version__
    return env


def _preview_json(p: dict[str, Any]) -> dict[str, Any]:
    """A preview for the API: rendered Markdown as a string."""
    return {k: str(v) if k == "html" else v for k, v in p.items()}


def _columns(cols: str | None) -> list[str] | None:
    """``cols=a,b`` as a list (None: the default columns)."""
    out = [c.strip() for c in (cols or "").split(",") if c.strip()]
    return out or None


def _with(query: dict[str, str], **changes: Any) -> str:
    """``?query`` with ``changes`` applied (a None value drops the key): links that keep the filters."""
    q = {**query, **changes}
    return "?" + urlencode({k: v for k, v in q.items() if v is not None and v != ""})


def _status(e: Exception) -> int:
    if isinstance(e, (InvalidIdError, UnsafePathError, table.FilterError, NoteError)):
        return 400
    if isinstance(e, (ModelNotFoundException, StateNotFoundException, FileNotFoundError)):
        return 404
    if isinstance(e, UnsignedModelError):  # cas.requireSigned refuse: the store's policy, not a fault
        return 403
    return 500


def create_app(store: Store, *, token: str | None = None, write: bool = False,  # noqa: C901, PLR0915 - declares every route in one closure
               limits: Limits | None = None) -> FastAPI:
    """The ASGI application serving ``store``.

    ``write=True`` adds state changes (set/unset a model's state), tags and notes,
    and requires ``token``.  The app never writes anything else to the store.  ``limits``
    bound downloads (default: ``Limits()``; ``cas serve`` reads the store's settings).
    """
    if write and not token:
        raise ValueError("write mode needs a token")
    app = FastAPI(title="casstore", version=__version__, openapi_url="/api/openapi.json",
                  docs_url=None, redoc_url=None,  # their pages load scripts from a CDN
                  description="Read-only JSON view of a casstore store (the pages of `cas serve` use the same data).")
    env = _templates()
    for name in env.list_templates():
        env.get_template(name)  # compile now, not during someone's first request
    cache = data.Background()
    budget = Budget(limits or Limits())

    views = table.Views()

    def rows(domain: str) -> Callable[[], list[dict[str, Any]] | None]:
        """The domain's table (table.build), cached per history head; None while a big
        domain's is still being built.  A domain of up to TABLE_WAIT_MODELS models is
        waited for (a few seconds); a bigger one answers at once and builds meanwhile."""
        head = store.history_head(domain)

        def get() -> list[dict[str, Any]] | None:
            # counting is one directory listing (0.4 s at 100,000 models), done in the background
            n = cache.get("count:" + domain, head, lambda: data.count_models(store, domain), 10.0)
            wait = 60.0 if n is not None and n <= TABLE_WAIT_MODELS else 0.5
            def compute() -> list[dict[str, Any]]:
                out = table.update(store, domain, head, cache.previous("table:" + domain))
                if len(out) != data.count_models(store, domain):  # a check on the update: start over
                    out = table.build(store, domain, head)
                return out

            value: list[dict[str, Any]] | None = cache.get("table:" + domain, head, compute, wait, stale=False)
            return value

        return get

    def count(domain: str) -> Callable[[], int | None]:
        """The domain's model count, from the background (None until known)."""
        head = store.history_head(domain)
        return lambda: cache.get("count:" + domain, head, lambda: data.count_models(store, domain), 0)

    static_dir = str(resources.files("casstore.serve") / "static")
    app.mount("/static", StaticFiles(directory=static_dir), name="static")

    def render(request: Request, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        html = env.get_template(name).render(request=request, write=write, store_path=store.path, **ctx)
        return HTMLResponse(html, status_code=status)

    def wants_json(request: Request) -> bool:
        return request.url.path.startswith("/api/")

    def error_response(request: Request, e: Exception) -> Response:
        status = _status(e)
        body: dict[str, Any] = {"error": str(e), "type": type(e).__name__}
        for attr in ("domain", "model_id", "oid", "path", "state"):
            if isinstance(getattr(e, attr, None), str):
                body[attr] = getattr(e, attr)
        if status == 500 and isinstance(request.path_params.get("domain"), str):
            body.setdefault("domain", request.path_params["domain"])  # which domain is damaged
        if status == 500:
            log.error("%s %s: %s", request.method, request.url.path, e)
        if wants_json(request):
            return JSONResponse(body, status_code=status)
        return render(request, "error.html", status=status, error=body)

    @app.exception_handler(CasError)
    async def _cas_error(request: Request, e: CasError) -> Response:
        return error_response(request, e)

    @app.exception_handler(FileNotFoundError)
    async def _not_found(request: Request, e: FileNotFoundError) -> Response:
        return error_response(request, e)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, e: Exception) -> Response:
        # damage casstore does not name (a ref holding garbage, an unreadable object):
        # an error page naming what failed, never a traceback (that goes to the log)
        log.error("%s %s", request.method, request.url.path, exc_info=e)
        return error_response(request, e)

    add_guard(app, token)

    # -- JSON API ----------------------------------------------------------

    @app.get("/api/domains", tags=["api"])
    def api_domains() -> dict[str, Any]:
        """Every domain: model count, newest model, last change, bytes stored; and the state names."""
        return data.domains(store, cache)

    @app.get("/api/domains/{domain}/models", tags=["api"])
    def api_models(domain: str, state: str | None = None, offset: int = Query(0, ge=0),  # noqa: PLR0913 - the query parameters of the endpoint
                   limit: int = Query(PAGE, ge=1, le=data.MAX_LIMIT), sort: str | None = None,
                   order: str = Query("desc", pattern="^(asc|desc)$"), filter: str | None = None,
                   author: str | None = None, framework: str | None = None,
                   cols: str | None = None) -> dict[str, Any]:
        """A page of the domain's models, newest first (only those in ``state`` if given).

        ``sort`` (a metric key or model_id/created/author/size/new_bytes) and ``order``;
        ``filter`` like ``accuracy > 0.9, dataset = iris`` (``,`` or ``and``), ``author``
        (part of the name), ``framework``; ``cols``: metric columns, comma-separated.
        ``pending`` says the domain's table is still being built (the page is then newest first)."""
        return data.domain_page(store, domain, offset=offset, limit=limit, state=state or None,
                                sort=sort or None, descending=order == "desc", where=filter,
                                author=author or None, framework=framework or None,
                                columns=_columns(cols), count=count(domain), rows=rows(domain), views=views)

    @app.get("/api/domains/{domain}/log", tags=["api"])
    def api_log(domain: str, offset: int = Query(0, ge=0),
                limit: int = Query(100, ge=1, le=data.MAX_LIMIT)) -> dict[str, Any]:
        """The domain's history, newest first: commits, deletions, state changes."""
        return data.history_page(store, domain, offset=offset, limit=limit)

    @app.get("/api/domains/{domain}/models/{model_id}", tags=["api"])
    def api_model(domain: str, model_id: str) -> dict[str, Any]:
        """One model: frameworks, files, metadata, states, commit, how to load it."""
        return data.model(store, domain, model_id)

    @app.get("/api/domains/{domain}/compare", tags=["api"])
    def api_compare(domain: str, a: str, b: str) -> dict[str, Any]:
        """What changed from model ``a`` to model ``b`` (like ``cas diff``)."""
        return data.compare(store, domain, a, b)

    @app.get("/api/domains/{domain}/metrics", tags=["api"])
    def api_metrics(domain: str, limit: int = Query(200, ge=1, le=data.MAX_LIMIT)) -> dict[str, Any]:
        """Numeric extra_metadata values across the newest ``limit`` versions, newest last."""
        return data.metrics(store, domain, limit=limit)

    @app.get("/api/domains/{domain}/models/{model_id}/preview/{path:path}", tags=["api"])
    def api_preview(domain: str, model_id: str, path: str) -> dict[str, Any]:
        """A look inside one file without downloading it: text, JSON, CSV rows, Markdown,
        images (``kind: image``, bytes at /raw/...), safetensors/npy tensor names, dtypes, shapes."""
        return _preview_json(preview.preview(store, domain, model_id, path))

    @app.get("/api/search", tags=["api"])
    def api_search(q: str = "") -> dict[str, Any]:
        """Models of every domain matching all words of ``q``: ``accuracy>0.9``, ``dataset=iris``,
        ``state:production``, ``author:ana``, ``framework:sklearn``, ``domain:zoo``, ``id:v3``, or a
        bare word (part of an ID, author, framework or metadata value).  At most 200."""
        return data.search(store, q, lambda d: rows(d)())

    @app.get("/api/states", tags=["api"])
    def api_states() -> list[str]:
        """Every model state that was created."""
        return store.list_model_states()

    if write:
        add_write_routes(app, store)
    add_file_routes(app, store, budget)


    # -- pages -------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page_domains(request: Request) -> Response:
        return render(request, "domains.html", d=data.domains(store, cache), api="/api/domains")

    @app.get("/d/{domain}", response_class=HTMLResponse, include_in_schema=False)
    def page_domain(request: Request, domain: str, state: str | None = None,  # noqa: PLR0913 - the query parameters of the page
                    page: int = Query(1, ge=1), sort: str | None = None,
                    order: str = Query("desc", pattern="^(asc|desc)$"), filter: str | None = None,
                    author: str | None = None, framework: str | None = None,
                    cols: str | None = None) -> Response:
        given = request.query_params.multi_items()
        if any(not v for _, v in given):
            # the filter form submits its empty boxes too: one clean address instead
            clean = [(k, v) for k, v in given if v]
            return RedirectResponse(local(request.url.path) + ("?" + urlencode(clean) if clean else ""), 303)
        d = data.domain_page(store, domain, offset=(page - 1) * PAGE, limit=PAGE, state=state or None,
                             sort=sort or None, descending=order == "desc", where=filter,
                             author=author or None, framework=framework or None,
                             columns=_columns(cols), count=count(domain), rows=rows(domain), views=views)
        q = {k: v for k, v in (("state", state), ("sort", sort), ("order", order if sort else None),
                                ("filter", filter), ("author", author), ("framework", framework),
                                ("cols", cols)) if v}
        return render(request, "domain.html", d=d, page=page, states=store.list_model_states(),
                      api=f"/api/domains/{domain}/models?" + urlencode({**q, "offset": d["offset"]}),
                      query=q)

    @app.get("/search", response_class=HTMLResponse, include_in_schema=False)
    def page_search(request: Request, q: str = "") -> Response:
        d = data.search(store, q, lambda dom: rows(dom)())
        cols = table.default_columns(d["results"], limit=4)
        return render(request, "search.html", d=d, columns=cols, api="/api/search?" + urlencode({"q": q}))

    @app.get("/d/{domain}/log", response_class=HTMLResponse, include_in_schema=False)
    def page_log(request: Request, domain: str, page: int = Query(1, ge=1)) -> Response:
        d = data.history_page(store, domain, offset=(page - 1) * 100, limit=100)
        return render(request, "log.html", d=d, page=page, api=f"/api/domains/{domain}/log?offset={d['offset']}")

    @app.get("/d/{domain}/m/{model_id}", response_class=HTMLResponse, include_in_schema=False)
    def page_model(request: Request, domain: str, model_id: str) -> Response:
        m = data.model(store, domain, model_id)
        return render(request, "model.html", m=m, all_states=store.list_model_states(),
                      api=f"/api/domains/{domain}/models/{model_id}")

    @app.get("/d/{domain}/m/{model_id}/view/{path:path}", response_class=HTMLResponse, include_in_schema=False)
    def page_file(request: Request, domain: str, model_id: str, path: str) -> Response:
        p = preview.preview(store, domain, model_id, path)
        return render(request, "file.html", p=p, api=f"/api/domains/{domain}/models/{model_id}/preview/"
                      + quote(path))

    @app.get("/d/{domain}/compare", response_class=HTMLResponse, include_in_schema=False)
    def page_compare(request: Request, domain: str, a: str | None = None, b: str | None = None) -> Response:
        if not a or not b:
            # default: the newest model against the one before it
            page = data.list_page(store, domain, limit=2)
            ids = [r["model_id"] for r in page["models"]]
            if len(ids) < 2:
                return render(request, "error.html", status=404,
                              error={"error": f"domain {domain!r} has fewer than two models to compare"})
            return RedirectResponse(f"/d/{domain}/compare?" + urlencode({"a": a or ids[1], "b": b or ids[0]}), 303)
        d = data.compare(store, domain, a, b)
        return render(request, "compare.html", d=d, api=f"/api/domains/{domain}/compare?" + urlencode({"a": a, "b": b}))

    @app.get("/d/{domain}/metrics", response_class=HTMLResponse, include_in_schema=False)
    def page_metrics(request: Request, domain: str) -> Response:
        d = data.metrics(store, domain)
        keys = request.query_params.getlist("keys")
        labels = [v["model_id"] for v in d["versions"]]
        picked = [k for k in keys if k in d["series"]][:len(chart.COLOURS)]
        combined = Markup(chart.chart(", ".join(picked), labels, {k: d["series"][k] for k in picked})) \
            if picked else None
        charts = [(k, Markup(chart.line_chart(k, labels, vals))) for k, vals in d["series"].items()]
        return render(request, "metrics.html", d=d, charts=charts, combined=combined, picked=picked,
                      api=f"/api/domains/{domain}/metrics")

    return app
