"""The Store: commit, load, download and list models.

Over 500 lines because it is the public API: the Store class (about 500 lines, a third of
them the reference docstrings) has 64 public methods, each argument checks, the lock it
needs and one call into ``actions/`` or ``model/`` (docs/architecture.md); the longer
explanations are docs/api.md.

Durability and concurrency, in one place (docs/api.md has the details):

* A commit's new objects (new chunks up to 16 MiB, its trees, manifest, commit and
  history event) are held in memory and written as ONE pack (fsynced, ``.idx`` published
  last) just before the first ref naming them moves (objects/odb.py ``deferred``); more
  new chunks than that go first into a pack of their own.  Then it creates
  ``refs/cas/models/<domain>/<id>`` with create-if-absent and moves the domain history
  with compare-and-swap (model/commit.py ``claim_id``).  A crash before the model ref
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
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Literal

from dulwich.objects import ObjectID, Tree

from .actions import upkeep
from .actions.commit import Commit, ExtraFiles, given_files, plan_models, save_object, signed_as
from .actions.info import committed_info, full_info
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
from .actions.location import store_settings
from .errors import FrameworkError, NotAStoreError
from .frameworks import Saved, by_name
from .model.commit import write_copy
from .model.history import DomainIndex, Event, events_since, read_index, read_states
from .model.listing import (
    check_state_exists,
    domain_head,
    in_state,
    iter_model_commits,
    iter_models,
    list_models,
    log_events,
    resolve_model,
)
from .model.manifest import FileEntry, Manifest
from .model.notes import check_note, check_tag
from .model.reading import StoredModel, check_id_free, model_commit
from .model.states import list_states
from .model.views import DomainViews
from .objects.chunker import ChunkParams
from .objects.codec import DEFAULT_LEVEL
from .objects.refs import domain_ref, model_ref
from .objects.repository import Repository
from .ops.defaults import DEFAULT_GRACE, DEFAULT_WAIT
from .util.identity import author, parse_identity
from .util.lazy import LazyModule
from .util.locking import WaitFn, store_lock
from .util.names import check_domain, check_model_id, check_state
from .util.progress import ProgressFn, default_progress

if TYPE_CHECKING:
    # BucketClient, ModelChange and SyncResult are re-exported for the front ends' annotations.
    from . import modelinfo
    from .actions import loading, remotes, restoring
    from .actions import signing as signatures
    from .model import deletion, stateops
    from .model import signatures as model_signatures
    from .model.openfile import StoredFile
    from .model.readback import Downloaded
    from .model.signatures import Verifier
    from .modelinfo import ModelInfo
    from .ops import stats
    from .ops.fsck import FsckReport
    from .ops.gc import GcReport
    from .ops.loadcache import LoadCache
    from .remote import config as remote_config
    from .remote.bucket import BucketClient as BucketClient
    from .remote.staging import Staging
    from .remote.sync import ModelChange as ModelChange
    from .remote.sync import RemoteRefs
    from .remote.sync import SyncResult as SyncResult
    from .util import modelsig
    from .util.sshsig import Verdict
else:
    # what a small `cas commit` never calls is imported on first use (tests/test_startup.py);
    # uncached, so each call finds the module's current function
    (loading, remotes, restoring, signatures, deletion, stateops, model_signatures, modelinfo, stats, remote_config,
     modelsig) = (LazyModule(f"casstore.{name}", cache=False) for name in (
        "actions.loading", "actions.remotes", "actions.restoring", "actions.signing", "model.deletion",
        "model.stateops", "model.signatures", "modelinfo", "ops.stats", "remote.config", "util.modelsig"))

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
    """A casstore store.  Safe to use from several processes at once, and from several threads:
    reads share one Store, and each thread's commits write their own pack (docs/api.md).

    Attributes:
        repo: the repository underneath (objects, refs, locks), as gc, fsck and remotes use it.
        progress: ``progress(label, done, total)`` of long operations: tqdm bars on a terminal or
            in a notebook, else None (util/progress.py); assign None to silence it.
        allow_pickle: ``load``'s default for ``allow_pickle``: ``cas.allowPickle`` (true unless set).
        sklearn_format: how ``commit_models`` stores a plain scikit-learn estimator: ``"joblib"``
            or ``"skops"`` (``cas.sklearnFormat``).
        require_signed: reading a model not signed by an allowed key: ``"off"``, ``"warn"`` or
            ``"refuse"`` (``cas.requireSigned``; docs/signing.md).
    """

    def __init__(self, path: str) -> None:
        self.repo = Repository(path)
        self.path, self.odb, self.refs = self.repo.path, self.repo.odb, self.repo.refs
        self.params, self.level = ChunkParams(), DEFAULT_LEVEL
        self.progress: ProgressFn | None = default_progress()
        self.allow_pickle, self.sklearn_format, self.require_signed = store_settings(self.repo)
        self._verifier: Verifier | None = None
        self._views = DomainViews(self.repo)  # states, notes and tags, read once per history head

    def __repr__(self) -> str:
        return f"casstore.Store({self.path!r})"

    def _lock(self) -> AbstractContextManager[None]:
        """The shared store lock of writers; a wait for it (gc running) is logged."""
        return self.repo.lock(on_wait=upkeep.log_lock_wait)

    def upload_lock(self, domain: str) -> AbstractContextManager[None]:
        """Hold ``cas/locks/modelstore-upload-<domain>.lock`` exclusively, waiting as long as it takes:
        a cloud ModelStore cache's uploads of ``domain`` take turns (docs/format.md lists the locks)."""
        return store_lock(self.repo.lock_path(f"modelstore-upload-{check_domain(domain)}"), exclusive=True)

    def close(self) -> None:
        self.repo.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- committing (docs/api.md, "Committing") ------------------------------------------

    def commit_models(self, domain: str, *, model_id: str | None = None,  # noqa: PLR0913 - the public API's options
                      extra_files: ExtraFiles = None, extra_metadata: dict[Any, Any] | None = None,
                      created: _dt.datetime | None = None, sign: bool | str | None = None,
                      **models: Any) -> dict[str, Any]:
        """Store one or more models, with extra files and metadata, under a new ID (docs/api.md).

        Args:
            model_id: the new model's ID; default: a UUID4.
            extra_files: a path or a list of paths (directories recursively): stored, never loaded.
            extra_metadata: a msgpack-serialisable dict, returned by ``get_model_info``.
            created: the model's creation time (timezone-aware; default: now).
            sign: True: sign with the configured key; a key file; False; None: ``cas.signCommits``.
            **models: the models, by keyword (``model=``, ``explainer=``, ...).

        Returns the model's info, as ``get_model_info``.  On any error the store is left as it was.

        Raises:
            InvalidIdError: the domain or ID breaks the naming rules.
            TypeError: no model, an object no framework recognises, or metadata msgpack cannot hold.
            FrameworkError: two frameworks claim one object, or two entries write one file name.
            FileNotFoundError: an extra file or model file does not exist.
            ModelExistsException: the ID is taken (checked atomically).
        """
        check_domain(domain)  # the names first: their errors win over the objects'
        if model_id is not None:
            check_model_id(model_id)
        plan = plan_models(models, self.sklearn_format)
        with signed_as(self.repo, sign):
            return self._write(Commit(self.repo, domain, model_id, plan, save_object, extra_files, extra_metadata,
                                      created))

    upload = commit_models

    def commit_files(self, domain: str, *, frameworks: Sequence[tuple[str, str, Saved]],  # noqa: PLR0913 - the public API's options
                     model_id: str | None = None, extra_files: ExtraFiles = None,
                     extra_metadata: dict[Any, Any] | None = None, created: _dt.datetime | None = None,
                     author: str | None = None) -> dict[str, Any]:
        """Store files a framework already wrote, byte for byte, as ``commit_models`` would.

        ``frameworks``: ``(kwarg, framework name, Saved)`` each; ``author`` (``Name <email>``): the
        author the other registry recorded.  Raises as ``commit_models``, and FrameworkError (an
        unknown framework, no entries), InvalidIdentityError (an ``author`` git would reject).
        """
        if not frameworks:
            raise FrameworkError("commit_files() needs at least one framework entry")
        plan = [(kwarg, by_name(name), saved) for kwarg, name, saved in frameworks]
        ident = None if author is None else parse_identity(author, "author")
        return self._write(Commit(self.repo, domain, model_id, plan, given_files, extra_files, extra_metadata,
                                  created, ident))

    def _write(self, job: Commit) -> dict[str, Any]:
        with self._lock():
            return job.run(self.params, self.level, self.progress)

    def copy_model(self, domain: str, model_id: str, new_id: str) -> dict[str, Any]:
        """Commit the model again as ``new_id``, sharing its files (``cas cp``; docs/api.md);
        returns the copy's info.  Raises Model/DomainNotFoundException, InvalidIdError, ModelExistsException."""
        check_model_id(new_id)
        m = resolve_model(self.repo, domain, model_id)
        check_id_free(self.repo, domain, new_id)
        ident = author(self.path)
        with self._lock():  # gc must not collect the new objects before the ref exists
            return committed_info(*write_copy(self.repo, m, new_id, ident))

    # -- reading (docs/api.md, "Listing") --------------------------------------------------

    def list_domains(self) -> list[str]:
        """Every domain that has (or had) models, sorted by name."""
        return sorted(self.refs.domains())

    def list_models(self, domain: str, state_name: str | None = None, limit: int | None = None) -> list[str]:
        """The domain's model IDs, newest first (``created``, then ID); only those in ``state_name``;
        the first ``limit``, read from the newest end of the history (docs/api.md, "Listing").

        Raises DomainNotFoundException, StateNotFoundException, ValueError (a negative ``limit``)."""
        return list_models(self.repo, domain, state_name, limit)

    def iter_models(self, domain: str, state_name: str | None = None) -> Iterator[str]:
        """As ``list_models``, read lazily from the domain history: the first ``n`` cost about ``n``
        history commits (docs/api.md).  Raises DomainNotFoundException at once, StateNotFoundException."""
        return iter_models(self.repo, domain, state_name)

    def history_head(self, domain: str) -> ObjectID | None:
        """The head of the domain's history (None: none yet); every change moves it."""
        return self.refs.get(domain_ref(check_domain(domain)))

    def events_since(self, domain: str, head: ObjectID | None, old: ObjectID,
                     limit: int = 10_000) -> list[Event] | None:
        """The domain's events from ``head`` back to an older head ``old``, newest first, if the
        history between is a straight line of at most ``limit`` commits (else None)."""
        check_domain(domain)
        return events_since(self.odb, head, old, limit)

    def iter_model_commits(self, domain: str, head: ObjectID | None) -> Iterator[tuple[str, str]]:
        """(model ID, model commit) of the live models, newest first, at history head ``head``."""
        return iter_model_commits(self.repo, domain, head)

    def log(self, domain: str) -> list[Event]:
        """The domain's history, newest first.  Raises DomainNotFoundException."""
        return list(self.iter_log(domain))

    def iter_log(self, domain: str, head: ObjectID | None = None) -> Iterator[Event]:
        """The domain's history events, newest first, read as consumed (``cas log | head``), from
        ``head`` (read with ``history_head``; default: the current one).  Raises DomainNotFoundException."""
        return log_events(self.repo, domain, head)

    def count_models(self, domain: str) -> int:
        """How many models the domain has now, from its refs alone (0: a domain never used)."""
        return self.refs.count_model_ids(check_domain(domain))

    def model_exists(self, domain: str, model_id: str) -> bool:
        return self.model_commit(domain, model_id) is not None

    def model_commit(self, domain: str, model_id: str) -> ObjectID | None:
        """The commit the model ``domain/model_id`` is now (None: no such model)."""
        return self.refs.get(model_ref(check_domain(domain), check_model_id(model_id)))

    def model_states(self, domain: str, head: ObjectID | None) -> dict[str, dict[str, str]]:
        """state -> model ID -> model commit (hex) at history head ``head`` (None: no states)."""
        check_domain(domain)
        return {s: {mid: sha.decode() for mid, sha in members.items()}
                for s, members in read_states(self.odb, head).items()}

    def get_model_info(self, domain: str, model_id: str | None = None, *, state: str | None = None,
                       annotations: bool = True) -> dict[str, Any]:
        """The model's info: ``commit_models``' dict, with the states it is in now (``cas show
        --json``).  ``state``: the newest model in it, instead of ``model_id``.  ``annotations=False``
        leaves ``notes`` and ``tags`` empty (a listing of many models reads less)."""
        m = resolve_model(self.repo, domain, in_state(self.repo, domain, model_id, state))
        return full_info(self._views, m, annotations)

    def model_info(self, domain: str, model_id: str | None = None, *, state: str | None = None) -> ModelInfo:
        """``get_model_info`` typed: ``model_info(...).as_dict() == get_model_info(...)``."""
        return modelinfo.ModelInfo.from_dict(self.get_model_info(domain, model_id, state=state))

    def scratch_dir(self, prefix: str) -> tempfile.TemporaryDirectory[str]:
        """A temporary directory inside the store (a file made there is committed without a copy)."""
        return tempfile.TemporaryDirectory(dir=self.repo.tmp, prefix=prefix)

    def _index(self, domain: str) -> DomainIndex:
        return read_index(self.odb, self.refs.get(domain_ref(domain)))

    def _resolve(self, domain: str, model_id: str | None) -> tuple[ObjectID, Manifest, Tree]:
        m = resolve_model(self.repo, domain, model_id)
        return m.commit, m.manifest, m.files_tree

    # -- states ---------------------------------------------------------------------------

    def create_model_state(self, state_name: str) -> None:
        """Create a model state (a no-op if it exists)."""
        check_state(state_name)
        with self._lock():  # gc must not take the new commit before the ref names it
            stateops.create_state(self.repo, state_name)

    def list_model_states(self) -> list[str]:
        """Every state that was created, sorted."""
        return sorted(list_states(self.odb, self.refs))

    def set_model_state(self, domain: str, model_id: str, state_name: str) -> None:
        """Put a model in a state (which can hold several), recorded in the domain history (nothing
        if it is in it).  Raises StateNotFoundException, ModelNotFoundException."""
        self._in_domain(domain, model_id, state_name)
        with self._lock():
            stateops.set_state(self.repo, domain, model_id, state_name)

    def remove_model_state(self, domain: str, model_id: str, state_name: str) -> None:
        """Take a model out of a state (a no-op if it is not in it)."""
        self._in_domain(domain, model_id, state_name)
        with self._lock():
            stateops.remove_state(self.repo, domain, model_id, state_name)

    def get_model_states(self, domain: str, model_id: str) -> list[str]:
        """The states the model is in, sorted."""
        return self._views.states_of(domain, model_id, model_commit(self.repo, domain, model_id))

    def delete_model_state(self, state_name: str) -> None:
        """Delete a state: every model leaves it (recorded in each domain's history)."""
        check_state_exists(self.repo, state_name)
        with self._lock():
            stateops.delete_state(self.repo, state_name)

    def _in_domain(self, domain: str, model_id: str, state_name: str | None = None) -> None:
        """Raises InvalidIdError, and StateNotFoundException for a ``state_name`` never created."""
        if state_name is not None:
            check_state_exists(self.repo, state_name)
        check_domain(domain)
        check_model_id(model_id)

    def convert_layout(self, domain: str | None = None) -> list[str]:
        """Rewrite every domain's index (or ``domain``'s) in the current layout now, one ``layout``
        event each (``cas convert-layout``; docs/format.md); returns the domains converted."""
        domains = [check_domain(domain)] if domain is not None else self.list_domains()
        with self._lock():
            return stateops.convert_layouts(self.repo, domains)

    # -- deleting and restoring (docs/api.md, "Deleting and restoring") ------------------

    def delete_model(self, domain: str, model_id: str, skip_prompt: bool = True) -> None:
        """Delete a model: it leaves listings, loads and states (docs/api.md); ``skip_prompt``
        is modelstore's.  Raises ModelNotFoundException."""
        self._in_domain(domain, model_id)
        ident = author(self.path)  # validated before the ref goes
        with self._lock():
            deletion.delete(self.repo, domain, model_id, ident)

    def restore_model(self, domain: str, model_id: str, commit: str | None = None, *,
                      states: bool = False, new_id: str | None = None) -> dict[str, Any]:
        """Bring back a deleted model while its objects are still here (docs/api.md).

        ``commit``: the deletion of that model commit (4+ hex digits; default: the newest);
        ``states``: back in the states it held; ``new_id``: under another ID.  Returns its info,
        with ``restored_from`` and ``states``.  Raises ModelExistsException (the ID is taken now),
        RestoreError (no such deletion, or gc freed its objects)."""
        self._in_domain(domain, model_id)
        target = model_id if new_id is None else check_model_id(new_id)
        domain_head(self.repo, domain)  # DomainNotFoundException
        check_id_free(self.repo, domain, target)
        ident = author(self.path)
        with self._lock():  # gc must neither free the old objects nor the new commit meanwhile
            return restoring.restore_model(self.repo, domain, model_id, commit, target, ident, states=states)

    def deleted_models(self, domain: str, grace_period: float = DEFAULT_GRACE) -> list[dict[str, Any]]:
        """Every deletion in the domain's history, newest first, and whether it can be restored
        (``restorable``, ``kept_until`` ...: docs/api.md)."""
        check_domain(domain)
        return deletion.deleted_models(self.repo, domain, grace_period)

    # -- notes and tags (model/notes.py) ---------------------------------------------------

    def add_note(self, domain: str, model_id: str, text: str) -> None:
        """Add a note to a model: a history event (no new model commit), kept in order, never
        edited.  Raises NoteError (empty, over 16 KiB, not UTF-8), ModelNotFoundException."""
        self._annotate(domain, model_id, "note", check_note(text))

    def set_tag(self, domain: str, model_id: str, tag: str) -> None:
        """Tag a model (``candidate`` ...; nothing if it has it).  Raises NoteError, ModelNotFoundException."""
        self._annotate(domain, model_id, "tag", check_tag(tag))

    def delete_tag(self, domain: str, model_id: str, tag: str) -> None:
        """Untag a model (nothing if it lacks it).  Raises NoteError, ModelNotFoundException."""
        self._annotate(domain, model_id, "untag", check_tag(tag))

    def _annotate(self, domain: str, model_id: str, event: str, value: str) -> None:
        self._in_domain(domain, model_id)
        with self._lock():
            stateops.annotate_model(self.repo, self._views, domain, model_id, event, value)

    def get_annotations(self, domain: str, model_id: str) -> dict[str, Any]:
        """The model's ``{"notes": [{"text", "author", "time", "history_commit"}], "tags": [...]}``."""
        self._in_domain(domain, model_id)
        return self._views.annotations_of(domain, model_id, model_commit(self.repo, domain, model_id))

    def domain_annotations(self, domain: str) -> dict[str, dict[str, Any]]:
        """The notes and tags of every model of the domain that has some, by ID."""
        domain_head(self.repo, domain)  # DomainNotFoundException
        return self._views.domain_annotations(domain)

    # -- signatures (docs/signing.md) -------------------------------------------------------

    def verifier(self) -> Verifier:
        """The store's signature checker: its allowed signers file, with a cache of verdicts."""
        if self._verifier is None:
            self._verifier = model_signatures.Verifier(self.repo)
        return self._verifier

    def signing_in_use(self) -> bool:
        """Whether the store signs or checks signatures: front ends then show "unsigned"."""
        return signatures.signing_in_use(self.path, self.require_signed, self.verifier())

    def signature(self, domain: str, commit: str) -> Verdict:
        """Who signed ``commit`` (a model commit or a history event of ``domain``)."""
        return self.verifier().commit(commit, check_domain(domain))

    def verify_model(self, domain: str, model_id: str | None = None) -> dict[str, Any]:
        """Who signed the model (default: every live one) and each history event: ``{"models":
        [...], "events": [...], "ok"}``, each with a ``signature`` dict (``status``: good, untrusted,
        unsigned, bad; ``principal``, ``key``); ``ok``: all good (docs/signing.md)."""
        return model_signatures.verify_domain(self.repo, self.verifier(), check_domain(domain), model_id)

    def sign_directory(self, directory: str | os.PathLike[str]) -> str:
        """Write ``directory/model.sig``, an OpenSSF model signature with the store's (ecdsa) key;
        returns its path.  Raises SigningError: no usable key, or model-signing not installed."""
        return signatures.sign_directory(self.path, directory)

    def check_model_signature(self, path: str | os.PathLike[str], signature: str | os.PathLike[str]) -> str:
        """Check an OpenSSF model signature over ``path`` against the allowed signers' keys;
        returns the principals that verified.  Raises SigningError when it does not verify."""
        return modelsig.verify_directory(os.fspath(path), os.fspath(signature), self.verifier().allowed)

    # -- reading a model's bytes (docs/api.md, "Reading a model") ---------------------------

    def _trusted(self, domain: str, model_id: str | None, require_signed: bool | None = None,
                 state: str | None = None) -> StoredModel:
        """The model to read (``state``: the newest in it), once the signature policy allows it."""
        m = resolve_model(self.repo, domain, in_state(self.repo, domain, model_id, state))
        return signatures.check_signed(self.verifier, m, signatures.policy(self.require_signed, require_signed))

    def load(self, domain: str, model_id: str | None = None, *, allow_pickle: bool | None = None,
             state: str | None = None, require_signed: bool | None = None, **into: Any) -> Any:
        """Load the model(s) committed under ``model_id`` (default: the newest; docs/api.md).

        Args:
            state: instead of ``model_id``, the newest model in that state.
            allow_pickle: False refuses an entry whose loading runs code before reading it
                (default: ``cas.allowPickle``).
            require_signed: True refuses a model no allowed key signed, False reads it anyway
                (default: ``cas.requireSigned``).
            **into: objects to load the state into, by keyword (``model=net``).

        Returns the object, or a dict by framework (or keyword) when several were committed; a
        file-only framework gives a path in the load cache.

        Raises:
            NoModelInStateError, StateNotFoundException; ValueError: both ``model_id`` and ``state``.
            PickleRefusedError, UnsignedModelError; FrameworkError: the load failed.
        """
        m = self._trusted(domain, model_id, require_signed, state)
        loading.check_load(m.manifest, into, self.allow_pickle if allow_pickle is None else allow_pickle)
        return loading.load(self.repo, m, into, self.progress)

    def download(self, local_path: str | os.PathLike[str], domain: str, model_id: str | None = None,  # noqa: PLR0913 - the public API's options
                 *, files: Sequence[str] | None = None, force: bool = False, state: str | None = None,
                 require_signed: bool | None = None,
                 _staged: Callable[[FileEntry], str | None] | None = None) -> Downloaded:
        """Write the model's files (``files``: only those) into ``local_path``, each atomically once
        verified; other files there are left alone (docs/api.md).  ``state``, ``require_signed``:
        as ``load``.  Returns ``local_path`` absolute (:class:`Downloaded` says what was written).

        Raises:
            FileNotFoundError: a name in ``files`` is not the model's (nothing written).
            DownloadConflictError: a file there holds other bytes and not ``force`` (nothing written).
        """
        m = self._trusted(domain, model_id, require_signed, state)
        return loading.download(self.repo, m, os.path.abspath(os.fspath(local_path)), files, force, self.progress,
                                _staged)

    def load_cache(self) -> LoadCache:
        """The cache of files ``load`` returns as paths (bound: ``cas.loadCacheLimit``)."""
        return loading.load_cache(self.repo)

    def read_file(self, domain: str, model_id: str, path: str) -> bytes:
        """The verified content of one stored file (small files; use download for big ones)."""
        return loading.read_file(self.repo, self._trusted(domain, model_id), path)

    def stream_file(self, domain: str, model_id: str, path: str,
                    window: int | None = None) -> tuple[int, Generator[bytes | memoryview, None, None]]:
        """The size of a stored file and an iterator over its verified bytes; ``window``: batches
        of about 2 MiB read ahead (docs/api.md).  Raises FileNotFoundError, CorruptObjectError."""
        return loading.stream_file(self.repo, self._trusted(domain, model_id), path, window)

    def open_file(self, domain: str, model_id: str, path: str) -> StoredFile:
        """A stored file as a read-only seekable file (``rb``) that reads and verifies only the
        chunks a read needs (docs/api.md).  Raises FileNotFoundError, CorruptObjectError."""
        return loading.open_stored(self.repo, self._trusted(domain, model_id), path)

    def model_card(self, domain: str, model_id: str, max_bytes: int = 256 << 10) -> tuple[str, str] | None:
        """(path, text) of the model's ``MODEL_CARD.md`` or ``README.md``, at most ``max_bytes``,
        or None; Markdown as stored: render no raw HTML from it (docs/api.md)."""
        path = loading.card_path(resolve_model(self.repo, domain, model_id).manifest)
        return None if path is None else loading.read_card(self.repo, self._trusted(domain, model_id), path, max_bytes)

    # -- whole-store operations (docs/api.md, "gc and fsck") ----------------------------------

    def fsck(self, read_data: bool = False, repair: bool = False) -> FsckReport:
        """Check the whole store: a report listing every problem (``read_data``: every chunk too;
        ``repair``: first record the history events killed writers left out)."""
        return upkeep.run_fsck(self.repo, read_data, repair, self.progress)

    def diff(self, domain: str, id_a: str, id_b: str) -> dict[str, Any]:
        """What changed from model ``id_a`` to ``id_b``: files, shared chunks, metadata."""
        return stats.diff(self.repo, domain, id_a, id_b)

    def du(self) -> dict[str, Any]:
        """Logical and stored bytes per domain and in total."""
        return stats.du(self.repo)

    def gc(self, grace_period: float | str | None = None, *, grace: float | str | None = None,
           wait: float | None = DEFAULT_WAIT, on_wait: WaitFn | None = None) -> GcReport:
        """Remove objects no ref reaches older than the grace period (docs/api.md, "gc and fsck").

        Args:
            grace: seconds or a duration (``"12h"``, ``"2w"``, ``"now"``, ``"never"``; default two
                weeks); ``grace_period`` is its older name.
            wait: at most how long to wait for writers (None: no limit).
            on_wait: told ``(holders, seconds)`` while it waits (default: ``progress``).

        Raises:
            InvalidDurationError, TypeError (both ``grace`` and ``grace_period``).
            StoreBusyError: the lock stayed held for ``wait`` seconds.
            CorruptRefError, CorruptObjectError: nothing was deleted.
        """
        return upkeep.run_gc(self.repo, upkeep.grace_seconds(grace_period, grace), wait, on_wait, self.progress)

    # -- remotes (docs/api.md, "Push and pull"; docs/remotes.md) -------------------------------

    def push(self, remote: str | None = None, domains: Sequence[str] | None = None) -> SyncResult:
        """Send what ``remote`` (a name or URL; default: ``cas.defaultRemote``, else ``origin``)
        lacks; never overwrites a model there (docs/api.md, "Push and pull")."""
        return remotes.push(self.repo, remote, domains, self.progress)

    def pull(self, remote: str | None = None, domains: Sequence[str] | None = None, *,
             theirs: bool = False, require_signed: bool | None = None) -> SyncResult:
        """Fetch and merge ``remote``'s models and histories, all verified first (docs/api.md);
        ``theirs``: take theirs on a conflict.  Raises UnsignedModelError under ``require_signed``."""
        return self._pull(remote, domains, theirs, require_signed)

    def _pull(self, remote: str | None, domains: Sequence[str] | None, theirs: bool,
              require_signed: bool | None, staging: Staging | None = None) -> SyncResult:
        strict = signatures.policy(self.require_signed, require_signed) == "refuse"
        return remotes.pull(self.repo, remote, domains, self.progress, theirs, self.verifier() if strict else None,
                            staging)

    def pull_download(self, local_path: str | os.PathLike[str], domain: str, model_id: str | None = None,  # noqa: PLR0913 - pull's and download's options
                      *, remote: str | None = None, force: bool = False, theirs: bool = False,
                      require_signed: bool | None = None) -> tuple[SyncResult, Downloaded]:
        """``pull(remote, [domain])`` then ``download(...)``, reading each byte once (docs/api.md)."""
        with remotes.staging(local_path, check_domain(domain), model_id) as staged:
            result = self._pull(remote, [domain], theirs, require_signed, staged)
            return result, self.download(local_path, domain, model_id, force=force, require_signed=require_signed,
                                         _staged=staged.take)

    def list_remotes(self) -> dict[str, str]:
        """The configured remotes: name -> URL."""
        return remote_config.list_remotes(self.repo)

    def add_remote(self, name: str, url: str) -> None:
        """Configure remote ``name`` at ``url`` (checked: a path or a URL of a known kind)."""
        remote_config.add_remote(self.repo, name, url)

    def remove_remote(self, name: str) -> None:
        remote_config.remove_remote(self.repo, name)

    def set_remote_url(self, name: str, url: str) -> None:
        remote_config.set_remote_url(self.repo, name, url)

    def rename_remote(self, name: str, new_name: str) -> None:
        remote_config.rename_remote(self.repo, name, new_name)

    def resolve_remote(self, remote: str | None = None) -> str:
        """The URL ``remote`` names; None: as ``push`` and ``pull`` choose."""
        return remotes.remote_url(self.repo, remote)

    def remote_refs(self, remote: str | None = None) -> RemoteRefs:
        """The remote's casstore refs (``models``, ``histories``, ``states``), from its ref listing."""
        return remotes.remote_refs(self.repo, remote)

    def remote_status(self, remote: str | None = None) -> dict[str, Any]:
        """How this store compares with ``remote`` (``cas status``; docs/cli.md), from its refs."""
        return remotes.remote_status(self.repo, remote)

    def bucket_remote(self, url: str) -> BucketClient | None:
        """A client of the bucket remote at ``url`` for its maintenance; None: not a bucket."""
        return remotes.bucket_remote(self.repo, url)
