"""The Store: commit, load, download and list models.

Durability and concurrency, in one place:

* A commit writes its new chunks into one pack (fsynced, published ``.idx``
  last), then its trees, manifest and commit as loose objects (fsynced), then
  creates ``refs/cas/models/<domain>/<id>`` with create-if-absent, then appends
  the event to the domain history with compare-and-swap.  A crash before the ref
  leaves only unreferenced objects, which ``gc`` removes after its grace period.
* Creating the ref *is* the existence check, so of several processes committing
  the same ID exactly one succeeds and the others get ModelExistsException.
* Every byte that ``load`` and ``download`` return was checked against the
  manifest (chunk BLAKE3 keys, whole-file xxh3); corruption raises
  CorruptObjectError naming the object and never yields wrong bytes.
"""

from __future__ import annotations

import datetime as _dt
import errno
import getpass
import os
import platform
import shutil
import socket
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, BinaryIO

import msgpack
from dulwich.config import ConfigFile
from dulwich.objects import Blob, Commit, ObjectID, Tree
from dulwich.repo import Repo

from . import __version__, stats
from .chunker import ChunkParams
from .codec import DEFAULT_LEVEL
from .errors import (
    CasError,
    CorruptObjectError,
    DomainNotFoundException,
    FrameworkError,
    ModelExistsException,
    ModelNotFoundException,
    NotAStoreError,
    StateNotFoundException,
    StoreWriteError,
)
from .frameworks import by_name, resolve
from .fsck import FsckReport, fsck
from .gc import DEFAULT_GRACE, GcReport, gc
from .history import DomainIndex, Event, append_event, iter_log, parse_trailers, read_index
from .ingest import IngestedFile, Source, ingest
from .locking import deferred_interrupts, store_lock
from .maintenance import maintain
from .manifest import FileEntry, FrameworkEntry, Manifest
from .manifest import decode as decode_manifest
from .names import check_domain, check_model_id, check_state, new_model_id
from .odb import ObjectDB
from .progress import Counter, ProgressFn
from .readback import chunk_oids, iter_file, open_file, write_file
from .refs import Refs, domain_ref, model_ref

if TYPE_CHECKING:
    from .remote.sync import SyncResult
from .states import list_states, update_states

FORMAT_VERSION = 1
BLOB_MODE = 0o100644
TREE_MODE = 0o040000


def default_store_path() -> str:
    return os.environ.get("CAS_STORE") or os.path.join(os.path.expanduser("~"), ".casstore")


def _author() -> bytes:
    env = os.environ.get("CAS_AUTHOR")
    if env and "<" in env and env.rstrip().endswith(">"):
        text = env.strip()
    else:
        try:
            user = getpass.getuser()
        except Exception:
            user = "casstore"
        text = f"{env or user} <{user}@{socket.gethostname()}>"
    return "".join(c for c in text if c not in "\n\r\0").encode()


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _frameworks_summary(m: Manifest) -> str:
    return " ".join(f"{e.kwarg}={e.framework}" for e in m.frameworks)


def _metadata_summary(meta: Any) -> str:
    if not isinstance(meta, dict):
        return ""
    parts = []
    for k, v in meta.items():
        text = repr(v) if not isinstance(v, str) else v
        parts.append(f"{k}={text if len(text) <= 40 else text[:37] + '...'}")
    return " ".join(parts)


def init_store(path: str, *, bare_remote: bool = False) -> None:
    """Create a new, empty store at ``path`` (a bare git repository).

    ``bare_remote=True`` prepares it to be pushed to by others: a pre-receive
    hook that refuses to move or delete existing models, and fast-forward-only
    histories (see remote/hook.py).
    """
    os.makedirs(path, exist_ok=True)
    if os.listdir(path):
        raise NotAStoreError(path, "directory is not empty")
    Repo.init_bare(path).close()
    cfg_path = os.path.join(path, "config")
    cfg = ConfigFile.from_path(cfg_path)
    cfg.set((b"cas",), b"formatVersion", str(FORMAT_VERSION).encode())
    # Chunk blobs are zstd already: git must not zlib them again.
    cfg.set((b"core",), b"compression", b"0")
    cfg.set((b"core",), b"fsync", b"objects,reference")
    # git's automatic gc would repack without our chunk index sidecars and prune
    # with its own rules; `cas gc` does this job.
    cfg.set((b"gc",), b"auto", b"0")
    cfg.set((b"receive",), b"fsckObjects", b"true")
    cfg.write_to_path(cfg_path)
    if bare_remote:
        from .remote.hook import PRE_RECEIVE

        cfg.set((b"receive",), b"denyNonFastForwards", b"true")
        cfg.write_to_path(cfg_path)
        hook = os.path.join(path, "hooks", "pre-receive")
        os.makedirs(os.path.dirname(hook), exist_ok=True)
        with open(hook, "w") as f:
            f.write(PRE_RECEIVE)
        os.chmod(hook, 0o755)
    for d in ("cas", "cas/chunkidx", "cas/tmp"):
        os.makedirs(os.path.join(path, d), exist_ok=True)


