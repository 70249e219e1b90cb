"""The routes of write mode (``cas serve --write``): states, tags and notes, as API calls and page forms.

They exist only when the app is created with ``write=True``, which requires a token
(guard.py checks it on every request, and refuses cross-origin writes).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from ..errors import NoteError
from ..store import Store
from . import data


async def _form(request: Request, keep_blank_values: bool = False) -> dict[str, str] | None:
    """A page form's fields (the first value of each), or None when the body is not UTF-8."""
    try:
        form = (await request.body()).decode()
    except UnicodeDecodeError:
        return None
    return {k: v[0] for k, v in parse_qs(form, keep_blank_values=keep_blank_values).items()}


def _not_a_form() -> Response:
    return JSONResponse({"error": "the form is not UTF-8 (application/x-www-form-urlencoded)"}, status_code=400)


def add_write_routes(app: FastAPI, store: Store) -> None:
    """Add the routes that change ``store`` to ``app``: the API's, then the pages' forms."""
    _add_api(app, store)
    _add_forms(app, store)


def _add_api(app: FastAPI, store: Store) -> None:
    @app.put("/api/domains/{domain}/models/{model_id}/states/{state}", tags=["write"])
    def api_set_state(domain: str, model_id: str, state: str) -> dict[str, Any]:
        """Put the model in ``state`` (write mode only)."""
        store.set_model_state(domain, model_id, state)
        return {"states": data.model(store, domain, model_id)["states"]}

    @app.delete("/api/domains/{domain}/models/{model_id}/states/{state}", tags=["write"])
    def api_unset_state(domain: str, model_id: str, state: str) -> dict[str, Any]:
        """Take the model out of ``state`` (write mode only)."""
        store.remove_model_state(domain, model_id, state)
        return {"states": data.model(store, domain, model_id)["states"]}

    @app.put("/api/domains/{domain}/models/{model_id}/tags/{tag}", tags=["write"])
    def api_set_tag(domain: str, model_id: str, tag: str) -> dict[str, Any]:
        """Tag the model (write mode only)."""
        store.set_tag(domain, model_id, tag)
        return store.get_annotations(domain, model_id)

    @app.delete("/api/domains/{domain}/models/{model_id}/tags/{tag}", tags=["write"])
    def api_delete_tag(domain: str, model_id: str, tag: str) -> dict[str, Any]:
        """Take a tag off the model (write mode only)."""
        store.delete_tag(domain, model_id, tag)
        return store.get_annotations(domain, model_id)

    @app.post("/api/domains/{domain}/models/{model_id}/notes", tags=["write"])
    async def api_add_note(domain: str, model_id: str, request: Request) -> dict[str, Any]:
        """Add a note: the request body, UTF-8 text, at most 16 KiB (write mode only)."""
        body = await request.body()
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("note", "is not valid UTF-8") from None
        store.add_note(domain, model_id, text)
        return store.get_annotations(domain, model_id)


def _add_forms(app: FastAPI, store: Store) -> None:
    @app.post("/d/{domain}/m/{model_id}/annotations", include_in_schema=False)
    async def page_annotations(domain: str, model_id: str, request: Request) -> Response:
        fields = await _form(request, keep_blank_values=True)
        if fields is None:
            return _not_a_form()
        action = fields.get("action", "")
        if action == "tag":
            store.set_tag(domain, model_id, fields.get("tag", ""))
        elif action == "untag":
            store.delete_tag(domain, model_id, fields.get("tag", ""))
        elif action == "note":
            store.add_note(domain, model_id, fields.get("text", ""))
        else:
            return JSONResponse({"error": "action must be tag, untag or note"}, status_code=400)
        return RedirectResponse(f"/d/{domain}/m/{model_id}#notes", 303)

    @app.post("/d/{domain}/m/{model_id}/states", include_in_schema=False)
    async def page_state(domain: str, model_id: str, request: Request) -> Response:
        fields = await _form(request)
        if fields is None:
            return _not_a_form()
        state, action = fields.get("state", ""), fields.get("action", "")
        if action == "set":
            store.set_model_state(domain, model_id, state)
        elif action == "unset":
            store.remove_model_state(domain, model_id, state)
        else:
            return JSONResponse({"error": "action must be set or unset"}, status_code=400)
        return RedirectResponse(f"/d/{domain}/m/{model_id}", 303)
