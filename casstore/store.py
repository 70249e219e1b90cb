"""The Store: commit, load, download and list models.

Over 500 lines because the public API's reference docstrings (about 430 lines) live here; the
Store is a facade (argument checks, locks, delegation) and its work is in ``model/`` and
``actions/`` (docs/architecture.md).

Durability and concurrency, in one place:

* A commit writes its new chunks into one pack (fsynced, published ``.idx``
  last), then its trees, manifest and commit as loose objects (fsynced), then
  creates ``refs/cas/models/<domain>/<id>`` with create-if-absent, then appends
  the event to the domain history with compare-and-swap.  A crash before the ref
  leaves only unreferenced objects, which ``gc`` removes after its grace period.
* Creating the ref *is* the existence check, so of several processes committing
  the same ID exactly one succeeds and the others get ModelExistsException.
* Every writer holds ``cas/gc.lock`` shared for its whole operation (gc holds it
  exclusively), so gc never deletes an object written but not yet referenced.
* Every change of a model ref and the history event recording it happen under
  the domain's lock (``cas/locks/domain-<domain>.lock``), after recording
  whatever a writer killed between those two steps left out (history.reconcile).
  So once the writers of a domain are done, its history lists exactly the models
  its refs hold.  Readers take no lock: while a writer is between the two steps,
  ``list_models`` may show a model that ``log`` does not show yet.
* Every byte that ``load`` and ``download`` return was checked against the
  manifest (chunk BLAKE3 keys, whole-file xxh3); corruption raises
  CorruptObjectError naming the object and never yields wrong bytes.  A file
  ``load`` reuses from its load cache (ops/loadcache.py) was checked so when
  written, and again (size, whole-file xxh3) on each reuse.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Literal

from dulwich.objects import ObjectID, Tree

from .actions import loading
from .actions.commit import SaveFn, commit_model, given_files, plan_models, save_object
from .actions.info import info_dict
from .actions.location import check_remote_url as check_remote_url
from .actions.location import default_store_path as default_store_path
from .actions.location import init_store as init_store
from .actions.location import is_git_repository as is_git_repository
from .actions.location import is_store as is_store
from .actions.location import local_remote_path as local_remote_path
from .actions.location import missing_store_error as missing_store_error
from .actions.location import protect_git_repository as protect_git_repository
from .actions.location import remote_hook_missing as remote_hook_missing
from .actions.location import remote_schemes as remote_schemes
from .actions.location import resolve_store as resolve_store
from .actions.synclog import log_sync
from .errors import (
    DomainNotFoundException,
    FrameworkError,
    ModelExistsException,
    ModelNotFoundException,
    NoModelInStateError,
    NotAStoreError,
    SigningError,
    UnsignedModelError,
    UnsignedModelWarning,
)
from .frameworks import Framework, Saved, by_name
from .model.commit import (
    extra_sources,
    write_copy,
)
from .model.deletion import delete, deleted_models, restore
from .model.history import (
    DomainIndex,
    Event,
    convert_layout,
    events_since,
    iter_log,
    read_index,
    read_states,
)
from .model.listing import check_state_exists, iter_model_commits, iter_models, list_models
from .model.manifest import FileEntry, Manifest
from .model.manifest import decode as decode_manifest
from .model.metadata import plain_metadata
from .model.notes import check_note, check_tag, note_trailer
from .model.openfile import StoredFile
from .model.readback import Downloaded
from .model.reading import StoredModel, model_commit, read_model
from .model.signatures import Verifier, verify_domain
from .model.stateops import annotate, create_state, delete_state, remove_state, set_state
from .model.views import DomainViews
from .model.writer import domain_writer
from .objects.chunker import ChunkParams
from .objects.codec import DEFAULT_LEVEL
from .objects.refs import domain_ref, model_ref
from .objects.repository import Repository
from .ops import stats
from .ops.fsck import FsckReport, fsck, repair_histories
from .ops.gc import DEFAULT_GRACE, DEFAULT_WAIT, GcReport, gc, parse_duration
from .ops.loadcache import LoadCache
from .util.config import get_setting, parse_bool
from .util.identity import author, parse_identity
from .util.locking import WaitFn
from .util.names import check_domain, check_model_id, check_state, new_model_id
from .util.progress import Counter, ProgressFn, default_progress
from .util.sshsig import Verdict, key_signer, require_policy, signing_key, signs_by_default

if TYPE_CHECKING:
    # BucketClient, ModelChange and SyncResult: re-exported for the front ends' annotations
    from .remote.bucket import BucketClient as BucketClient
    from .remote.sync import ModelChange as ModelChange
    from .remote.sync import RemoteRefs
    from .remote.sync import SyncResult as SyncResult
from .model.states import list_states
from .modelinfo import ModelInfo

#: what the store does, for applications and `cas -v`; silent unless the application
#: configures logging (casstore/__init__.py adds a NullHandler, as libraries should)
log = logging.getLogger("casstore")


def clone_store(url: str, path: str | os.PathLike[str], *,
                progress: ProgressFn | None | Literal["default"] = "default") -> tuple[Store, SyncResult]:
    """A new store at ``path`` holding everything at ``url``: ``cas init``, ``cas remote add
    origin URL`` and ``cas pull``, as ``git clone`` does.  ``path`` must be missing or an
    empty directory; if anything fails, it is left as it was (missing, or empty).
    ``progress``: the pull's progress (default: the store's, bars on a terminal).

    Returns the open store and the pull's result.
    """
    from .remote.config import add_remote, check_url

    check_url(url)
    root = os.path.abspath(os.fspath(path))
    existed = os.path.isdir(root)
    if os.path.exists(root) and not (existed and not os.listdir(root)):
        raise NotAStoreError(root, "already exists and is not an empty directory: clone into a new one")
    try:
        init_store(root)
        store = Store(root)
        if progress != "default":
            store.progress = progress
        try:
            add_remote(store.repo, "origin", url)
            result = store.pull("origin")
        except BaseException:
            store.close()
            raise
    except BaseException:
        for entry in os.listdir(root) if os.path.isdir(root) else []:
            full = os.path.join(root, entry)
            shutil.rmtree(full) if os.path.isdir(full) and not os.path.islink(full) else os.unlink(full)
        if not existed and os.path.isdir(root):
            os.rmdir(root)
        raise
    return store, result


def open_store(path: str | os.PathLike[str] | None = None, *, create: bool = True) -> Store:
    """Open the store at ``path`` ($CAS_STORE, else ~/.casstore; see :func:`resolve_store`).

    With ``create=True`` (the default) a missing store, or an empty directory,
    becomes a new empty store.  With ``create=False`` a missing store raises
    :class:`NotAStoreError` naming the path and where it came from.
    """
    p, source = resolve_store(path)
    if create and (not os.path.exists(p) or (os.path.isdir(p) and not os.listdir(p))):
        init_store(p)
    elif not create and not os.path.exists(p):
        raise missing_store_error(p, source)  # anything else there: Repository says what is wrong
    return Store(p)


class Store:
    """A casstore store.  Safe to use from several processes at once.

    One Store object may be shared by threads for reading; commits from several
    threads are safe too (each writes its own pack).
    """

    def __init__(self, path: str) -> None:
        #: the repository underneath: objects, refs, locks (what gc, fsck and remotes use)
        self.repo = Repository(path)
        self.path = self.repo.path
        self.odb = self.repo.odb
        self.refs = self.repo.refs
        self.params = ChunkParams()
        self.level = DEFAULT_LEVEL
        #: ``load``'s default for ``allow_pickle``: the store's ``cas.allowPickle`` setting
        #: (true unless set, there or in the user's casstore config; set it to false for a
        #: store pulled from elsewhere)
        pickle = get_setting(self.repo.config_path, "cas.allowPickle")
        self.allow_pickle = True if pickle is None else parse_bool(pickle, "cas.allowPickle")
        #: progress(label, done, total) for long operations: by default tqdm bars in a notebook
        #: or on a terminal and None elsewhere (util/progress.py); assign None to silence it
        self.progress: ProgressFn | None = default_progress()
        #: how ``commit_models`` stores a plain scikit-learn estimator: ``"joblib"`` (a pickle, the
        #: default) or ``"skops"`` (data, loaded with skops' trusted-types check); the store's
        #: ``cas.sklearnFormat`` setting
        self.sklearn_format = get_setting(self.repo.config_path, "cas.sklearnFormat") or "joblib"
        #: what reading a model not signed by an allowed key does: ``"off"``, ``"warn"`` or
        #: ``"refuse"`` (the store's ``cas.requireSigned``; docs/signing.md)
        self.require_signed = require_policy(self.path)
        self._verifier: Verifier | None = None
        #: the models' states, notes and tags, read once per history head (model/views.py)
        self._views = DomainViews(self.repo)

    def __repr__(self) -> str:
        return f"casstore.Store({self.path!r})"

    def _lock(self) -> AbstractContextManager[None]:
        """The shared store lock of writers; a wait for it (gc running) is logged."""
        def waiting(holders: str, waited: float) -> None:
            log.info("waiting for the store lock (%.0fs so far), held by %s", waited, holders)

        return self.repo.lock(on_wait=waiting)

    def close(self) -> None:
        self.repo.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- committing -------------------------------------------------------

    def commit_models(  # noqa: PLR0913 - the public API's options, modelstore-compatible
        self,
        domain: str,
        *,
        model_id: str | None = None,
        extra_files: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
        extra_metadata: dict[Any, Any] | None = None,
        created: _dt.datetime | None = None,
        sign: bool | str | None = None,
        **models: Any,
    ) -> dict[str, Any]:
        """Store one or more models, with extra files and metadata, under a new ID.

        Args:
            domain: the domain (a name like a model ID).
            model_id: the new model's ID; a UUID4 by default.
            extra_files: a path or a list of paths; directories are included
                recursively.  Stored and downloaded, never loaded.
            extra_metadata: any msgpack-serialisable dict, returned unchanged
                by ``get_model_info`` (tuples become lists; numpy scalars and
                one-element arrays become Python numbers and bools).
            created: the model's creation time (timezone-aware; default: now).
                For imports from other registries, which keep their models'
                original times; listings order models by it.
            sign: True signs the model commit and its history event with the configured
                key (``cas.signingKey``, else git's ``user.signingKey``), a string signs with
                that key file, False does not sign, None (default) follows ``cas.signCommits``
                (docs/signing.md).
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
        check_domain(domain)  # the names first: their errors win over the objects'
        if model_id is not None:
            check_model_id(model_id)
        if not models:
            raise TypeError("commit_models() needs at least one model, e.g. model=clf")
        plan = plan_models(models, self.sklearn_format)
        with self._signing(sign):
            return self._commit(domain, model_id, plan, save_object, extra_files, extra_metadata, created)

    def _signing(self, sign: bool | str | None) -> AbstractContextManager[None]:
        """The block's commits signed as ``sign`` asks (see ``commit_models``)."""
        if sign is None:  # cas.signCommits: a missing key fails here, before anything is written
            return self.odb.signing(self.repo.configured_signer())
        if sign is False:
            return self.odb.signing(None)
        return self.odb.signing(self.repo.signer() if sign is True else key_signer(str(sign)))

    def commit_files(  # noqa: PLR0913 - the public API's options
        self,
        domain: str,
        *,
        frameworks: Sequence[tuple[str, str, Saved]],
        model_id: str | None = None,
        extra_files: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
        extra_metadata: dict[Any, Any] | None = None,
        created: _dt.datetime | None = None,
        author: str | None = None,
    ) -> dict[str, Any]:
        """Store model files that a framework already wrote, as ``commit_models`` would.

        ``author`` (``Name <email>``; default: the writer's identity) is the model's
        author as the other registry recorded it.

        For imports from other registries: their files are stored byte for byte
        (never deserialised and saved again), with the framework entry that
        loads them.  ``frameworks`` lists ``(kwarg, framework name, Saved)``;
        every file of a ``Saved`` is read from its local path.  The guarantees,
        arguments and exceptions are those of ``commit_models``, plus:

        Raises:
            FrameworkError: an unknown framework name, or no entries.
            InvalidIdentityError: ``author`` would make a commit ``git fsck --strict`` rejects.
        """
        if not frameworks:
            raise FrameworkError("commit_files() needs at least one framework entry")
        plan = [(kwarg, by_name(name), saved) for kwarg, name, saved in frameworks]
        ident = None if author is None else parse_identity(author, "author")
        return self._commit(domain, model_id, plan, given_files, extra_files, extra_metadata, created, ident)

    def _commit(  # noqa: PLR0913 - what both commit entry points pass on
        self,
        domain: str,
        model_id: str | None,
        plan: Sequence[tuple[str, Framework, Any]],
        save: SaveFn,
        extra_files: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None,
        extra_metadata: dict[Any, Any] | None,
        created: _dt.datetime | None,
        given_author: bytes | None = None,
    ) -> dict[str, Any]:
        """The body of ``commit_models`` and ``commit_files``: ``save(kwarg, fw, item, dir)`` writes each entry."""
        check_domain(domain)
        model_id = new_model_id() if model_id is None else check_model_id(model_id)
        if created is not None and created.tzinfo is None:
            raise TypeError("created must be a timezone-aware datetime")
        if created is not None:
            # listings sort the ISO strings: every model's time must be in one zone (UTC, as the default: now)
            created = created.astimezone(_dt.timezone.utc)
        extra_metadata = self._check_metadata(extra_metadata)
        extras = list(extra_sources(extra_files))
        ident = author(self.path) if given_author is None else given_author  # validated before any write
        if self.model_exists(domain, model_id):
            raise ModelExistsException(domain, model_id)

        with self._lock(), self.odb.deferred(), self.scratch_dir("commit-") as work:
            manifest, commit_id = commit_model(
                self.repo, work, plan, save, extras, domain=domain, model_id=model_id, created=created,
                ident=ident, extra_metadata=extra_metadata, params=self.params, level=self.level,
                progress=self.progress)
        return info_dict(decode_manifest(manifest.encode()), commit_id)

    def copy_model(self, domain: str, model_id: str, new_id: str) -> dict[str, Any]:
        """Commit the model ``domain/model_id`` again as ``domain/new_id``, sharing its files.

        This is how to keep *our* side of a push/pull conflict (``cas cp``): the copy
        gets a new manifest (the same one with the new ID) next to the very same
        ``files`` tree, so no chunk is read or written again; it costs a manifest
        (about 32 bytes per chunk), a tree, a commit and a history event.  The copy
        keeps the original's created time, author, metadata and files, and is logged
        as a ``commit`` event with a ``Cas-Copied-From`` trailer.

        Returns:
            The new model's metadata, as ``get_model_info`` returns it.

        Raises:
            ModelNotFoundException, DomainNotFoundException: no such model.
            ModelExistsException: ``new_id`` is taken (checked atomically).
            InvalidIdError: ``new_id`` breaks the naming rules.
        """
        check_model_id(new_id)
        sha, manifest, files_tree = self._resolve(domain, model_id)
        if self.model_exists(domain, new_id):
            raise ModelExistsException(domain, new_id)
        ident = author(self.path)
        with self._lock():  # gc must not collect the new objects before the ref exists
            copy, commit_id = write_copy(self.repo, StoredModel(sha, manifest, files_tree), new_id, ident)
        return info_dict(decode_manifest(copy.encode()), commit_id)

    upload = commit_models

    @staticmethod
    def _check_metadata(meta: Any) -> Any:
        return plain_metadata(meta)  # numpy scalars made plain (model/metadata.py)

    # -- reading ----------------------------------------------------------

    def list_domains(self) -> list[str]:
        """Every domain that has (or had) models, sorted by name."""
        return sorted(self.refs.domains())

    def list_models(self, domain: str, state_name: str | None = None, limit: int | None = None) -> list[str]:
        """The domain's model IDs, newest first; only those in ``state_name`` if given.

        Newest first means by creation time (``created``), then by ID, both
        descending.  With ``limit``, the first ``limit`` of that same list, read
        from the newest end of the domain history: about ``limit`` history events,
        ref reads and model commits, whatever the domain's size (see
        model/listing.py's ``first_models`` for when it must read every model instead).

        Raises:
            DomainNotFoundException: the domain was never used.
            StateNotFoundException: ``state_name`` was never created.
            ValueError: ``limit`` is negative.
        """
        return list_models(self.repo, domain, state_name, limit)

    def iter_models(self, domain: str, state_name: str | None = None) -> Iterator[str]:
        """The domain's model IDs, newest first, read lazily from the domain history.

        The first ``n`` IDs cost about ``n`` history commits (plus the deletions and
        state changes between them) and one ref read each, whatever the size of the
        domain: this is what ``cas ls | head`` and a first page need; ``list_models``
        reads every model.  The order is the history's: commit events newest first
        (merged histories interleaved by time, like ``git log``).  That is
        ``list_models``' order, except that models created within the same second
        by concurrent writers come in the order their events were recorded.  Models
        whose ref the history does not record yet (a writer killed between its two
        steps) come last, in ``list_models`` order.

        Raises:
            DomainNotFoundException: the domain was never used (raised at once).
            StateNotFoundException: ``state_name`` was never created.
        """
        return iter_models(self.repo, domain, state_name)

    def history_head(self, domain: str) -> ObjectID | None:
        """The head of the domain's history (None: no history yet).  Every commit, deletion
        and state change moves it, so it keys anything computed from the domain's models."""
        return self.refs.get(domain_ref(check_domain(domain)))

    def events_since(self, domain: str, head: ObjectID | None, old: ObjectID,
                     limit: int = 10_000) -> list[Event] | None:
        """The domain's events from ``head`` back to an older head ``old``, newest first, if
        the history between is a straight line of at most ``limit`` commits (else None):
        what changed since a view of the domain was computed at ``old``."""
        check_domain(domain)
        return events_since(self.odb, head, old, limit)

    def iter_model_commits(self, domain: str, head: ObjectID | None) -> Iterator[tuple[str, str]]:
        """(model ID, model commit) of the domain's live models, newest first (see ``iter_models``).

        ``head`` is the domain history's head as the caller read it (None: no history),
        so that a caller paging through the list reads one version of it.
        """
        return iter_model_commits(self.repo, domain, head)

    # -- states and deletion ------------------------------------------------

    def _index(self, domain: str) -> DomainIndex:
        return read_index(self.odb, self.refs.get(domain_ref(domain)))

    def _check_state_exists(self, state: str) -> None:
        check_state_exists(self.repo, state)

    def create_model_state(self, state_name: str) -> None:
        """Create a model state (a no-op if it exists)."""
        check_state(state_name)
        with self._lock():  # gc must not take the new commit before the ref names it
            create_state(self.repo, state_name)

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
        check_domain(domain)
        check_model_id(model_id)
        with self._lock():
            set_state(self.repo, domain, model_id, state_name)

    def convert_layout(self, domain: str | None = None) -> list[str]:
        """Rewrite domain histories' indexes in the current layout now (``cas convert-layout``).

        Every domain (or ``domain``) whose index is in an older layout (flat,
        256-shard) or another shape gets one ``layout`` event, under the domain's
        lock; any write converts a domain anyway (docs/format.md, "Index layout").
        Returns the domains converted.
        """
        done = []
        for d in [check_domain(domain)] if domain is not None else self.list_domains():
            with self._lock(), domain_writer(self.repo, d):
                if convert_layout(self.odb, self.refs, d, author(self.path)):
                    done.append(d)
        return done

    def remove_model_state(self, domain: str, model_id: str, state_name: str) -> None:
        """Take a model out of a state (a no-op if it is not in it)."""
        self._check_state_exists(state_name)
        check_domain(domain)
        check_model_id(model_id)
        with self._lock():
            remove_state(self.repo, domain, model_id, state_name)

    def get_model_states(self, domain: str, model_id: str) -> list[str]:
        """The states the model is in, sorted."""
        sha = model_commit(self.repo, domain, model_id)
        idx = self._index(domain)
        return sorted(s for s, members in idx.states.items() if members.get(model_id) == sha)

    def delete_model_state(self, state_name: str) -> None:
        """Delete a state: every model leaves it (recorded in each domain's history)."""
        self._check_state_exists(state_name)
        with self._lock():
            delete_state(self.repo, state_name)

    def delete_model(self, domain: str, model_id: str, skip_prompt: bool = True) -> None:
        """Delete a model: it leaves listings, loads and states; the deletion is logged.

        Its chunks are freed by the next ``gc`` unless another model still uses
        them.  A new model may be committed under the same ID afterwards.
        (``skip_prompt`` is accepted for modelstore compatibility; the API never prompts.)

        Raises:
            ModelNotFoundException: no such model.
        """
        check_domain(domain)
        check_model_id(model_id)
        ident = author(self.path)  # validated before the ref goes
        with self._lock():
            sha = delete(self.repo, domain, model_id, ident)
        log.info("deleted %s/%s (%s)", domain, model_id, sha.decode()[:10])

    def restore_model(self, domain: str, model_id: str, commit: str | None = None, *,
                      states: bool = False, new_id: str | None = None) -> dict[str, Any]:
        """Bring back a deleted model from its history, while its objects are still in the store.

        Restores the newest deletion of ``model_id`` in ``domain``, or the one of
        model commit ``commit`` (a prefix of 4 or more hex digits will do; ``cas log``
        lists deletions with their commits).  The model is committed again under its
        ID as a new model commit with the same files (nothing is read or written
        again) and logged as a ``commit`` event with ``Cas-Restored-From``; push and
        pull carry it like any commit.  ``states=True`` also puts it back in the
        states it held when it was deleted (those that still exist).  ``new_id``
        restores it under another ID (e.g. our model that ``pull(theirs=True)``
        replaced, while theirs holds the ID).

        A deleted model's objects stay for gc's grace period after the deletion
        (two weeks by default; ``cas log`` says until when); ``gc`` with a shorter
        grace frees them sooner, and then nothing can restore it.

        Returns:
            The model's metadata, as ``get_model_info`` returns it, plus
            ``restored_from`` (the deleted commit) and ``states`` (those restored).

        Raises:
            ModelExistsException: the ID (or ``new_id``) is taken now (checked atomically, as a commit's).
            RestoreError: no deletion of that ID (or commit), or its objects were freed.
        """
        check_domain(domain)
        check_model_id(model_id)
        target = model_id if new_id is None else check_model_id(new_id)
        if self.refs.get(domain_ref(domain)) is None:
            raise DomainNotFoundException(domain)
        if self.model_exists(domain, target):
            raise ModelExistsException(domain, target)
        ident = author(self.path)
        with self._lock():  # gc must neither free the old objects nor the new commit meanwhile
            manifest, new, gone, held = restore(self.repo, domain, model_id, commit, target, ident, states=states)
        restored = []
        existing = set(self.list_model_states())
        for state in held:
            if state in existing:
                self.set_model_state(domain, target, state)
                restored.append(state)
            else:
                warnings.warn(f"casstore: {domain}/{model_id} was in state {state!r}, which no longer exists: "
                              f"not restored", stacklevel=2)
        log.info("restored %s/%s (%s) from %s", domain, target, new.decode()[:10], gone.commit.decode()[:10])
        return {**info_dict(manifest, new), "restored_from": gone.commit.decode(), "states": restored}

    def deleted_models(self, domain: str, grace_period: float = DEFAULT_GRACE) -> list[dict[str, Any]]:
        """Every deletion in the domain's history, newest first, and whether it can be restored.

        Each: ``model_id``, ``commit`` (the deleted model commit), ``deleted`` (ISO
        time), ``history_commit``, ``restorable`` (its model commit is still here and
        the ID is free now), ``id_taken`` (the ID holds another model now),
        ``kept_until`` (ISO time: deletion + ``grace_period``, until which ``gc``
        with that grace keeps its objects; None once they are gone).  Cheap: the
        objects' presence is judged by the model commit, which gc frees with them.
        """
        check_domain(domain)
        return deleted_models(self.repo, domain, grace_period)

    def model_exists(self, domain: str, model_id: str) -> bool:
        check_domain(domain)
        check_model_id(model_id)
        return self.refs.get(model_ref(domain, model_id)) is not None

    def _resolve(self, domain: str, model_id: str | None) -> tuple[ObjectID, Manifest, Tree]:
        """The model ``model_id`` of ``domain``, or its newest model when ``model_id`` is None."""
        check_domain(domain)
        if model_id is None:
            # the newest event, not a sort of every model: cheap in a domain of any size
            model_id = next(self.iter_models(domain), None)
            if model_id is None:
                raise ModelNotFoundException(domain, None)
        m = read_model(self.repo, domain, model_id)
        return m.commit, m.manifest, m.files_tree

    def _in_state(self, domain: str, model_id: str | None, state: str | None) -> str | None:
        """The ID to read: ``model_id``, or with ``state`` the newest model in that state
        (newest as ``list_models`` orders them)."""
        if state is None:
            return model_id
        if model_id is not None:
            raise ValueError(f"give a model ID ({model_id!r}) or a state ({state!r}), not both")
        found = self.list_models(domain, state, limit=1)
        if not found:
            raise NoModelInStateError(domain, state)
        return found[0]

    def get_model_info(self, domain: str, model_id: str | None = None, *, state: str | None = None,
                       annotations: bool = True) -> dict[str, Any]:
        """The model's metadata: the same dict ``commit_models`` returned, with
        ``states`` now the states the model is in (sorted), as ``cas show --json``.
        ``state`` instead of ``model_id``: the newest model in that state (as ``load``).
        With ``annotations`` (the default), also its ``notes`` and ``tags`` (``add_note``):
        the first call after the history moved reads the history's note and tag events
        (model/notes.py); callers that list many models and need neither pass False
        (both are then empty lists)."""
        sha, manifest, _ = self._resolve(domain, self._in_state(domain, model_id, state))
        info = info_dict(manifest, sha)
        info["states"] = self._views.states_of(domain, manifest.model_id, sha)
        if annotations:
            info.update(self._views.annotations_of(domain, manifest.model_id, sha))
        return info

    # -- notes and tags (model/notes.py) -----------------------------------------

    def add_note(self, domain: str, model_id: str, text: str) -> None:
        """Add a note to a model, without a new model commit: one event of the domain history.

        The note travels and merges with the history on push and pull; notes are
        kept in the order written, never edited.

        Raises:
            NoteError: an empty note, one over 16 KiB of UTF-8, or not valid UTF-8.
            ModelNotFoundException: no such model.
        """
        text = check_note(text)
        self._annotate(domain, model_id, "note", raw={"Note": note_trailer(text)},
                       summary=text)

    def set_tag(self, domain: str, model_id: str, tag: str) -> None:
        """Tag a model (``candidate``, ``reviewed`` ...); a tag it has already records nothing.

        Raises:
            NoteError: a tag name that breaks the naming rules.
            ModelNotFoundException: no such model.
        """
        tag = check_tag(tag)
        if tag not in self._views.annotations_of(domain, model_id, model_commit(self.repo, domain, model_id))["tags"]:
            self._annotate(domain, model_id, "tag", trailers={"Tag": tag})

    def delete_tag(self, domain: str, model_id: str, tag: str) -> None:
        """Take a tag off a model; a tag it does not have records nothing.

        Raises:
            NoteError, ModelNotFoundException.
        """
        tag = check_tag(tag)
        if tag in self._views.annotations_of(domain, model_id, model_commit(self.repo, domain, model_id))["tags"]:
            self._annotate(domain, model_id, "untag", trailers={"Tag": tag})

    def get_annotations(self, domain: str, model_id: str) -> dict[str, Any]:
        """``{"notes": [{"text", "author", "time", "history_commit"}, ...], "tags": [...]}`` of a model.

        Raises:
            ModelNotFoundException: no such model.
        """
        check_domain(domain)
        check_model_id(model_id)
        return self._views.annotations_of(domain, model_id, model_commit(self.repo, domain, model_id))

    def domain_annotations(self, domain: str) -> dict[str, dict[str, Any]]:
        """The notes and tags of every model of the domain that has some, by ID (one history walk per head).

        Raises:
            DomainNotFoundException: no such domain.
        """
        if self.history_head(domain) is None:
            raise DomainNotFoundException(domain)
        return self._views.domain_annotations(domain)

    def _annotate(self, domain: str, model_id: str, event: str, trailers: dict[str, str] | None = None,  # noqa: PLR0913 - the event and what it carries
                  raw: dict[str, str] | None = None, summary: str = "") -> None:
        check_domain(domain)
        check_model_id(model_id)
        with self._lock():
            annotate(self.repo, domain, model_id, event, trailers, raw, summary)

    # -- signatures ---------------------------------------------------------

    def verifier(self) -> Verifier:
        """Checks signatures against the store's allowed signers file (``cas.allowedSigners``,
        else git's ``gpg.ssh.allowedSignersFile``); it caches verdicts (docs/signing.md)."""
        if self._verifier is None:
            self._verifier = Verifier(self.repo)
        return self._verifier

    def signing_in_use(self) -> bool:
        """Whether this store signs or checks signatures (``cas.signCommits``, an allowed
        signers file, or a ``cas.requireSigned`` policy): front ends then say "unsigned"
        where a commit has no signature, instead of saying nothing."""
        return (self.require_signed != "off" or self.verifier().allowed is not None
                or signs_by_default(self.path))

    def signature(self, domain: str, commit: str) -> Verdict:
        """Who signed ``commit`` (a model commit or a history event of ``domain``)."""
        check_domain(domain)
        return self.verifier().commit(commit, domain)

    def verify_model(self, domain: str, model_id: str | None = None) -> dict[str, Any]:
        """Who signed the model ``model_id`` of ``domain`` (default: every live model) and each
        event of its history: ``{"models": [{"model_id", "commit", "signature"}], "events":
        [{"event", "model_id", "history_commit", "time", "signature"}], "ok": bool}``, each
        signature a dict with ``status`` (good, untrusted, unsigned, bad), ``principal``, ``key``.
        ``ok`` is True when every one is good.
        """
        check_domain(domain)
        return verify_domain(self.repo, self.verifier(), domain, model_id)

    def sign_directory(self, directory: str | os.PathLike[str]) -> str:
        """Write ``directory/model.sig``, an OpenSSF model signature (``model_signing``) over the
        directory's files, with the store's signing key (an ecdsa key); returns its path.

        Raises:
            SigningError: no key, a key model_signing cannot use, or model-signing not installed.
        """
        from .util.modelsig import sign_directory

        key = signing_key(self.path)
        if key is None:
            raise SigningError("signing needs a key: `cas config cas.signingKey ~/.ssh/id_ecdsa` "
                               "(or git's user.signingKey)")
        return sign_directory(os.fspath(directory), key)

    def check_model_signature(self, path: str | os.PathLike[str], signature: str | os.PathLike[str]) -> str:
        """Check an OpenSSF model signature over ``path`` (a file or a directory) against the
        ecdsa keys of the allowed signers file; returns the principals of the key that verified.

        Raises:
            SigningError: it does not verify with any allowed key (or no file, no library).
        """
        from .util.modelsig import verify_directory

        return verify_directory(os.fspath(path), os.fspath(signature), self.verifier().allowed)

    def _trusted(self, domain: str, model_id: str | None,
                 require_signed: bool | None = None) -> StoredModel:
        """``_resolve`` for reading a model's bytes: the signature policy applies first."""
        sha, manifest, files_tree = self._resolve(domain, model_id)
        policy = self.require_signed if require_signed is None else ("refuse" if require_signed else "off")
        if policy != "off":
            verdict = self.verifier().commit(sha, manifest.domain)
            if not verdict.ok:
                err = UnsignedModelError(manifest.domain, manifest.model_id, sha.decode(), verdict.describe())
                if policy == "refuse":
                    raise err
                warnings.warn(str(err), UnsignedModelWarning, stacklevel=3)
        return StoredModel(sha, manifest, files_tree)

    def download(self, local_path: str | os.PathLike[str], domain: str, model_id: str | None = None,  # noqa: PLR0913 - the public API's options
                 *, files: Sequence[str] | None = None, force: bool = False, state: str | None = None,
                 require_signed: bool | None = None,
                 _staged: Callable[[FileEntry], str | None] | None = None) -> Downloaded:
        """Write every file of the model (extra files included) into ``local_path``.

        The directory is created if missing; each file appears atomically and only
        after all of its bytes verified.  ``files`` (stored paths, as ``cas show``
        lists them) writes only those.

        Never replaces a user's file silently (the same rule as ``cas download``):
        a file of the same name that already holds exactly the model's bytes is
        left as it is (``unchanged``); one with other content makes the call
        raise DownloadConflictError with nothing written, unless ``force=True``
        (then it is replaced and listed in ``replaced``).  Files under
        ``local_path`` that are not the model's are left alone, listed in
        ``others`` and named in an OtherFilesWarning.

        ``state`` instead of ``model_id``: the newest model in that state (as ``load``).
        ``require_signed`` as for :meth:`load`.

        Returns:
            ``local_path`` as an absolute path: a ``str`` (:class:`Downloaded`)
            whose ``written``, ``replaced``, ``unchanged`` and ``others`` say what
            happened to each file.

        Raises:
            FileNotFoundError: a name in ``files`` is not a file of the model
                (nothing is written).
            DownloadConflictError: without ``force``, files there hold other
                bytes (nothing is written).
            NoModelInStateError, StateNotFoundException: see ``load``.
            UnsignedModelError: the signature policy refuses the model.
        """
        root = os.path.abspath(os.fspath(local_path))
        model_id = self._in_state(domain, model_id, state)
        m = self._trusted(domain, model_id, require_signed)
        return loading.download(self.repo, m, root, files, force, self.progress, _staged)

    def load(self, domain: str, model_id: str | None = None, *, allow_pickle: bool | None = None,
             state: str | None = None, require_signed: bool | None = None, **into: Any) -> Any:
        """Load the model(s) committed under ``model_id`` (default: the newest; with
        ``state``, the newest model in that state: ``load("fraud", state="production")``).

        Returns the object itself when one model was committed, else a dict keyed
        by framework name (``models["sklearn"]``, ``models["shap"]``); a framework
        committed under several keywords (``model=`` and ``optimizer=`` for
        pytorch) gives a dict keyed by keyword.  Extra files are never loaded.
        Frameworks that only store files (model_file) give the path of the
        file in the store's load cache (``<store>/cas/cache/load/``): reused by
        the next load of the same model after checking it is intact, bounded by
        ``cas.loadCacheLimit`` (least recently used entries go first); read the
        file, do not change it, and copy it to keep it beyond the cache's
        eviction (see casstore/ops/loadcache.py, ``cas cache``).  ``into`` passes objects to load the state into, by
        keyword (``load(domain, id, model=net)``): they are filled and returned.

        Loading a pickle-based entry (joblib, torch pickles, shap explainers)
        executes code from the store.  With ``allow_pickle=False`` (default: the
        store's ``cas.allowPickle`` setting, true unless set) such an entry is
        refused before anything is read: :class:`PickleRefusedError` names it
        and the safe alternative.  A library whose major version differs from
        the one the model was saved with gives a warning; a failed load raises
        :class:`FrameworkError` naming both versions.

        ``require_signed=True`` refuses (:class:`UnsignedModelError`) a model whose commit
        is not signed by a key the allowed signers file allows for its domain; False loads
        it whatever its signature; None (default) follows the store's ``cas.requireSigned``
        (off, warn or refuse; docs/signing.md).

        Raises:
            NoModelInStateError: no model of the domain is in ``state`` (a
                ModelNotFoundException); StateNotFoundException: no such state;
            ValueError: both ``model_id`` and ``state`` given.
            UnsignedModelError: the signature policy refuses the model.
        """
        model_id = self._in_state(domain, model_id, state)
        m = self._trusted(domain, model_id, require_signed)
        loading.check_load(m.manifest, into, self.allow_pickle if allow_pickle is None else allow_pickle)
        return loading.load(self.repo, m, into, self.progress)

    def load_cache(self) -> LoadCache:
        """The cache of files ``load`` hands over as paths; its bound is the store's ``cas.loadCacheLimit``."""
        return loading.load_cache(self.repo)

    def read_file(self, domain: str, model_id: str, path: str) -> bytes:
        """The verified content of one stored file (small files; use download for big ones)."""
        return loading.read_file(self.repo, self._trusted(domain, model_id), path)

    def fsck(self, read_data: bool = False, repair: bool = False) -> FsckReport:
        """Check the whole store and return a report listing every problem.

        With ``read_data=True`` every chunk is decompressed and verified too.
        With ``repair=True`` the domain histories are first brought in line with
        the model refs: the events that writers killed between a ref change and
        its history append left out are recorded (``report.repaired`` lists
        them).  Nothing else is repaired, and no ref is changed.
        """
        repaired = repair_histories(self.repo) if repair else []
        for r in repaired:
            log.warning("fsck --repair: %s", r)
        report = fsck(self.repo, read_data=read_data,
                      progress=Counter(self.progress, "verifying", 0) if read_data else None)
        report.repaired = repaired
        log.info("fsck: %d models, %d files, %d chunks checked: %s", report.models, report.files, report.chunks,
                 "ok" if report.ok else f"{len(report.problems)} problems")
        return report

    def diff(self, domain: str, id_a: str, id_b: str) -> dict[str, Any]:
        """What changed from model ``id_a`` to ``id_b``: files, shared chunks, metadata."""
        return stats.diff(self.repo, domain, id_a, id_b)

    def du(self) -> dict[str, Any]:
        """Logical and stored bytes per domain and in total."""
        return stats.du(self.repo)

    def gc(self, grace_period: float | str | None = None, *, grace: float | str | None = None,
           wait: float | None = DEFAULT_WAIT, on_wait: WaitFn | None = None) -> GcReport:
        """Remove objects no ref reaches that are older than the grace period.

        ``grace`` (as ``cas gc --grace`` names it; ``grace_period`` is the same, kept
        for older code): seconds, or a duration such as ``"12h"``, ``"2w"``, ``"now"``,
        ``"never"``.  The default is two weeks, like git's; ``0`` removes every
        unreachable object, ``math.inf`` none.  A model deleted less than the grace
        period ago is kept whole, so that ``restore_model`` can bring it back.  The report counts what the grace
        period kept (``objects_kept_young``, ``bytes_kept_young``).  Runs under the store's exclusive
        lock: it waits for the writers in progress (commit, delete, state
        changes, push, pull), at most ``wait`` seconds (None: as long as it
        takes), and writers wait for it: once gc waits, new writers queue behind
        it, so steady writers cannot keep it out (util/locking.py).  While it waits,
        ``on_wait(holders, seconds)`` is told who holds the lock (by default
        ``store.progress``, if set, and the ``casstore`` logger).  Stops before
        deleting anything when a ref cannot be read or a reachable commit or
        tree is missing.  Memory: a few bytes per object, whatever the store size.

        Raises:
            InvalidDurationError: ``grace`` or ``wait`` is NaN, negative or not a duration.
            TypeError: both ``grace`` and ``grace_period`` were given.
            StoreBusyError: the lock stayed held for ``wait`` seconds; names the holders.
            CorruptRefError: a ref cannot be read (nothing was deleted).
            CorruptObjectError: a reachable object is missing or corrupt (nothing was deleted).
        """
        if on_wait is None and self.progress is not None:
            progress = self.progress
            limit = int(wait) if wait is not None and wait < 2**62 else 0

            def on_wait(holders: str, waited: float) -> None:
                progress(f"waiting for {holders}", int(waited), limit)

        if grace is not None and grace_period is not None:
            raise TypeError("gc() takes grace= or grace_period= (the same setting), not both")
        chosen = grace if grace is not None else grace_period
        period = DEFAULT_GRACE if chosen is None else parse_duration(chosen) if isinstance(chosen, str) else chosen
        report = gc(self.repo, period, progress=Counter(self.progress, "marking", 0), wait=wait,
                    on_wait=on_wait)
        log.info("gc: removed %d objects (%d packs removed, %d rewritten), freed %d bytes", report.objects_removed,
                 report.packs_removed, report.packs_rewritten, report.bytes_freed)
        return report

    def push(self, remote: str | None = None, domains: Sequence[str] | None = None) -> SyncResult:
        """Send what ``remote`` lacks: models, their objects, histories, states.

        ``remote`` is a configured remote name or a URL (path, ``file://``,
        ``ssh://``, ``user@host:path``, ``git://``, ``http(s)://``, ``s3://``);
        None: the store's ``cas.defaultRemote``, else ``origin``.  Never
        overwrites a model on the remote; conflicting IDs are reported in the
        result and everything else is pushed.  A domain whose remote history
        this store has never seen is reported as diverged: pull first.
        ``result.changes`` names every model added, deleted or replaced on the
        remote; one that held a state there is also a ModelStateLostWarning.
        """
        from .remote.config import default_remote, resolve_remote
        from .remote.sync import push

        remote = default_remote(self.repo) if remote is None else remote
        result = push(self.repo, resolve_remote(self.repo, remote), list(domains) if domains else None, self.progress)
        log_sync("push", result)
        return result

    def pull(self, remote: str | None = None, domains: Sequence[str] | None = None, *,
             theirs: bool = False, require_signed: bool | None = None) -> SyncResult:
        """Fetch models and histories from ``remote`` and merge them in.

        Everything received is verified before any ref moves; a hostile or
        broken remote leaves this store as it was.  Never overwrites a local
        model: a domain with a conflicting ID is left as it was and the ID
        reported; other domains complete.  ``theirs=True`` resolves conflicts
        by deleting our model (logged) and taking the remote's, reported as a
        replacement.  ``result.changes`` names every model added, deleted or
        replaced here, with both commits; a removed model that held a state here
        is also a ModelStateLostWarning (restore it with ``restore_model``).  ``require_signed=True``
        (default: whether the store's ``cas.requireSigned`` is ``refuse``) refuses the pull,
        changing nothing, unless every new model and history event is signed by a key the
        allowed signers file allows for its domain (:class:`UnsignedModelError` names the first).
        """
        from .remote.config import default_remote, resolve_remote
        from .remote.sync import pull

        remote = default_remote(self.repo) if remote is None else remote
        strict = self.require_signed == "refuse" if require_signed is None else require_signed
        result = pull(self.repo, resolve_remote(self.repo, remote), list(domains) if domains else None, self.progress,
                      take_theirs=theirs, require_signed=self.verifier() if strict else None)
        log_sync("pull", result)
        return result

    def log(self, domain: str) -> list[Event]:
        """The domain's history, newest first."""
        check_domain(domain)
        head = self.refs.get(domain_ref(domain))
        if head is None:
            raise DomainNotFoundException(domain)
        return list(iter_log(self.odb, head))

    # -- what the front ends read (cas, cas serve, compat): thin delegations ---------------
    # The front ends use only the Store's public API (tests/test_layers.py enforces it);
    # these give them what they once took from ``repo``, ``odb`` and ``refs``.

    def iter_log(self, domain: str, head: ObjectID | None = None) -> Iterator[Event]:
        """The domain's history events, newest first, read as they are consumed (``cas log | head``
        reads a few history commits).  ``head``: a head read before with ``history_head`` (so that
        a page reads one version of the history); default: the current one.

        Raises:
            DomainNotFoundException: the domain has no history (raised at once).
        """
        check_domain(domain)
        if head is None:
            head = self.refs.get(domain_ref(domain))
            if head is None:
                raise DomainNotFoundException(domain)
        return iter_log(self.odb, head)

    def count_models(self, domain: str) -> int:
        """How many models the domain has now: a listing of its model refs, no object read
        (0 for a domain never used)."""
        return self.refs.count_model_ids(check_domain(domain))

    def model_commit(self, domain: str, model_id: str) -> ObjectID | None:
        """The commit the model ``domain/model_id`` is now (None: no such model)."""
        return self.refs.get(model_ref(check_domain(domain), check_model_id(model_id)))

    def model_states(self, domain: str, head: ObjectID | None) -> dict[str, dict[str, str]]:
        """state -> model ID -> model commit (hex) of the domain's models in states, from the
        domain index at history head ``head`` (read with ``history_head``; None: no history,
        no states).  Reads the index's ``states`` trees only, however many models there are."""
        check_domain(domain)
        states = read_states(self.odb, head)
        return {s: {mid: sha.decode() for mid, sha in members.items()} for s, members in states.items()}

    def model_info(self, domain: str, model_id: str | None = None, *, state: str | None = None) -> ModelInfo:
        """``get_model_info`` typed: ``model_info(...).as_dict() == get_model_info(...)``."""
        return ModelInfo.from_dict(self.get_model_info(domain, model_id, state=state))

    def scratch_dir(self, prefix: str) -> tempfile.TemporaryDirectory[str]:
        """A temporary directory inside the store (same file system: a file made there is
        committed without a copy), removed when its ``with`` block ends."""
        return tempfile.TemporaryDirectory(dir=self.repo.tmp, prefix=prefix)

    def list_remotes(self) -> dict[str, str]:
        """The configured remotes: name -> URL."""
        from .remote.config import list_remotes

        return list_remotes(self.repo)

    def add_remote(self, name: str, url: str) -> None:
        """Configure remote ``name`` at ``url`` (checked: a path or a URL of a known kind)."""
        from .remote.config import add_remote

        add_remote(self.repo, name, url)

    def remove_remote(self, name: str) -> None:
        from .remote.config import remove_remote

        remove_remote(self.repo, name)

    def set_remote_url(self, name: str, url: str) -> None:
        from .remote.config import set_remote_url

        set_remote_url(self.repo, name, url)

    def rename_remote(self, name: str, new_name: str) -> None:
        from .remote.config import rename_remote

        rename_remote(self.repo, name, new_name)

    def resolve_remote(self, remote: str | None = None) -> str:
        """The URL ``remote`` names: a configured remote's, or ``remote`` itself when it is a URL or
        path; None: ``cas.defaultRemote``, else ``origin`` (as ``push`` and ``pull``)."""
        from .remote.config import default_remote, resolve_remote

        return resolve_remote(self.repo, default_remote(self.repo) if remote is None else remote)

    def remote_refs(self, remote: str | None = None) -> RemoteRefs:
        """The remote's casstore refs (``models``: domain -> ID -> commit, ``histories``, ``states``),
        from its ref listing alone: no object travels."""
        from .remote.sync import list_refs

        return list_refs(self.repo, self.resolve_remote(remote))

    def remote_status(self, remote: str | None = None) -> dict[str, Any]:
        """How this store compares with ``remote`` by model ID and history head, from the remote's
        ref listing alone (``cas status``; docs/cli.md describes the dict)."""
        from .remote.inspect import remote_status

        return remote_status(self.repo, self.resolve_remote(remote))

    def bucket_remote(self, url: str) -> BucketClient | None:
        """A client of the bucket remote at ``url`` (s3://, gs://, az://) for its maintenance
        (``gc``, ``upgrade``); None for any other kind of remote."""
        from .remote.config import cache_dir
        from .remote.transports import open_bucket

        return open_bucket(url, cache_dir(self.repo, url))

    def stream_file(self, domain: str, model_id: str, path: str,
                    window: int | None = None) -> tuple[int, Generator[bytes | memoryview, None, None]]:
        """The size of one stored file and an iterator over its bytes, for serving it.

        Each piece is verified (BLAKE3) before it is yielded and the whole file
        (xxh3, size) after the last one; a damaged object raises
        CorruptObjectError naming it, so a consumer never passes on wrong bytes
        unnoticed.  Memory stays bounded by the read window whatever the size:
        ``window`` batches of about 2 MiB read ahead (default: enough to keep
        every core busy; a server with many clients passes a small one).
        Closing the iterator early stops the reads.

        Raises:
            ModelNotFoundException, InvalidIdError; FileNotFoundError when the
            model has no file called ``path`` (matched exactly, never opened as a path).
            UnsignedModelError: the store's ``cas.requireSigned refuse`` refuses the model.
        """
        return loading.stream_file(self.repo, self._trusted(domain, model_id), path, window)

    def open_file(self, domain: str, model_id: str, path: str) -> StoredFile:
        """One stored file as a read-only, seekable binary file object (``rb``).

        Reads touch only the chunks they overlap: each is read, decompressed and
        checked against its BLAKE3 key and size before a byte of it is returned;
        read in order to the end, the whole file is checked against its xxh3 digest
        too (see :class:`~casstore.model.openfile.StoredFile`).  Use it as a context
        manager; ``.chunks_read`` counts the chunks read so far.

        Raises:
            ModelNotFoundException, InvalidIdError; FileNotFoundError when the
            model has no file called ``path`` (matched exactly, never opened as a path).
            CorruptObjectError: on a read, naming the chunk blob or file that is wrong.
            UnsignedModelError: the store's ``cas.requireSigned refuse`` refuses the model.
        """
        return loading.open_stored(self.repo, self._trusted(domain, model_id), path)

    def model_card(self, domain: str, model_id: str, max_bytes: int = 256 << 10) -> tuple[str, str] | None:
        """The model's card: (path, text) of a ``MODEL_CARD.md`` or ``README.md`` among its
        files (any case, the least nested first, MODEL_CARD before README), or None.

        At most ``max_bytes`` are read, each chunk verified (``open_file``); the text is
        UTF-8 with undecodable bytes replaced.  The Markdown is returned as stored: a
        front end that renders it must not pass raw HTML through.
        """
        info = self.get_model_info(domain, model_id, annotations=False)
        cards = [f["path"] for f in info["files"]
                 if f["path"].rsplit("/", 1)[-1].lower() in ("model_card.md", "readme.md")]
        if not cards:
            return None
        path = min(cards, key=lambda p: (p.count("/"), not p.lower().endswith("model_card.md"), p))
        with self.open_file(domain, model_id, path) as f:
            raw = f.read(max_bytes)
        return path, raw.decode("utf-8", "replace")

    def pull_download(self, local_path: str | os.PathLike[str], domain: str, model_id: str | None = None,  # noqa: PLR0913 - pull's and download's options
                      *, remote: str | None = None, force: bool = False, theirs: bool = False,
                      require_signed: bool | None = None) -> tuple[SyncResult, Downloaded]:
        """``pull(remote, [domain])``, then ``download(local_path, domain, model_id)`` (``cas pull
        --download``), reading each byte once: the pull writes the files of the model it
        verifies as it checks them, and the download moves them into place instead of
        decompressing and hashing the store's copy again (remote/staging.py).  Everything
        else is as the two calls: the same checks before any ref moves (a failed pull
        writes nothing into ``local_path``), the same choice of model (``model_id`` None:
        the domain's newest after the pull), signature policy and rules for files already
        there.  A model the store had before the pull is downloaded as usual.  The download
        runs whatever the pull reported: after a conflict on that ID, this store's model
        (which the pull left in place) is the one written.
        """
        from .remote.config import default_remote, resolve_remote
        from .remote.staging import Staging
        from .remote.sync import pull

        remote = default_remote(self.repo) if remote is None else remote
        strict = self.require_signed == "refuse" if require_signed is None else require_signed
        staging = Staging(os.fspath(local_path), check_domain(domain), model_id)
        try:
            result = pull(self.repo, resolve_remote(self.repo, remote), [domain], self.progress, take_theirs=theirs,
                          require_signed=self.verifier() if strict else None, staging=staging)
            log_sync("pull", result)
            return result, self.download(local_path, domain, model_id, force=force, require_signed=require_signed,
                                         _staged=staging.take)
        finally:
            staging.close()

