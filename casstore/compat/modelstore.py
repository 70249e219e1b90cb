"""``casstore.ModelStore``: modelstore's API, return shapes and exceptions over a casstore Store.

Code written for modelstore runs unchanged after ``from modelstore import
ModelStore`` becomes ``from casstore import ModelStore``.  The class is a thin
layer: every model is an ordinary casstore model (``cas log``, ``cas show``,
push and pull see it), and the native ``Store`` keeps its own, stricter rules.
What is modelstore's alone lives here:

* The metadata dict modelstore returns (``meta["model"]["model_id"]``,
  ``meta["extra"]``, ...) is stored in the model's ``extra_metadata`` under the
  key ``"modelstore"`` and returned from there, so ``upload`` and
  ``get_model_info`` return equal dicts.  A model committed natively gets one
  built from its manifest.
* Extra files are stored as ``extras/<name>`` and the model type as
  ``model-info.json``, the layout ``download`` writes, as modelstore's archive
  does.  A missing or duplicate extra file is dropped with a warning.
* Deleted models are the domain history's ``delete`` events: they form the
  reserved state ``modelstore-deleted`` and make reads raise
  ModelDeletedException.  A live model put in that state with
  ``set_model_state`` (modelstore allows it: a label, the model stays) is kept
  in a stored casstore state of that name.

Cloud flavours (``from_aws_s3``, ``from_gcloud``, ``from_azure``, ``from_minio``)
keep a local cache store and use the bucket as its remote: every read pulls
first, every write commits to the cache and pushes before returning.  The
bucket is the source of truth; two machines uploading the same ID race on the
remote's create-if-absent of the model ref, and exactly one wins.  The loser's
local copy is deleted (a logged deletion of *its* commit only) and it gets
ModelExistsException.  A model in the cache that the bucket does not hold (an
upload that died, or whose push failed, after its local commit) holds no ID:
the next upload of the ID replaces it, and if the bucket got another model
under that ID meanwhile, the next refresh takes the bucket's.  See
docs/modelstore.md.
"""


from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import warnings
from typing import Any

from ..errors import (
    DomainNotFoundException,
    FrameworkError,
    InvalidIdError,
    ModelDeletedException,
    ModelExistsException,
    ModelNotFoundException,
    NoModelInStateError,
    OtherFilesWarning,
    StateNameError,
)
from ..util.names import check_domain, check_model_id
from ..version import __version__
from .cloud import StoreBacking, default_cache_dir
from .meta import (
    DELETED_STATE,
    META_KEY,
    MODEL_INFO,
    RESERVED_STATES,
    STORE_DIR,
    dependencies,
    is_valid_state_name,
    meta_of,
    modelstore_time,
    parameters,
    uploaded_model_type,
    user,
)
from .upload import DATA_KWARGS, checked_names, extra_metadata_of, extra_paths, frameworks_of, write_layout

__all__ = ["STORE_DIR", "ModelStore", "default_cache_dir"]