def is_store(path: str) -> bool:
    cfg = os.path.join(path, "config")
    if not os.path.isfile(cfg) or not os.path.isdir(os.path.join(path, "objects")):
        return False
    try:
        return ConfigFile.from_path(cfg).get((b"cas",), b"formatVersion") is not None
    except (KeyError, ValueError, OSError):
        return False


def open_store(path: str | os.PathLike[str] | None = None, *, create: bool = True) -> Store:
    """Open the store at ``path`` ($CAS_STORE, else ~/.casstore), creating it if missing."""
    p = os.path.abspath(os.fspath(path) if path is not None else default_store_path())
    if create and (not os.path.exists(p) or (os.path.isdir(p) and not os.listdir(p))):
        init_store(p)
    return Store(p)


class Store:
    """A casstore store.  Safe to use from several processes at once.

    One Store object may be shared by threads for reading; commits from several
    threads are safe too (each writes its own pack).
    """

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        if not os.path.isdir(self.path):
            raise NotAStoreError(self.path, "no such directory")
        if not is_store(self.path):
            raise NotAStoreError(self.path, "no casstore config (create one with `cas init`)")
        version = int(ConfigFile.from_path(os.path.join(self.path, "config")).get((b"cas",), b"formatVersion"))
        if version > FORMAT_VERSION:
            raise NotAStoreError(self.path, f"format version {version} is newer than this casstore ({FORMAT_VERSION})")
        for d in ("cas", "cas/chunkidx", "cas/tmp"):
            os.makedirs(os.path.join(self.path, d), exist_ok=True)
        self.odb = ObjectDB(self.path)
        self.refs = Refs(self.path)
        self.params = ChunkParams()
        self.level = DEFAULT_LEVEL
        #: progress(label, done, total) for long operations; the CLI sets it on a terminal
        self.progress: ProgressFn | None = None
        self._lockfile = os.path.join(self.path, "cas", "gc.lock")
        self._tmp = os.path.join(self.path, "cas", "tmp")

    def __repr__(self) -> str:
        return f"casstore.Store({self.path!r})"

    def close(self) -> None:
        self.odb.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- committing -------------------------------------------------------

    def commit_models(
        self,
        domain: str,
        *,
        model_id: str | None = None,
        extra_files: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
        extra_metadata: dict[Any, Any] | None = None,
        **models: Any,
    ) -> dict[str, Any]:
        """Store one or more models, with extra files and metadata, under a new ID.

        Args:
            domain: the domain (a name like a model ID).
            model_id: the new model's ID; a UUID4 by default.
            extra_files: a path or a list of paths; directories are included
                recursively.  Stored and downloaded, never loaded.
            extra_metadata: any msgpack-serialisable dict, returned unchanged
                by ``get_model_info``.
            **models: the models, by keyword (``model=``, ``explainer=``, ...).

        Returns:
            The model's metadata, as ``get_model_info`` returns it.

        Raises:
            InvalidIdError: the domain or ID breaks the naming rules.
            TypeError: an unknown keyword, an object no framework recognises,
                or extra_metadata that is not a msgpack-serialisable dict.
            FrameworkError: two frameworks claim one object, or two entries
                would write the same file name.
            FileNotFoundError: an extra file or model file does not exist.
            ModelExistsException: the ID is taken (checked atomically).

        Nothing is visible to readers until the model ref exists; on any error
        (or Ctrl-C) the store is left as it was, apart from unreferenced
        objects that gc removes.
        """
        check_domain(domain)
        model_id = new_model_id() if model_id is None else check_model_id(model_id)
        if not models:
            raise TypeError("commit_models() needs at least one model, e.g. model=clf")
        plan = [(kwarg, obj, resolve(kwarg, obj)) for kwarg, obj in models.items()]
        extra_metadata = self._check_metadata(extra_metadata)
        extras = list(_extra_sources(extra_files))
        if self.model_exists(domain, model_id):
            raise ModelExistsException(domain, model_id)

        with store_lock(self._lockfile), tempfile.TemporaryDirectory(dir=self._tmp, prefix="commit-") as work:
            entries: list[FrameworkEntry] = []
            sources: list[Source] = []
            owner: dict[str, str] = {}

            def claim(path: str, who: str) -> None:
                if path in owner:
                    raise FrameworkError(f"{who} and {owner[path]} both write the file {path!r}")
                owner[path] = who

            for i, (kwarg, obj, fw) in enumerate(plan):
                d = os.path.join(work, f"{i}")
                os.mkdir(d)
                saved = fw.save(obj, kwarg, d)
                for name, local in saved.files.items():
                    claim(name, f"{kwarg}={fw.name}")
                    sources.append(Source(name, local, "model"))
                entries.append(FrameworkEntry(kwarg, fw.name, saved.cls, saved.format,
                                              list(saved.files), saved.library))
            for name, local in extras:
                claim(name, f"extra file {local}")
                sources.append(Source(name, local, "extra"))

            with self._write_errors():
                files, stats = ingest(self.odb, sources, params=self.params, level=self.level,
                                      progress=self.progress)
            created = _now()
            manifest = Manifest(
                domain=domain,
                model_id=model_id,
                created=created.isoformat(),
                author=_author().decode(),
                frameworks=entries,
                files=[FileEntry(f.path, f.kind, f.size, f.blake3, f.xxh3, f.keys, f.sizes) for f in files],
                extra_metadata=extra_metadata,
                environment={"python": platform.python_version(), "casstore": __version__,
                             "platform": platform.platform()},
                stats={"bytes_given": stats.bytes_given, "bytes_stored": stats.bytes_stored,
                       "chunks_total": stats.chunks_total, "chunks_new": stats.chunks_new},
            )
            with self._write_errors():
                commit_id = self._write_model(manifest, files, created)
            with deferred_interrupts(), self._write_errors():
                if not self.refs.add_if_new(model_ref(domain, model_id), commit_id):
                    raise ModelExistsException(domain, model_id)

                def add(idx: DomainIndex) -> None:
                    idx.models[model_id] = commit_id

                append_event(self.odb, self.refs, domain, _author(), "commit", model_id, commit_id, add,
                             when=int(created.timestamp()),
                             trailers={"Frameworks": _frameworks_summary(manifest),
                                       "Summary": _metadata_summary(extra_metadata)})
            self._maintain()
        return self._info(decode_manifest(manifest.encode()), commit_id)

    upload = commit_models

    def _maintain(self) -> None:
        """Keep the pack count logarithmic and loose objects few (see maintenance.py).

        The commit is complete when this runs; a failure here only costs speed.
        """
        try:
            maintain(self)
        except (CasError, OSError) as e:
            warnings.warn(f"casstore: store maintenance skipped: {e}", stacklevel=3)

    @contextmanager
    def _write_errors(self) -> Iterator[None]:
        """Turn a full disk or I/O error into a StoreWriteError naming the store."""
        try:
            yield
        except OSError as e:
            if isinstance(e, CasError) or e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS):
                raise
            raise StoreWriteError(self.path, e) from e

    @staticmethod
    def _check_metadata(meta: Any) -> Any:
        if meta is None:
            return None
        if not isinstance(meta, dict):
            raise TypeError(f"extra_metadata must be a dict, not {type(meta).__name__}")
        try:
            return msgpack.unpackb(msgpack.packb(meta, use_bin_type=True), raw=False, strict_map_key=False)
        except (TypeError, ValueError, OverflowError) as e:
            raise TypeError(f"extra_metadata is not msgpack-serialisable: {e}") from None

    def _write_model(self, manifest: Manifest, files: list[IngestedFile], created: _dt.datetime) -> ObjectID:
        odb = self.odb
        files_tree = Tree()
        for i, f in enumerate(files):
            t = Tree()
            for j, oid in enumerate(f.oids):
                t.add(b"%08x" % j, BLOB_MODE, ObjectID(oid.hex().encode()))
            files_tree.add(b"%08x" % i, TREE_MODE, odb.write_loose(t))
        root = Tree()
        root.add(b"manifest", BLOB_MODE, odb.write_loose(Blob.from_string(manifest.encode())))
        root.add(b"files", TREE_MODE, odb.write_loose(files_tree))
        summary = ", ".join(f"{e.kwarg}={e.framework}" for e in manifest.frameworks)
        message = (
            f"model {manifest.domain}/{manifest.model_id}\n\n{summary}\n\n"
            f"Cas-Domain: {manifest.domain}\nCas-Model: {manifest.model_id}\n"
            f"Cas-Created: {manifest.created}\n"
        ).encode()
        return odb.write_commit(odb.write_loose(root), [], manifest.author.encode(), message,
                                int(created.timestamp()))

    # -- reading ----------------------------------------------------------

    def list_domains(self) -> list[str]:
        """Every domain that has (or had) models, sorted by name."""
        return sorted(self.refs.domains())

    def _model_times(self, domain: str) -> list[tuple[str, str]]:
        out = []
        for mid in self.refs.model_ids(domain):
            sha = self.refs.get(model_ref(domain, mid))
            if sha is None:
                continue
            c = self.odb.read(sha, Commit)
            assert isinstance(c, Commit)
            out.append((parse_trailers(c.message).get("Cas-Created", ""), mid))
        return out

    def list_models(self, domain: str, state_name: str | None = None) -> list[str]:
        """The domain's model IDs, newest first; only those in ``state_name`` if given.

        Raises:
            DomainNotFoundException: the domain was never used.
            StateNotFoundException: ``state_name`` was never created.
        """
        check_domain(domain)
        times = self._model_times(domain)
        if not times and self.refs.get(domain_ref(domain)) is None:
            raise DomainNotFoundException(domain)
        ids = [mid for _, mid in sorted(times, reverse=True)]
        if state_name is not None:
            self._check_state_exists(state_name)
            members = self._index(domain).states.get(state_name, {})
            ids = [mid for mid in ids if mid in members]
        return ids

    # -- states and deletion ------------------------------------------------

    def _index(self, domain: str) -> DomainIndex:
        return read_index(self.odb, self.refs.get(domain_ref(domain)))

    def _check_state_exists(self, state: str) -> None:
        check_state(state)
        if state not in list_states(self.odb, self.refs):
            raise StateNotFoundException(state)

    def _model_commit(self, domain: str, model_id: str) -> ObjectID:
        check_domain(domain)
        check_model_id(model_id)
        sha = self.refs.get(model_ref(domain, model_id))
        if sha is None:
            if domain not in self.refs.domains():
                raise DomainNotFoundException(domain)
            raise ModelNotFoundException(domain, model_id)
        return sha

    def create_model_state(self, state_name: str) -> None:
        """Create a model state (a no-op if it exists)."""
        check_state(state_name)

        def add(names: set[str]) -> bool:
            if state_name in names:
                return False
            names.add(state_name)
            return True

        update_states(self.odb, self.refs, _author(), f"create state {state_name}", add)

    def list_model_states(self) -> list[str]:
        """Every state that was created, sorted."""
        return sorted(list_states(self.odb, self.refs))

    def set_model_state(self, domain: str, model_id: str, state_name: str) -> None:
        """Put a model in a state (a state can hold several models).

        Recorded in the domain history.  Setting a state the model already has
        records nothing.

        Raises:
            StateNotFoundException, ModelNotFoundException.
        """
        self._check_state_exists(state_name)
        sha = self._model_commit(domain, model_id)

        def put(idx: DomainIndex) -> bool:
            members = idx.states.setdefault(state_name, {})
            if members.get(model_id) == sha:
                return False
            members[model_id] = sha
            return True

        append_event(self.odb, self.refs, domain, _author(), "state-set", model_id, sha, put, state=state_name)

    def remove_model_state(self, domain: str, model_id: str, state_name: str) -> None:
        """Take a model out of a state (a no-op if it is not in it)."""
        self._check_state_exists(state_name)
        self._unset_state(domain, model_id, self._model_commit(domain, model_id), state_name)

    def _unset_state(self, domain: str, model_id: str, sha: ObjectID, state_name: str) -> None:
        """Record that ``model_id`` left ``state_name`` (nothing when it was not in it)."""

        def drop(idx: DomainIndex) -> bool:
            members = idx.states.get(state_name, {})
            if model_id not in members:
                return False
            del members[model_id]
            return True

        append_event(self.odb, self.refs, domain, _author(), "state-unset", model_id, sha, drop,
                     state=state_name)

    def get_model_states(self, domain: str, model_id: str) -> list[str]:
        """The states the model is in, sorted."""
        sha = self._model_commit(domain, model_id)
        idx = self._index(domain)
        return sorted(s for s, members in idx.states.items() if members.get(model_id) == sha)

    def delete_model_state(self, state_name: str) -> None:
        """Delete a state: every model leaves it (recorded in each domain's history)."""
        self._check_state_exists(state_name)
        for domain in sorted(self.refs.domains()):
            for mid, sha in sorted(self._index(domain).states.get(state_name, {}).items()):
                self._unset_state(domain, mid, sha, state_name)

        def remove(names: set[str]) -> bool:
            if state_name not in names:
                return False
            names.discard(state_name)
            return True

        update_states(self.odb, self.refs, _author(), f"delete state {state_name}", remove)

    def delete_model(self, domain: str, model_id: str, skip_prompt: bool = True) -> None:
        """Delete a model: it leaves listings, loads and states; the deletion is logged.

        Its chunks are freed by the next ``gc`` unless another model still uses
        them.  A new model may be committed under the same ID afterwards.
        (``skip_prompt`` is accepted for modelstore compatibility; the API never prompts.)

        Raises:
            ModelNotFoundException: no such model.
        """
        sha = self._model_commit(domain, model_id)
        with deferred_interrupts(), self._write_errors():
            if not self.refs.remove_if_equals(model_ref(domain, model_id), sha):
                raise ModelNotFoundException(domain, model_id)  # deleted or replaced meanwhile

            def drop(idx: DomainIndex) -> bool:
                changed = idx.models.pop(model_id, None) is not None
                for members in idx.states.values():
                    changed = members.pop(model_id, None) is not None or changed
                return changed

            append_event(self.odb, self.refs, domain, _author(), "delete", model_id, sha, drop)

    def model_exists(self, domain: str, model_id: str) -> bool:
        check_domain(domain)
        check_model_id(model_id)
        return self.refs.get(model_ref(domain, model_id)) is not None

    def _resolve(self, domain: str, model_id: str | None) -> tuple[ObjectID, Manifest, Tree]:
        check_domain(domain)
        if model_id is None:
            ids = self.list_models(domain)
            if not ids:
                raise ModelNotFoundException(domain, None)
            model_id = ids[0]
        sha = self._model_commit(domain, model_id)
        c = self.odb.read(sha, Commit)
        assert isinstance(c, Commit)
        root = self.odb.read(c.tree, Tree)
        assert isinstance(root, Tree)
        try:
            mode, manifest_id = root[b"manifest"]
            mode2, files_id = root[b"files"]
        except KeyError:
            raise CorruptObjectError(c.tree.decode(), "model tree lacks manifest or files") from None
        blob = self.odb.read(manifest_id, Blob)
        assert isinstance(blob, Blob)
        manifest = decode_manifest(blob.as_raw_string(), manifest_id.decode())
        if manifest.domain != domain or manifest.model_id != model_id:
            raise CorruptObjectError(
                sha.decode(), f"ref {domain}/{model_id} points at model {manifest.domain}/{manifest.model_id}"
            )
        files_tree = self.odb.read(files_id, Tree)
        assert isinstance(files_tree, Tree)
        return sha, manifest, files_tree

    def _file_oids(self, files_tree: Tree, manifest: Manifest, index: int) -> list[bytes]:
        try:
            _, tid = files_tree[b"%08x" % index]
        except KeyError:
            raise CorruptObjectError(files_tree.id.decode(), f"no chunk tree for file {index}") from None
        return chunk_oids(self.odb, tid, manifest.files[index])

    def get_model_info(self, domain: str, model_id: str | None = None) -> dict[str, Any]:
        """The model's metadata: the same dict ``commit_models`` returned."""
        sha, manifest, _ = self._resolve(domain, model_id)
        return self._info(manifest, sha)

    @staticmethod
    def _info(m: Manifest, sha: ObjectID) -> dict[str, Any]:
        return {
            "domain": m.domain,
            "model_id": m.model_id,
            "commit": sha.decode(),
            "created": m.created,
            "author": m.author,
            "frameworks": {
                e.kwarg: {"framework": e.framework, "class": e.cls, "format": e.format,
                          "files": list(e.files), "library": dict(e.library)}
                for e in m.frameworks
            },
            "files": [
                {"path": f.path, "kind": f.kind, "size": f.size, "digest": "blake3:" + f.blake3.hex(),
                 "chunks": len(f.keys)}
                for f in m.files
            ],
            "extra_files": m.extra_files,
            "extra_metadata": m.extra_metadata,
            "environment": dict(m.environment),
            "stats": dict(m.stats),
        }

    def _pool(self) -> ThreadPoolExecutor:
        from .parallel import default_workers

        return ThreadPoolExecutor(default_workers(), thread_name_prefix="cas-read")

    def download(self, local_path: str | os.PathLike[str], domain: str, model_id: str | None = None) -> str:
        """Write every file of the model (extra files included) into ``local_path``.

        The directory is created if missing; each file appears atomically and only
        after all of its bytes verified.  Returns ``local_path``.
        """
        root = os.path.abspath(os.fspath(local_path))
        sha, manifest, files_tree = self._resolve(domain, model_id)
        os.makedirs(root, exist_ok=True)
        self.odb.index.refresh()  # packs may have been merged by another process
        counter = Counter(self.progress, "downloading", sum(f.size for f in manifest.files))
        with self._pool() as pool:
            for i, f in enumerate(manifest.files):
                write_file(self.odb, f, self._file_oids(files_tree, manifest, i), root, pool,
                           2 * pool._max_workers + 2, counter)
        return root

    def load(self, domain: str, model_id: str | None = None) -> Any:
        """Load the model(s) committed under ``model_id`` (default: the newest).

        Returns the object itself when one model was committed, else a dict keyed
        by framework name (``models["sklearn"]``, ``models["shap"]``).  Extra
        files are never loaded.  Frameworks that only store files (model_file)
        give the path of the downloaded file.

        Loading runs the framework's deserialiser; for joblib/pickle formats that
        executes code from the store, so load only models you trust.
        """
        sha, manifest, files_tree = self._resolve(domain, model_id)
        self.odb.index.refresh()  # packs may have been merged by another process
        index = {f.path: i for i, f in enumerate(manifest.files)}
        work = tempfile.mkdtemp(prefix="casstore-load-")
        keep = False
        result: dict[str, Any] = {}
        try:
            with self._pool() as pool:
                window = 2 * pool._max_workers + 2
                for e in manifest.frameworks:
                    fw = by_name(e.framework)
                    paths: dict[str, str | BinaryIO] = {}
                    finish: list[Callable[[], None]] = []
                    for name in e.files:
                        i = index[name]
                        f, oids = manifest.files[i], self._file_oids(files_tree, manifest, i)
                        if fw.loads:
                            # deserialise while chunks are decompressed and verified: no
                            # temporary file, memory bounded by the read window
                            paths[name], done = open_file(self.odb, f, oids, pool, window)
                            finish.append(done)
                        else:
                            paths[name] = write_file(self.odb, f, oids, os.path.join(work, e.kwarg), pool, window)
                    keep = keep or not fw.loads
                    if e.framework in result:
                        raise CorruptObjectError(sha.decode(), f"two entries for framework {e.framework}")
                    result[e.framework] = fw.load(paths, e.cls, e.format)
                    for done in finish:
                        done()  # whatever the deserialiser did not read is verified too
                    if fw.loads:
                        shutil.rmtree(os.path.join(work, e.kwarg), ignore_errors=True)
        finally:
            if not keep:
                shutil.rmtree(work, ignore_errors=True)
        if len(result) == 1:
            return next(iter(result.values()))
        return result

    def read_file(self, domain: str, model_id: str, path: str) -> bytes:
        """The verified content of one stored file (small files; use download for big ones)."""
        sha, manifest, files_tree = self._resolve(domain, model_id)
        for i, f in enumerate(manifest.files):
            if f.path == path:
                with self._pool() as pool:
                    return b"".join(iter_file(self.odb, f, self._file_oids(files_tree, manifest, i), pool, 4))
        raise FileNotFoundError(f"{domain}/{model_id} has no file {path!r}")

    def fsck(self, read_data: bool = False) -> FsckReport:
        """Check the whole store and return a report listing every problem.

        With ``read_data=True`` every chunk is decompressed and verified too.
        """
        return fsck(self, read_data=read_data,
                    progress=Counter(self.progress, "verifying", 0) if read_data else None)

    def diff(self, domain: str, id_a: str, id_b: str) -> dict[str, Any]:
        """What changed from model ``id_a`` to ``id_b``: files, shared chunks, metadata."""
        return stats.diff(self, domain, id_a, id_b)

    def du(self) -> dict[str, Any]:
        """Logical and stored bytes per domain and in total."""
        return stats.du(self)

    def gc(self, grace_period: float = DEFAULT_GRACE) -> GcReport:
        """Remove objects no ref reaches that are older than ``grace_period`` seconds.

        The default grace period is two weeks, like git's.  Runs under the
        store's exclusive lock: it waits for commits in progress and commits
        wait for it.  Memory: a few bytes per object, whatever the store size.
        """
        return gc(self, grace_period, progress=Counter(self.progress, "marking", 0))

    def push(self, remote: str, domains: Sequence[str] | None = None) -> SyncResult:
        """Send what ``remote`` lacks: models, their objects, histories, states.

        ``remote`` is a configured remote name or a URL (path, ``file://``,
        ``ssh://``, ``user@host:path``, ``git://``, ``http(s)://``).  Never
        overwrites a model on the remote; conflicting IDs are reported in the
        result and everything else is pushed.  A domain whose remote history
        this store has never seen is reported as diverged: pull first.
        """
        from .remote.config import resolve_remote
        from .remote.sync import push

        return push(self, resolve_remote(self, remote), list(domains) if domains else None, self.progress)

    def pull(self, remote: str, domains: Sequence[str] | None = None, *, theirs: bool = False) -> SyncResult:
        """Fetch models and histories from ``remote`` and merge them in.

        Everything received is verified before any ref moves; a hostile or
        broken remote leaves this store as it was.  Never overwrites a local
        model: a domain with a conflicting ID is left as it was and the ID
        reported; other domains complete.  ``theirs=True`` resolves conflicts
        by deleting our model (logged) and taking the remote's.
        """
        from .remote.config import resolve_remote
        from .remote.sync import pull

        return pull(self, resolve_remote(self, remote), list(domains) if domains else None, self.progress,
                    take_theirs=theirs)

    def log(self, domain: str) -> list[Event]:
        """The domain's history, newest first."""
        check_domain(domain)
        head = self.refs.get(domain_ref(domain))
        if head is None:
            raise DomainNotFoundException(domain)
        return list(iter_log(self.odb, head))


def _extra_sources(
    extra_files: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None,
) -> Iterable[tuple[str, str]]:
    """(name in the store, local path) for every extra file; directories recursively.

    Checks every path before anything is stored.
    """
    if extra_files is None:
        return []
    if isinstance(extra_files, (str, os.PathLike)):
        extra_files = [extra_files]
    out: list[tuple[str, str]] = []
    for item in extra_files:
        p = os.fspath(item)
        if not os.path.exists(p):
            raise FileNotFoundError(f"extra file {p!r} does not exist")
        base = os.path.basename(os.path.normpath(p))
        if os.path.isdir(p):
            found = []
            for dirpath, _dirnames, filenames in os.walk(p):
                for fn in filenames:
                    full = os.path.join(dirpath, fn)
                    rel = os.path.relpath(full, p).replace(os.sep, "/")
                    _check_regular(full)
                    found.append((f"{base}/{rel}", full))
            out.extend(sorted(found))
        else:
            _check_regular(p)
            out.append((base, p))
    return out


def _check_regular(path: str) -> None:
    import stat

    if not stat.S_ISREG(os.stat(path).st_mode):
        raise CasError(f"extra file {path!r} is not a regular file")

