"""One exception hierarchy for casstore.

Every exception carries the offending domain, ID, path or object as attributes,
and inherits the builtin whose contract applies (``ModelNotFoundException`` is
a ``KeyError``, ``InvalidIdError`` a ``ValueError``), so callers written for
modelstore or plain Python keep working.
"""

from __future__ import annotations


class CasError(Exception):
    """Base class of every error casstore raises on purpose."""


class InvalidIdError(CasError, ValueError):
    """A model ID, domain or state name breaks the naming rules.

    Attributes:
        kind: what was being named ("model ID", "domain", "state").
        name: the rejected value.
        rule: the rule it breaks, in words.
    """

    def __init__(self, kind: str, name: object, rule: str) -> None:
        self.kind = kind
        self.name = name
        self.rule = rule
        super().__init__(f"invalid {kind} {name!r}: {rule}")


class ModelExistsException(CasError):
    """The model ID is already taken in the domain (the ref already exists)."""

    def __init__(self, domain: str, model_id: str) -> None:
        self.domain = domain
        self.model_id = model_id
        super().__init__(f"model {model_id!r} already exists in domain {domain!r}")


class ModelNotFoundException(CasError, KeyError):
    """No model with this ID in the domain (never committed, or deleted)."""

    def __init__(self, domain: str, model_id: str | None) -> None:
        self.domain = domain
        self.model_id = model_id
        if model_id is None:
            msg = f"domain {domain!r} has no models"
        else:
            msg = f"model {model_id!r} not found in domain {domain!r}"
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError would print the repr of its argument
        return str(self.args[0])


class ModelDeletedException(CasError, KeyError):
    """The model was deleted (modelstore's exception, raised by ``casstore.ModelStore``).

    Not a ModelNotFoundException, as in modelstore: code that tells the two apart
    keeps working.  The native ``Store`` raises ModelNotFoundException for both.
    """

    def __init__(self, domain: str, model_id: str) -> None:
        self.domain = domain
        self.model_id = model_id
        super().__init__(f"model={model_id!r} has been deleted from domain={domain!r}")

    def __str__(self) -> str:
        return str(self.args[0])


class StateNameError(CasError, ValueError):
    """``casstore.ModelStore`` refuses a state name as modelstore does: unknown, reserved, too short.

    A ValueError, as modelstore raises; the message keeps modelstore's wording.

    Attributes:
        state: the refused name.
    """

    def __init__(self, state: object, message: str) -> None:
        self.state = state
        super().__init__(message)


class NoMatchingFrameworkError(CasError, ValueError):
    """``casstore.ModelStore.upload`` got an object no framework recognises
    (modelstore's ``ValueError("could not find matching manager")``).

    Attributes:
        kwarg: the keyword it was given as; ``None`` when no model was given at all.
        type_name: the object's class, ``module.qualname``.
    """

    def __init__(self, kwarg: str | None, type_name: str | None) -> None:
        self.kwarg = kwarg
        self.type_name = type_name
        what = f" for {kwarg}={type_name}" if kwarg else " (no model given)"
        super().__init__(f"could not find matching manager{what}")


class DomainNotFoundException(ModelNotFoundException):
    """The domain has never been used in this store."""

    def __init__(self, domain: str) -> None:
        self.domain = domain
        self.model_id = None
        CasError.__init__(self, f"domain {domain!r} not found")


class NoModelInStateError(ModelNotFoundException):
    """No model of the domain is in the state (``load(domain, state=...)``, ``cas download --state``)."""

    def __init__(self, domain: str, state: str) -> None:
        self.domain = domain
        self.model_id = None
        self.state = state
        CasError.__init__(self, f"no model of domain {domain!r} is in state {state!r}")


class CorruptObjectError(CasError):
    """Stored data does not verify: wrong hash, bad format, missing object.

    Attributes:
        oid: hex id (or other name) of the object that failed.
        detail: what was wrong with it.
    """

    def __init__(self, oid: str, detail: str) -> None:
        self.oid = oid
        self.detail = detail
        super().__init__(f"corrupt object {oid}: {detail}")


class MissingObjectError(CorruptObjectError):
    """An object a ref or manifest needs is not in the store."""

    def __init__(self, oid: str, detail: str = "object is missing") -> None:
        super().__init__(oid, detail)


class UnsafePathError(CasError, ValueError):
    """A file name would escape its directory (absolute, ``..``, NUL, ...)."""

    def __init__(self, path: str, rule: str) -> None:
        self.path = path
        self.rule = rule
        super().__init__(f"unsafe file name {path!r}: {rule}")


