"""Where a ``ModelStore`` keeps its models: its constructors, and the bucket behind the cloud flavours.

``from_file_system`` opens a store under a root directory; ``from_aws_s3``,
``from_gcloud``, ``from_azure`` and ``from_minio`` keep a local cache store whose
remote is the bucket: :meth:`StoreBacking.refresh` pulls before every read,
``_publish`` and ``_publish_model`` push after every write (modelstore.py's
docstring says how two machines racing on one ID are settled).  ``ModelStore``
(modelstore.py) is this class with modelstore's API on top.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import ModelExistsException, RemoteError
from ..store import Store, open_store, remote_schemes
from .meta import MODELSTORE_DIR, STORE_DIR

if TYPE_CHECKING:
    from ..store import SyncResult

#: attempts to publish a change when other writers keep moving the remote's history
_PUBLISH_ATTEMPTS = 5


def default_cache_dir() -> str:
    """Where cloud ModelStores keep their local stores: ``$CAS_CACHE_DIR``, else ``~/.cache/casstore``."""
    return os.environ.get("CAS_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "casstore")


B = TypeVar("B", bound="StoreBacking")


class StoreBacking:
    """A ModelStore's store, and for the cloud flavours its bucket (see the module docstring)."""

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

    def _storage_of(self, domain: str, model_id: str) -> dict[str, Any]:
        """modelstore's ``storage`` entry for a model of this store."""
        return {**self._storage, "path": f"refs/cas/models/{domain}/{model_id}"}

    # -- constructors -------------------------------------------------------------

    @classmethod
    def from_file_system(cls: type[B], root_directory: str | os.PathLike[str] | None = None,
                         create_directory: bool = False) -> B:
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
    def from_aws_s3(cls: type[B], bucket_name: str | None = None, region: str | None = None,
                    root_prefix: str | None = None, *, cache_dir: str | None = None) -> B:
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
    def from_gcloud(cls: type[B], project_name: str | None = None, bucket_name: str | None = None,
                    root_prefix: str | None = None, *, cache_dir: str | None = None) -> B:
        """A store whose remote is ``gs://<bucket_name>/<root_prefix>/casstore``.

        Needs casstore's ``gs://`` remote; its endpoint and credentials come from
        the environment (``STORAGE_EMULATOR_HOST`` for an emulator).
        ``project_name`` sets ``GOOGLE_CLOUD_PROJECT`` while the bucket is used.
        """
        bucket = bucket_name or os.environ.get("MODEL_STORE_GCP_BUCKET")
        env = {"GOOGLE_CLOUD_PROJECT": project_name} if project_name else {}
        return cls._cloud("gs", bucket, root_prefix, env, "google:cloud-storage", cache_dir)

    @classmethod
    def from_azure(cls: type[B], container_name: str | None = None, root_prefix: str | None = None, *,
                   cache_dir: str | None = None) -> B:
        """A store whose remote is ``az://<container_name>/<root_prefix>/casstore``.

        Needs casstore's ``az://`` remote; the account comes from the
        environment (``AZURE_STORAGE_CONNECTION_STRING``).
        """
        container = container_name or os.environ.get("MODEL_STORE_AZURE_CONTAINER")
        return cls._cloud("az", container, root_prefix, {}, "azure:blob-storage", cache_dir)

    @classmethod
    def from_minio(cls: type[B], endpoint: str | None = None, access_key: str | None = None,  # noqa: PLR0913 - modelstore's own signature for from_minio
                   secret_key: str | None = None, bucket_name: str | None = None,
                   root_prefix: str | None = None, secure: bool | None = True, *,
                   cache_dir: str | None = None) -> B:
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
    def _cloud(cls: type[B], scheme: str, bucket: str | None, root_prefix: str | None, env: dict[str, str],  # noqa: PLR0913 - what each modelstore cloud constructor passes on
               kind: str, cache_dir: str | None) -> B:
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
        with self.store.upload_lock(domain):
            yield

    # -- names ---------------------------------------------------------------------
