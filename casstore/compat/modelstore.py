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

import copy
import datetime as _dt
import hashlib
import json
import os
import platform
import re
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..errors import (
    DomainNotFoundException,
    FrameworkError,
    InvalidIdError,
    ModelDeletedException,
    ModelExistsException,
    ModelNotFoundException,
    NoMatchingFrameworkError,
    NoModelInStateError,
    OtherFilesWarning,
    RemoteError,
    StateNameError,
)
from ..frameworks import resolve
from ..store import Store, open_store, remote_schemes
from ..util.names import check_domain, check_model_id
from ..version import __version__
from .meta import (
    DELETED_STATE,
    EXTRAS_DIR,
    META_KEY,
    MODEL_INFO,
    MODELSTORE_DIR,
    MODELSTORE_ID_CHARS,
    RESERVED_DOMAINS,
    RESERVED_STATES,
    STORE_DIR,
    dependencies,
    is_valid_state_name,
    model_type_of,
    modelstore_time,
    parameters,
    user,
)

if TYPE_CHECKING:
    from ..store import SyncResult

#: kwargs modelstore reads as training data for its metadata, never stored as models
_DATA_KWARGS = ("X_train", "y_train")
#: attempts to publish a change when other writers keep moving the remote's history
_PUBLISH_ATTEMPTS = 5