class InvalidIdentityError(CasError, ValueError):
    """An author identity that git would reject (``CAS_AUTHOR``, git's ``user.name``/``user.email``)."""

    def __init__(self, source: str, value: str, rule: str) -> None:
        self.source, self.value, self.rule = source, value, rule
        super().__init__(f"invalid author {value!r} from {source}: {rule}")


class ExtraFileError(CasError, ValueError):
    """An extra file that cannot be stored as given (a symlink loop, a name clash, an unsafe name)."""

    def __init__(self, path: str, detail: str) -> None:
        self.path, self.detail = path, detail
        super().__init__(f"extra file {path!r}: {detail}")


class ModelTooLargeError(CasError, ValueError):
    """A commit whose manifest would exceed the largest object casstore writes or accepts.

    The manifest lists every chunk of every file (about 35 bytes per ~48 KiB chunk) and
    the user's metadata; above ``objects.packwriter.MAX_OBJECT`` no remote would accept
    it, so the commit is refused instead of storing a model that could never be pushed.
    """

    def __init__(self, domain: str, model_id: str, size: int, limit: int) -> None:
        self.domain, self.model_id, self.size, self.limit = domain, model_id, size, limit
        super().__init__(f"model {domain}/{model_id}: its manifest would be {size:,} bytes, more than the "
                         f"{limit:,} a casstore object may have (about {limit // 35 * 48 // (1 << 20):,} GiB of "
                         "files at the default chunk size, or very large extra_metadata): split it over "
                         "several model IDs")


class NotAStoreError(CasError):
    """The path exists but is not a casstore store."""

    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        self.detail = detail
        super().__init__(f"{path} is not a casstore store: {detail}")


class StoreLockedError(CasError):
    """A lock stayed held for longer than we were willing to wait.

    A lock file left by a killed process can be removed by hand once no
    casstore or git process is running on the store.
    """

    def __init__(self, lockfile: str, waited: float) -> None:
        self.lockfile = lockfile
        self.waited = waited
        super().__init__(
            f"{lockfile} is held by another process (waited {waited:.1f}s); "
            "if no other casstore or git process is using the store, remove it"
        )


class FrameworkError(CasError, ValueError):
    """A framework could not save or load a model, or two claim the same thing."""


class PickleRefusedError(FrameworkError):
    """``load(..., allow_pickle=False)`` met an entry whose loading can execute code.

    Attributes:
        domain, model_id: the model.
        kwarg, framework, format: the refused entry (``model``, ``sklearn``, ``joblib``).
        alternative: what to do instead.
    """

    def __init__(self, domain: str, model_id: str, kwarg: str, framework: str, format: str,  # noqa: PLR0913 - the fields the error reports
                 alternative: str) -> None:
        self.domain = domain
        self.model_id = model_id
        self.kwarg = kwarg
        self.framework = framework
        self.format = format
        self.alternative = alternative
        super().__init__(
            f"refusing to load {domain}/{model_id}: entry {kwarg}={framework} is stored as {format}, "
            f"and loading it can execute code from the store (allow_pickle is off); "
            f"safe alternative: {alternative}"
        )


class StoreWriteError(CasError, OSError):
    """Writing to the store failed (disk full, quota, I/O error); nothing was committed."""

    def __init__(self, path: str, cause: OSError) -> None:
        self.path = path
        OSError.__init__(
            self, cause.errno,
            f"{cause.strerror or cause} while writing to the store at {path}; nothing was committed",
        )


class StateNotFoundException(CasError, KeyError):
    """The model state was never created (see ``create_model_state``)."""

    def __init__(self, state: str) -> None:
        self.state = state
        super().__init__(f"model state {state!r} does not exist (create it with create_model_state)")

    def __str__(self) -> str:
        return str(self.args[0])


class StoreBusyError(StoreLockedError):
    """A store lock (``cas/gc.lock``, a domain lock) stayed held longer than allowed.

    These are flock(2) locks: they are released when the holding process ends,
    so never remove the file; wait, or stop the process that holds it.

    Attributes:
        lockfile: the lock file.
        waited: seconds waited.
        holders: ``"pid N (command line)"`` of each holder, when they could be told.
    """

    def __init__(self, lockfile: str, waited: float, holders: list[str]) -> None:
        self.lockfile = lockfile
        self.waited = waited
        self.holders = holders
        who = ", ".join(holders) if holders else "another process (its pid could not be found)"
        CasError.__init__(
            self, f"gave up after waiting {waited:.1f}s for {lockfile}, held by {who}; "
            "it is released when that operation ends (try again later, or wait longer)")