def _confirm(message: str) -> bool:
    """modelstore's prompt (click.confirm): yes only on an explicit y/yes; no terminal means no."""
    try:
        answer = input(f"{message} [y/N]: ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


class ModelStore(StoreBacking):
    """modelstore's ``ModelStore`` over a casstore Store; create one with a ``from_*`` constructor.

    Safe to use from several processes at once, as the Store is.  The cloud
    flavours set their endpoint and credentials (``from_minio``) in the process
    environment only while they talk to the bucket: do not share one of those
    between threads.
    """

    # -- names ---------------------------------------------------------------------

    def _lookup(self, domain: object, model_id: object = "-") -> tuple[str, str]:
        """Names as modelstore treats them in lookups: an empty, None or impossible name finds nothing.

        Raises:
            DomainNotFoundException: ``domain`` is empty, None, or not a possible name.
            ModelNotFoundException: ``model_id`` is not a possible ID.
        """
        if not domain or not isinstance(domain, str):
            raise DomainNotFoundException(str(domain))
        if not model_id or not isinstance(model_id, str):
            raise DomainNotFoundException(domain)
        try:
            check_domain(domain)
        except InvalidIdError:
            raise DomainNotFoundException(domain) from None
        try:
            check_model_id(model_id)
        except InvalidIdError:
            raise ModelNotFoundException(domain, model_id) from None
        return domain, model_id

    def _check_domain_exists(self, domain: str) -> None:
        if domain not in self.store.list_domains():
            raise DomainNotFoundException(domain)

    def _deleted(self, domain: str) -> list[str]:
        """IDs whose last event is a deletion and that hold no model now, most recently deleted first."""
        try:
            events = self.store.log(domain)
        except DomainNotFoundException:
            return []
        live = set(self.store.list_models(domain))
        seen: set[str] = set()
        out = []
        for e in events:
            if e.event not in ("commit", "delete") or e.model_id in seen:
                continue
            seen.add(e.model_id)
            if e.event == "delete" and e.model_id not in live:
                out.append(e.model_id)
        return out

    # -- domains -------------------------------------------------------------------

    def list_domains(self) -> list[str]:
        """Every domain, the one with the most recently created model first (as modelstore)."""
        self.refresh()
        newest: list[tuple[str, str]] = []
        for domain in self.store.list_domains():
            ids = self.store.list_models(domain)
            if ids:  # the created time, to the microsecond (log times are whole seconds)
                when = self.store.get_model_info(domain, ids[0], annotations=False)["created"]
            else:  # every model deleted: modelstore still lists the domain
                t = next((e.time for e in self.store.log(domain) if e.event == "commit"), 0)
                when = _dt.datetime.fromtimestamp(t, _dt.timezone.utc).isoformat()
            newest.append((when, domain))
        return [d for _, d in sorted(newest, key=lambda p: (p[0], [-ord(c) for c in p[1]]), reverse=True)]

    def get_domain(self, domain: str) -> dict[str, Any]:
        """The metadata of the domain's newest model (modelstore's ``domains/<domain>.json``).

        Raises:
            DomainNotFoundException: an unknown, empty or None domain, or one whose models were all deleted.
        """
        domain, model_id = self._newest(domain)
        return self._meta(self.store.get_model_info(domain, model_id, annotations=False))

    def _newest(self, domain: str) -> tuple[str, str]:
        """The domain and its newest model's ID, after a refresh.

        Raises:
            DomainNotFoundException: an unknown, empty or None domain, or one whose models were all deleted.
        """
        domain, _ = self._lookup(domain)
        self.refresh()
        self._check_domain_exists(domain)
        ids = self.store.list_models(domain)
        if not ids:
            raise DomainNotFoundException(domain)
        return domain, ids[0]

    # -- models --------------------------------------------------------------------

    def list_models(self, domain: str, state_name: str | None = None) -> list[str]:
        """The domain's model IDs, newest first; only those in ``state_name`` when given.

        ``state_name="modelstore-deleted"`` lists the deleted models, most recently deleted first.

        Raises:
            ValueError: ``state_name`` was never created.
            DomainNotFoundException: the domain is unknown, empty or None.
        """
        try:
            self.refresh([self._lookup(domain)[0]])  # that domain's refs only
        except DomainNotFoundException:
            self.refresh()  # the errors below, in modelstore's order
        if state_name is not None and state_name not in RESERVED_STATES and (
                state_name not in self.store.list_model_states()):
            raise StateNameError(state_name, f"State: '{state_name}' does not exist")
        domain, _ = self._lookup(domain)
        self._check_domain_exists(domain)
        if state_name == DELETED_STATE:
            return self._deleted(domain) + self._marked_deleted(domain)
        return self.store.list_models(domain, state_name)

    def _marked_deleted(self, domain: str) -> list[str]:
        """Live models put in ``modelstore-deleted`` by ``set_model_state`` (a stored state of that name)."""
        if DELETED_STATE not in self.store.list_model_states():
            return []
        return self.store.list_models(domain, DELETED_STATE)

    def list_versions(self, domain: str, state_name: str | None = None) -> list[str]:
        """Deprecated in modelstore: ``list_models``."""
        warnings.warn("list_versions() is deprecated; use list_models()", DeprecationWarning, stacklevel=2)
        return self.list_models(domain, state_name)

    def get_model_info(self, domain: str, model_id: str) -> dict[str, Any]:
        """The model's metadata, in modelstore's shape: the dict ``upload`` returned.

        Raises:
            DomainNotFoundException: an unknown, empty or None domain (or an empty or None ID).
            ModelDeletedException: the model was deleted.
            ModelNotFoundException: no such model.
        """
        domain, model_id = self._lookup(domain, model_id)
        self.refresh([domain])
        return self._meta(self._info(domain, model_id))

    def _info(self, domain: str, model_id: str) -> dict[str, Any]:
        """The native metadata, after the existence checks modelstore makes (callers have pulled)."""
        self._check_domain_exists(domain)
        try:
            return self.store.get_model_info(domain, model_id, annotations=False)
        except ModelNotFoundException:
            if model_id in self._deleted(domain):
                raise ModelDeletedException(domain, model_id) from None
            raise

    def _meta(self, info: dict[str, Any]) -> dict[str, Any]:
        """modelstore's dict for a model: the one stored with it, else one built from its manifest."""
        return meta_of(info, self._storage_of(info["domain"], info["model_id"]))

    def model_exists(self, domain: str, model_id: str) -> bool:
        """Whether the model exists (False for an unknown domain).

        Raises:
            ModelDeletedException: the model was deleted (as modelstore does).
        """
        try:
            self.get_model_info(domain, model_id)
        except ModelDeletedException:
            raise
        except ModelNotFoundException:  # DomainNotFoundException included
            return False
        return True

    def upload(self, domain: str, model_id: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """Store a model (``model=clf``, ``explainer=...``) and return modelstore's metadata dict.

        ``extra_files=`` (a path or a list of paths; the deprecated ``extras=``
        too, with a DeprecationWarning) are stored as ``extras/<name>``; paths
        that are not files, and second files of the same name, are dropped with
        a warning.  ``extra_metadata=`` must be JSON-serialisable; it comes back
        as ``meta["extra"]``.  ``X_train=``/``y_train=`` are accepted and not stored.
        An ID whose model was deleted may be used again.

        Raises:
            ValueError: an empty or reserved domain, an ID modelstore or casstore
                refuses, or "could not find matching manager" for an object no
                framework recognises.
            TypeError: ``extra_metadata`` is not a JSON-serialisable dict.
            ModelExistsException: the ID is taken (on the bucket too, for the
                cloud flavours: exactly one of several racing uploads wins; a
                model in the cache that the bucket lacks does not take it).
            RemoteError: the push failed; the model is in the cache only and
                the ID is not taken: upload it again.
        """
        model_id = checked_names(domain, model_id)
        extras = extra_paths(kwargs)
        extra_metadata = extra_metadata_of(kwargs)
        models = {k: v for k, v in kwargs.items() if k not in DATA_KWARGS}
        plan = frameworks_of(models)

        with self._uploading(domain):
            self.refresh()
            if self.store.model_exists(domain, model_id):
                if self._published(domain, model_id):
                    raise ModelExistsException(domain, model_id)
                # an upload committed here and died (or failed to push) before the bucket took
                # it: the bucket never had it, so the ID is free and this upload replaces it
                warnings.warn(f"casstore: {domain}/{model_id} was committed to the local cache by an upload "
                              f"that never reached {self.remote}: replaced by this upload", stacklevel=2)
                self.store.delete_model(domain, model_id)
            return self._upload(domain, model_id, models, plan, extras, extra_metadata)

    def _upload(self, domain: str, model_id: str, models: dict[str, Any], plan: dict[str, Any],  # noqa: PLR0913 - the upload's plan, split out of upload() already
                extras: list[str], extra_metadata: dict[str, Any] | None) -> dict[str, Any]:
        created = _dt.datetime.now(_dt.timezone.utc)
        model_type = uploaded_model_type(models, {k: fw.name for k, fw in plan.items()})
        meta = {
            "model": {"domain": domain, "model_id": model_id, "model_type": model_type,
                      "parameters": parameters(models.get("model")), "data": None},
            "storage": self._storage_of(domain, model_id),
            "modelstore": f"casstore-{__version__}",
            "code": {"runtime": f"python:{platform.python_version()}", "user": user(), "created":
                     modelstore_time(created), "dependencies": dependencies(fw.name for fw in plan.values()),
                     "git": None},
            "extra": extra_metadata,
        }
        with self.store.scratch_dir("modelstore-") as work:
            files = write_layout(work, model_type, extras)
            try:
                info = self.store.commit_models(domain, model_id=model_id, extra_files=files,
                                                extra_metadata={META_KEY: meta}, created=created, **models)
            except FrameworkError as e:
                if "file" in str(e) and MODEL_INFO in str(e):
                    raise FrameworkError(f"{e} ({MODEL_INFO} is reserved for modelstore's model type)") from e
                raise
        self._publish_model(domain, model_id)
        return self._meta(info)

    def load(self, domain: str, model_id: str | None = None, *, state_name: str | None = None) -> Any:
        """Load the model: the object, or a dict by library for several (as modelstore).

        ``state_name`` instead of ``model_id`` (casstore's addition): the newest
        model in that state, ``load("fraud", state_name="production")``.

        Raises:
            DomainNotFoundException, ModelDeletedException, ModelNotFoundException
            (NoModelInStateError: no model is in ``state_name``).
            ValueError: ``state_name`` does not exist, or is given with a ``model_id``.
        """
        model_id = self._in_state(domain, model_id, state_name)
        domain, model_id = self._lookup(domain, model_id)
        self.refresh([domain])
        self._info(domain, model_id)
        return self.store.load(domain, model_id)

    def download(self, local_path: str | os.PathLike[str], domain: str, model_id: str | None = None,
                 *, state_name: str | None = None) -> str:
        """Write the model's files into ``local_path`` (modelstore's layout) and return its absolute path.

        The model's files at the top, extra files under ``extras/``, and
        ``model-info.json``.  ``model_id=None``: the domain's newest model;
        ``state_name`` (casstore's addition): the newest model in that state.

        Raises:
            DomainNotFoundException, ModelDeletedException, ModelNotFoundException
            (NoModelInStateError: no model is in ``state_name``).
            ValueError: ``state_name`` does not exist, or is given with a ``model_id``.
        """
        root = os.path.abspath(os.fspath(local_path))
        if state_name is not None:
            model_id = self._in_state(domain, model_id, state_name)
        if model_id is None:
            domain, model_id = self._newest(domain)
        else:
            domain, model_id = self._lookup(domain, model_id)
            self.refresh()
        info = self._info(domain, model_id)
        with warnings.catch_warnings():  # modelstore's download overwrites, and says nothing of other files
            warnings.simplefilter("ignore", OtherFilesWarning)
            self.store.download(root, domain, model_id, force=True)
        info_path = os.path.join(root, MODEL_INFO)
        if not os.path.exists(info_path):  # a model committed natively
            with open(info_path, "w") as f:
                json.dump(self._meta(info)["model"]["model_type"], f)
        return root

    def _in_state(self, domain: str, model_id: str | None, state_name: str | None) -> str:
        """``model_id``, or the newest model in ``state_name`` (``list_models``' first)."""
        if state_name is None:
            if model_id is None:
                raise TypeError("load() needs a model_id (or state_name=...)")
            return model_id
        if model_id is not None:
            raise ValueError(f"give a model_id ({model_id!r}) or a state_name ({state_name!r}), not both")
        found = self.list_models(domain, state_name)
        if not found:
            raise NoModelInStateError(str(domain), state_name)
        return found[0]

    def delete_model(self, domain: str, model_id: str, skip_prompt: bool = False) -> None:
        """Delete a model (asks first unless ``skip_prompt``): it leaves every state and
        joins ``modelstore-deleted``; its ID may be used again.

        Raises:
            DomainNotFoundException, ModelDeletedException, ModelNotFoundException.
        """
        domain, model_id = self._lookup(domain, model_id)
        self.refresh()
        self._info(domain, model_id)
        if not skip_prompt and not _confirm(f"Delete model from domain={domain} with model_id={model_id}?"):
            return
        self.store.delete_model(domain, model_id)
        self._publish([domain])

    # -- states --------------------------------------------------------------------

    def list_model_states(self) -> list[str]:
        """The states created with ``create_model_state`` (never the reserved one)."""
        self.refresh()
        return [s for s in self.store.list_model_states() if s not in RESERVED_STATES]

    def create_model_state(self, state_name: str) -> None:
        """Create a state (a no-op if it exists, or for the reserved ``modelstore-deleted``, as modelstore).

        Raises:
            ValueError: a name modelstore refuses (under 3 characters, a path)
                or casstore refuses (see the naming rules).
        """
        if state_name in RESERVED_STATES:
            return  # modelstore creates it silently; here it exists as deletions and is stored on first use
        if not is_valid_state_name(state_name):
            raise StateNameError(state_name, f"Cannot create state with name: '{state_name}'")
        self.refresh()
        if state_name in self.store.list_model_states():
            return
        self.store.create_model_state(state_name)
        self._publish(None)

    def _check_state(self, state_name: str) -> None:
        if state_name not in self.store.list_model_states():
            raise StateNameError(state_name, f"State '{state_name}' does not exist")

    def delete_model_state(self, state_name: str, skip_prompt: bool = False) -> None:
        """Delete a state (asks first unless ``skip_prompt``); every model leaves it.

        Raises:
            ValueError: the state is reserved, or does not exist.
        """
        if state_name in RESERVED_STATES:
            raise StateNameError(state_name, f"State '{state_name}' is reserved and cannot be deleted")
        self.refresh()
        self._check_state(state_name)
        if not skip_prompt and not _confirm(
                f"Delete model state '{state_name}' and remove it from all models?"):
            return
        self.store.delete_model_state(state_name)
        self._publish(None)

    def set_model_state(self, domain: str, model_id: str, state_name: str) -> None:
        """Put a model in a state.

        ``modelstore-deleted``, as in modelstore, needs no ``create_model_state``
        and only labels the model: it stays readable and listed, joins
        ``list_models(domain, "modelstore-deleted")``, is not among its
        ``get_model_states`` and cannot be taken out again
        (``remove_model_state`` ignores it); ``delete_model`` deletes it.  It is
        stored as a casstore state of that name, which the native ``Store`` shows.

        Raises:
            ValueError: the state does not exist.
            DomainNotFoundException, ModelDeletedException, ModelNotFoundException.
        """
        domain, model_id = self._lookup(domain, model_id)
        self.refresh()
        if state_name in RESERVED_STATES:
            self._info(domain, model_id)
            if state_name not in self.store.list_model_states():
                self.store.create_model_state(state_name)
        else:
            self._check_state(state_name)
            self._info(domain, model_id)
        self.store.set_model_state(domain, model_id, state_name)
        self._publish([domain])

    def remove_model_state(self, domain: str, model_id: str, state_name: str) -> None:
        """Take a model out of a state; nothing if it is not in it (or the state is reserved).

        Raises:
            ValueError: the state does not exist.
            DomainNotFoundException, ModelDeletedException, ModelNotFoundException.
        """
        if state_name in RESERVED_STATES:
            return  # modelstore: only modelstore itself takes models out of it
        domain, model_id = self._lookup(domain, model_id)
        self.refresh()
        self._check_state(state_name)
        self._info(domain, model_id)
        self.store.remove_model_state(domain, model_id, state_name)
        self._publish([domain])

    def get_model_states(self, domain: str, model_id: str) -> list[str]:
        """The states the model is in.

        Raises:
            DomainNotFoundException, ModelDeletedException, ModelNotFoundException.
        """
        domain, model_id = self._lookup(domain, model_id)
        self.refresh()
        self._info(domain, model_id)
        return [s for s in self.store.get_model_states(domain, model_id) if s not in RESERVED_STATES]