def default_cache_dir() -> str:
    """Where cloud ModelStores keep their local stores: ``$CAS_CACHE_DIR``, else ``~/.cache/casstore``."""
    return os.environ.get("CAS_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "casstore")


def _given_paths(obj: Any) -> list[str]:
    """The paths of a ``model=`` given as a path or a list of paths."""
    items = obj if isinstance(obj, (list, tuple)) else [obj]
    return [os.fspath(p) for p in items]


def _confirm(message: str) -> bool:
    """modelstore's prompt (click.confirm): yes only on an explicit y/yes; no terminal means no."""
    try:
        answer = input(f"{message} [y/N]: ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


class ModelStore:
    """modelstore's ``ModelStore`` over a casstore Store; create one with a ``from_*`` constructor.

    Safe to use from several processes at once, as the Store is.  The cloud
    flavours set their endpoint and credentials (``from_minio``) in the process
    environment only while they talk to the bucket: do not share one of those
    between threads.
    """

    def __init__(self, store: Store, remote: str | None = None, env: Mapping[str, str] | None = None,
                 storage: Mapping[str, Any] | None = None) -> None:
        #: the casstore store (for cloud flavours: the local cache store)
        self.store = store
        #: the bucket URL every read pulls from and every write pushes to (None: local only)
        self.remote = remote
        self._env = dict(env or {})
        self._storage = {"type": "casstore", "root": store.path, "path": None, "bucket": None,
                         "prefix": None, "container": None, **(storage or {})}

    def __repr__(self) -> str:
        return f"casstore.ModelStore({self.store.path!r}, remote={self.remote!r})"

    # -- constructors -------------------------------------------------------------

    @classmethod
    def from_file_system(cls, root_directory: str | os.PathLike[str] | None = None,
                         create_directory: bool = False) -> ModelStore:
        """A store at ``<root_directory>/casstore``, beside modelstore's ``operatorai-model-store``.

        ``root_directory`` defaults to ``$MODEL_STORE_ROOT_PREFIX``, as in modelstore.

        Raises:
            ValueError: no root directory given.
            FileNotFoundError: the root (or its parent, with ``create_directory``) does not exist.
            NotADirectoryError: the root is not a directory.
        """
        root = os.fspath(root_directory) if root_directory is not None else os.environ.get(
            "MODEL_STORE_ROOT_PREFIX", "")
        if not root:
            raise ValueError("Error: cannot create a file system model store without a root directory")
        root = os.path.abspath(root)
        if not os.path.exists(root):
            if not create_directory:
                raise FileNotFoundError(f"Error: root_dir {root!r} does not exist")
            parent = os.path.dirname(root)
            if not os.path.isdir(parent):
                raise FileNotFoundError(f"Error: Parent directory to root dir '{parent}' does not exist")
            os.mkdir(root)
        if not os.path.isdir(root):
            raise NotADirectoryError(f"Error: root_dir {root!r} needs to be a directory")
        store = open_store(os.path.join(root, STORE_DIR))
        theirs = os.path.join(root, MODELSTORE_DIR)
        if os.path.isdir(theirs) and os.listdir(theirs) and not store.list_domains() and (
                not store.list_model_states()):
            warnings.warn(f"casstore: {store.path} is empty, and beside it is modelstore's store {theirs}, "
                          f"which casstore does not read: import it with `cas import-modelstore {root}` "
                          "(see docs/modelstore.md)", stacklevel=2)
        return cls(store, storage={"type": "casstore:file_system", "root": root})

    @classmethod
    def from_aws_s3(cls, bucket_name: str | None = None, region: str | None = None,
                    root_prefix: str | None = None, *, cache_dir: str | None = None) -> ModelStore:
        """A store whose remote is ``s3://<bucket_name>/<root_prefix>/casstore``.

        Endpoint and credentials come from boto3's usual sources
        (``AWS_ENDPOINT_URL_S3``, ``AWS_ACCESS_KEY_ID``, ...); ``region`` sets
        ``AWS_DEFAULT_REGION`` while the bucket is used.  ``bucket_name``
        defaults to ``$MODEL_STORE_AWS_BUCKET`` and ``root_prefix`` to
        ``$MODEL_STORE_ROOT_PREFIX``, as in modelstore.  ``cache_dir`` (a
        casstore extension) overrides :func:`default_cache_dir`.
        """
        bucket = bucket_name or os.environ.get("MODEL_STORE_AWS_BUCKET")
        env = {"AWS_DEFAULT_REGION": region} if region else {}
        return cls._cloud("s3", bucket, root_prefix, env, "aws:s3", cache_dir)

    @classmethod
    def from_gcloud(cls, project_name: str | None = None, bucket_name: str | None = None,
                    root_prefix: str | None = None, *, cache_dir: str | None = None) -> ModelStore:
        """A store whose remote is ``gs://<bucket_name>/<root_prefix>/casstore``.

        Needs casstore's ``gs://`` remote; its endpoint and credentials come from
        the environment (``STORAGE_EMULATOR_HOST`` for an emulator).
        ``project_name`` sets ``GOOGLE_CLOUD_PROJECT`` while the bucket is used.
        """
        bucket = bucket_name or os.environ.get("MODEL_STORE_GCP_BUCKET")
        env = {"GOOGLE_CLOUD_PROJECT": project_name} if project_name else {}
        return cls._cloud("gs", bucket, root_prefix, env, "google:cloud-storage", cache_dir)

    @classmethod
    def from_azure(cls, container_name: str | None = None, root_prefix: str | None = None, *,
                   cache_dir: str | None = None) -> ModelStore:
        """A store whose remote is ``az://<container_name>/<root_prefix>/casstore``.

        Needs casstore's ``az://`` remote; the account comes from the
        environment (``AZURE_STORAGE_CONNECTION_STRING``).
        """
        container = container_name or os.environ.get("MODEL_STORE_AZURE_CONTAINER")
        return cls._cloud("az", container, root_prefix, {}, "azure:blob-storage", cache_dir)

    @classmethod
    def from_minio(cls, endpoint: str | None = None, access_key: str | None = None,  # noqa: PLR0913 - modelstore's own signature for from_minio
                   secret_key: str | None = None, bucket_name: str | None = None,
                   root_prefix: str | None = None, secure: bool | None = True, *,
                   cache_dir: str | None = None) -> ModelStore:
        """A MinIO (or any S3-compatible) bucket through casstore's ``s3://`` remote.

        ``endpoint`` (``host:port``, ``https`` unless ``secure=False``),
        ``access_key`` and ``secret_key`` are given to boto3 as
        ``AWS_ENDPOINT_URL_S3``, ``AWS_ACCESS_KEY_ID`` and
        ``AWS_SECRET_ACCESS_KEY`` while the bucket is used; without them,
        boto3's usual sources apply.
        """
        env: dict[str, str] = {}
        if endpoint:
            env["AWS_ENDPOINT_URL_S3"] = endpoint if "://" in endpoint else (
                f"{'https' if secure else 'http'}://{endpoint}")
        if access_key:
            env["AWS_ACCESS_KEY_ID"] = access_key
        if secret_key:
            env["AWS_SECRET_ACCESS_KEY"] = secret_key
        bucket = bucket_name or os.environ.get("MODEL_STORE_MINIO_BUCKET")
        return cls._cloud("s3", bucket, root_prefix, env, "minio:s3", cache_dir)

    @classmethod
    def _cloud(cls, scheme: str, bucket: str | None, root_prefix: str | None, env: dict[str, str],  # noqa: PLR0913 - what each modelstore cloud constructor passes on
               kind: str, cache_dir: str | None) -> ModelStore:
        if not bucket:
            raise ValueError(f"{kind}: no bucket (or container) name given")
        prefix = "/".join(p for p in ((root_prefix or os.environ.get("MODEL_STORE_ROOT_PREFIX") or "").strip("/"),
                                      STORE_DIR) if p)
        url = f"{scheme}://{bucket}/{prefix}"
        schemes = remote_schemes()
        if scheme not in schemes:  # gs:// and az:// arrive with their remote modules
            raise RemoteError(url, f"this casstore has no {scheme}:// remote (it has: "
                                   f"{', '.join(schemes)}); see docs/remotes.md")
        # one cache store per bucket URL: a readable name, and a hash so that two URLs never share one
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{scheme}-{bucket}")[:60]
        digest = hashlib.sha256(url.encode()).hexdigest()[:16]
        path = os.path.join(cache_dir or default_cache_dir(), "stores", f"{slug}-{digest}")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        store = open_store(path)
        ms = cls(store, url, env, {"type": f"casstore:{kind}", "root": url, "bucket": bucket, "prefix": prefix})
        ms.refresh()
        return ms

    # -- talking to the remote ----------------------------------------------------

    @contextmanager
    def _environment(self) -> Iterator[None]:
        """This store's endpoint and credentials in ``os.environ``, for the remote clients that read them."""
        saved = {k: os.environ.get(k) for k in self._env}
        os.environ.update(self._env)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def refresh(self, domains: Sequence[str] | None = None) -> None:
        """Bring the cache store up to date with the bucket (nothing for a local store).

        Every method calls it first; a casstore extension, for code that reads ``self.store`` directly.
        ``domains``: only these (what a read of one domain needs; on a bucket of ref
        tables it reads that domain's table alone, and an unchanged bucket costs
        two small requests: docs/remotes.md).
        """
        if self.remote is None:
            return
        with self._environment():
            result = self.store.pull(self.remote, list(domains) if domains else None)
            if result.conflicts:
                # only a model this cache never published can conflict with the bucket's (an
                # upload killed, or whose push failed, before the bucket took it, while another
                # machine uploaded the ID): the bucket is the truth, ours is dropped (logged)
                self.store.pull(self.remote, list(domains) if domains else None, theirs=True)
        if result.conflicts:
            warnings.warn(f"casstore: {self.remote} holds other models under IDs this cache never published "
                          f"(uploads that did not reach the bucket), taken in their place: "
                          f"{', '.join(result.conflicts)}", stacklevel=3)

    def _push(self, domains: Sequence[str] | None) -> SyncResult:
        with self._environment():
            return self.store.push(self.remote or "", domains)

    def _publish(self, domains: Sequence[str] | None) -> None:
        """Push a change to the bucket, merging in what others pushed meanwhile.

        Raises:
            RemoteError: the remote's history kept moving for every attempt,
                or it refused the change; the change stays in the cache store
                and goes with the next successful push.
        """
        if self.remote is None:
            return
        result = None
        for _ in range(_PUBLISH_ATTEMPTS):
            result = self._push(domains)
            if result.ok:
                return
            self.refresh()  # someone else moved a history: merge theirs, then push again
        assert result is not None
        raise RemoteError(self.remote, f"could not publish the change (conflicts: {result.conflicts}, "
                                       f"diverged: {result.diverged}, rejected: {result.rejected})")

    def _publish_model(self, domain: str, model_id: str) -> None:
        """Push a newly committed model: it wins the ID on the bucket, or ModelExistsException.

        Raises:
            ModelExistsException: another machine pushed this ID first; the
                local commit was deleted and theirs pulled.
        """
        if self.remote is None:
            return
        key = f"{domain}/{model_id}"
        ref = f"refs/cas/models/{domain}/{model_id}"
        for _ in range(_PUBLISH_ATTEMPTS):
            try:
                result = self._push([domain])
            except RemoteError as e:
                raise RemoteError(self.remote, f"{key} was not published ({e.detail}); it is in the local cache "
                                               "only, where it does not count as uploaded: upload it again") from e
            if key in result.conflicts or "already exists" in result.rejected.get(ref, ""):
                self._lost(domain, model_id)
            if result.ok:
                return
            # someone else moved the domain's history: merge theirs, then push again
            with self._environment():
                pulled = self.store.pull(self.remote, [domain])
            if key in pulled.conflicts:
                self._lost(domain, model_id)
            if pulled.conflicts:
                self.refresh([domain])  # other IDs this cache never published: the bucket's models win
        raise RemoteError(self.remote, f"could not publish {key}: the remote's history of {domain!r} kept "
                                       "changing; the model is in the local cache only, where it does not count "
                                       "as uploaded: upload it again")

    def _lost(self, domain: str, model_id: str) -> None:
        """Our upload lost the ID: the bucket holds another model under it.

        Deleting ours logs the deletion of our commit only, so the pull takes theirs.

        Raises:
            ModelExistsException: always.
        """
        self.store.delete_model(domain, model_id)
        self.refresh()
        raise ModelExistsException(domain, model_id)

    def _published(self, domain: str, model_id: str) -> bool:
        """Whether the cache's model ``domain/model_id`` is the one the bucket holds (always, for a local store).

        Raises:
            RemoteError: the bucket cannot be read.
        """
        if self.remote is None:
            return True
        with self._environment():
            theirs = self.store.remote_refs(self.remote).models.get(domain, {}).get(model_id)
        return theirs is not None and theirs == self.store.model_commit(domain, model_id)

    @contextmanager
    def _uploading(self, domain: str) -> Iterator[None]:
        """Hold this cache's upload lock of ``domain`` (cloud flavours only).

        Between its local commit and its push an upload's model is in the cache
        only; the lock tells a live upload of another process from a dead one:
        what an upload finds unpublished while holding it was left by an upload
        that died (or whose push failed).  A killed holder's lock is released by
        the kernel.
        """
        if self.remote is None:
            yield
            return
        from ..util.locking import store_lock

        with store_lock(os.path.join(self.store.path, "cas", "locks", f"modelstore-upload-{domain}.lock"),
                        exclusive=True):
            yield

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
        domain, _ = self._lookup(domain)
        self.refresh()
        self._check_domain_exists(domain)
        ids = self.store.list_models(domain)
        if not ids:
            raise DomainNotFoundException(domain)
        return self._meta(self.store.get_model_info(domain, ids[0], annotations=False))

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
        extra = info.get("extra_metadata")
        if isinstance(extra, dict) and isinstance(extra.get(META_KEY), dict):
            return copy.deepcopy(extra[META_KEY])  # type: ignore[no-any-return]
        created = _dt.datetime.fromisoformat(info["created"])
        libraries = {e["library"]["name"]: e["library"]["version"] for e in info["frameworks"].values()
                     if e["library"].get("name") and e["library"].get("version")}
        return {
            "model": {"domain": info["domain"], "model_id": info["model_id"],
                      "model_type": model_type_of(info["frameworks"]), "parameters": {}, "data": None},
            "storage": self._storage_of(info["domain"], info["model_id"]),
            "modelstore": f"casstore-{__version__}",
            "code": {"runtime": f"python:{info['environment'].get('python', '')}", "user": info["author"],
                     "created": modelstore_time(created), "dependencies": libraries, "git": None},
            "extra": extra,
        }

    def _storage_of(self, domain: str, model_id: str) -> dict[str, Any]:
        return {**self._storage, "path": f"refs/cas/models/{domain}/{model_id}"}

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

    def upload(self, domain: str, model_id: str | None = None, **kwargs: Any) -> dict[str, Any]:  # noqa: C901, PLR0912 - modelstore's upload() and its deprecated spellings
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
        if not isinstance(domain, str) or not domain:
            raise InvalidIdError("domain", domain, "must not be empty (please provide a non-empty domain name)")
        if domain in RESERVED_DOMAINS:
            raise InvalidIdError("domain", domain, "is a directory of modelstore's layout; please use a different "
                                                   "domain name")
        check_domain(domain)
        model_id = str(model_id) if model_id is not None else str(uuid.uuid4())
        if re.search(" +", model_id) or MODELSTORE_ID_CHARS & set(model_id):
            raise InvalidIdError("model ID", model_id, "contains invalid characters (spaces, or one of "
                                                       "modelstore's reserved <>:\"/\\|?*#^`%~{}[])")
        check_model_id(model_id)
        extras = self._extra_paths(kwargs)
        extra_metadata = kwargs.pop("extra_metadata", None)
        if extra_metadata is not None:
            if not isinstance(extra_metadata, dict):
                raise TypeError("extra_metadata is not a dictionary")
            try:
                json.dumps(extra_metadata)
            except (TypeError, ValueError) as e:
                raise TypeError("extra_metadata must be json serializable") from e
        for k in _DATA_KWARGS:
            kwargs.pop(k, None)
        models = kwargs
        plan = {}
        for kwarg, obj in models.items():
            t = type(obj)
            try:
                plan[kwarg] = resolve(kwarg, obj)
            except TypeError:
                raise NoMatchingFrameworkError(kwarg, f"{t.__module__}.{t.__qualname__}") from None
            if plan[kwarg].name == "model_file" and not all(os.path.exists(p) for p in _given_paths(obj)):
                # modelstore's file manager matches only a path that exists: anything else matches no manager
                raise NoMatchingFrameworkError(kwarg, f"{t.__module__}.{t.__qualname__}")
        if not plan:
            raise NoMatchingFrameworkError(None, None)

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
        types = [{"library": fw.name, "type": type(models[k]).__name__ if fw.name != "model_file" else None,
                  "models": None} for k, fw in plan.items()]
        model_type = types[0] if len(types) == 1 else {"library": "multiple-models", "type": None, "models": types}
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
            info_path = os.path.join(work, MODEL_INFO)
            with open(info_path, "w") as f:
                json.dump(model_type, f)
            files: list[str] = [info_path]
            if extras:
                # extras/<name>, as modelstore's archive: a directory of links to the files
                d = os.path.join(work, EXTRAS_DIR)
                os.mkdir(d)
                for path in extras:
                    os.symlink(os.path.abspath(path), os.path.join(d, os.path.basename(path)))
                files.append(d)
            try:
                info = self.store.commit_models(domain, model_id=model_id, extra_files=files,
                                                extra_metadata={META_KEY: meta}, created=created, **models)
            except FrameworkError as e:
                if "file" in str(e) and MODEL_INFO in str(e):
                    raise FrameworkError(f"{e} ({MODEL_INFO} is reserved for modelstore's model type)") from e
                raise
        self._publish_model(domain, model_id)
        return self._meta(info)

    @staticmethod
    def _extra_paths(kwargs: dict[str, Any]) -> list[str]:
        """The extra files modelstore would archive: files only, one per name, with warnings for the rest."""
        given = kwargs.pop("extra_files", None)
        if "extras" in kwargs:
            warnings.warn("extras= is deprecated; use extra_files=", DeprecationWarning, stacklevel=3)
            old = kwargs.pop("extras")
            given = old if given is None else given
        if given is None:
            return []
        paths = given if isinstance(given, (list, tuple, set)) else [given]
        out: list[str] = []
        names: dict[str, str] = {}
        for p in paths:
            p = os.fspath(p)
            name = os.path.basename(p)
            if not os.path.isfile(p):
                warnings.warn(f"casstore: extra file {p!r} is not a file: not stored", stacklevel=3)
            elif name in names:
                if os.path.abspath(names[name]) != os.path.abspath(p):
                    warnings.warn(f"casstore: extra file {p!r} has the same name as {names[name]!r}: "
                                  "only the first is stored", stacklevel=3)
            else:
                names[name] = p
                out.append(p)
        return out

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
            domain, _ = self._lookup(domain)
            self.refresh()
            self._check_domain_exists(domain)
            ids = self.store.list_models(domain)
            if not ids:
                raise DomainNotFoundException(domain)
            model_id = ids[0]
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