class CorruptRefError(CorruptObjectError):
    """A ref cannot be read: an empty or garbage file, a symbolic ref, or it names
    an object of the wrong kind.  gc refuses to run while one exists.

    Attributes:
        ref: the ref's name (``refs/cas/models/<domain>/<id>``) or ``packed-refs``.
        detail: what is wrong with it.
    """

    def __init__(self, ref: str, detail: str) -> None:
        self.ref = self.oid = ref
        self.detail = detail
        CasError.__init__(self, f"damaged ref {ref}: {detail}")


class InvalidDurationError(CasError, ValueError):
    """A grace period or wait that is not a duration (NaN, negative, unparsable).

    Attributes:
        what: which setting ("grace period", "wait").
        value: the rejected value.
    """

    def __init__(self, what: str, value: object, rule: str) -> None:
        self.what = what
        self.value = value
        super().__init__(f"invalid {what} {value!r}: {rule}")


class RemoteError(CasError):
    """The remote could not be reached or refused the operation."""

    def __init__(self, url: str, detail: str) -> None:
        self.url = url
        self.detail = detail
        super().__init__(f"remote {url}: {detail}")


class SigningError(CasError):
    """A signature could not be made: no ssh-keygen, no signing key, or a key it cannot use."""


class UnsignedModelError(CasError):
    """A model (or a pulled history event) is not signed by a key the allowed signers file
    allows for its domain, and the policy (``cas.requireSigned refuse``,
    ``require_signed=True``, ``cas pull --require-signed``) refuses it.

    Attributes:
        domain, model_id: the model.
        commit: the commit that is not trusted (hex).
        verdict: what its signature says (``unsigned``, ``untrusted: ...``, ``BAD ...``).
    """

    def __init__(self, domain: str, model_id: str, commit: str, verdict: str) -> None:
        self.domain = domain
        self.model_id = model_id
        self.commit = commit
        self.verdict = verdict
        super().__init__(f"model {domain}/{model_id} (commit {commit[:12]}) is not signed by an allowed key: "
                         f"{verdict}")


class UnsignedModelWarning(UserWarning):
    """Under ``cas.requireSigned warn``: a model read is not signed by an allowed key."""


class DownloadConflictError(CasError, FileExistsError):
    """A download would replace files that hold other bytes than the model's (without ``force``).

    The one rule of ``Store.download`` and ``cas download``: nothing is written.

    Attributes:
        directory: where the model was to be written.
        domain, model_id: the model.
        paths: the stored paths whose files exist there with other content.
    """

    def __init__(self, directory: str, domain: str, model_id: str, paths: list[str]) -> None:
        self.directory = directory
        self.domain = domain
        self.model_id = model_id
        self.paths = paths
        shown = ", ".join(paths[:5]) + (", ..." if len(paths) > 5 else "")
        files = "1 file" if len(paths) == 1 else f"{len(paths)} files"
        CasError.__init__(
            self, f"{directory} already holds {files} of {domain}/{model_id} ({shown}) with other content: "
            f"nothing written; replace them with `cas download --force` (Python: force=True), "
            f"or choose another directory")


class OtherFilesWarning(UserWarning):
    """``Store.download`` wrote into a directory that also holds files the model does not have."""


class ModelStateLostWarning(UserWarning):
    """A push or pull deleted or replaced a model that held a state (e.g. ``production``) on that side."""


class RestoreError(CasError, ValueError):
    """A deleted model cannot be restored (never deleted, its objects freed, a bad ``--commit``).

    Attributes:
        domain, model_id: the model.
        detail: why, in words.
    """

    def __init__(self, domain: str, model_id: str, detail: str) -> None:
        self.domain = domain
        self.model_id = model_id
        self.detail = detail
        super().__init__(f"cannot restore {domain}/{model_id}: {detail}")


class NoteError(CasError, ValueError):
    """A note or tag that cannot be recorded (empty, too long, not valid UTF-8, a bad tag name).

    Attributes:
        what: ``"note"`` or ``"tag"``.
    """

    def __init__(self, what: str, detail: str) -> None:
        self.what = what
        super().__init__(f"{what}: {detail}")
