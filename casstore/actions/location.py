"""Where a store is, and making one: the free functions ``casstore.store`` exports.

``resolve_store`` (``--store``, ``$CAS_STORE``, ``~/.casstore``) and the error for a
store that is not there, ``init_store``, and the checks the CLI makes on paths and
remote URLs before it opens a store (``cas init --bare``, ``cas remote add``).
``open_store`` and ``clone_store``, which return a Store, stay in store.py; all of
these are importable from ``casstore.store`` as before.  And ``store_settings``: the
settings a Store reads when it is opened.
"""

from __future__ import annotations

import os
import subprocess

from ..errors import NotAStoreError
from ..objects.repository import GIT_COPY_HINT, Repository, init_repository, is_git_copy_of_store, is_repository
from ..util.config import get_setting, parse_bool
from ..util.sshsig import require_policy


def store_settings(repo: Repository) -> tuple[bool, str, str]:
    """The Store's ``allow_pickle`` (``cas.allowPickle``, true unless set), ``sklearn_format``
    (``cas.sklearnFormat``, default ``joblib``) and ``require_signed`` (``cas.requireSigned``:
    off, warn or refuse; another value is off), from the store's config and then the user's.

    Raises:
        ConfigKeyError: ``cas.allowPickle`` is not a boolean.
    """
    pickle = get_setting(repo.config_path, "cas.allowPickle")
    allow_pickle = True if pickle is None else parse_bool(pickle, "cas.allowPickle")
    return allow_pickle, get_setting(repo.config_path, "cas.sklearnFormat") or "joblib", require_policy(repo.path)


def default_store_path() -> str:
    """``$CAS_STORE`` as given (a relative path is relative to the current directory), else ~/.casstore."""
    return os.environ.get("CAS_STORE") or os.path.join(os.path.expanduser("~"), ".casstore")


def resolve_store(path: str | os.PathLike[str] | None = None) -> tuple[str, str]:
    """The absolute path of the store to use, and where that choice came from.

    ``path`` if given, else ``$CAS_STORE``, else ``~/.casstore``.  A relative
    path resolves against the current directory, like git's ``GIT_DIR``: the
    same ``CAS_STORE=./models`` names another directory in a subdirectory, and
    commands that do not create stores then say so instead of guessing.  The
    second value (``"--store"``, ``"$CAS_STORE=./models"``, ``"the default"``)
    is for messages that have to say why this path was chosen (see :func:`missing_store_error`).
    """
    if path is not None:
        return os.path.abspath(os.fspath(path)), "--store"
    env = os.environ.get("CAS_STORE")
    if env:
        return os.path.abspath(env), f"$CAS_STORE={env}"
    return os.path.join(os.path.expanduser("~"), ".casstore"), "the default ~/.casstore"


def missing_store_error(path: str, source: str) -> NotAStoreError:
    """The error for a store that is not there: names the path, where it came from, and the fix."""
    env = source.removeprefix("$CAS_STORE=")
    if env != source and not os.path.isabs(env):
        source += f", relative to the current directory {os.getcwd()}"
    elif source.startswith("the default"):
        source += ": no --store, no $CAS_STORE"
    if not os.path.exists(path):
        detail = f"nothing here (store chosen by {source}); create one with `cas init {path}`"
        if env != source and not os.path.isabs(env):
            detail += ", or make $CAS_STORE absolute to use one store from every directory"
    elif is_git_copy_of_store(path):
        detail = GIT_COPY_HINT.format(path=path)
    else:
        detail = f"no casstore config (store chosen by {source})"
    return NotAStoreError(path, detail)


def init_store(path: str, *, bare_remote: bool = False, require_signed: str | None = None) -> None:
    """Create a new, empty store at ``path`` (a bare git repository).

    ``bare_remote=True`` prepares it to be pushed to by others: a pre-receive
    hook that enforces casstore's rules on every push (see remote/hook.py).
    ``require_signed`` (with ``bare_remote``): an allowed signers file; the hook then
    refuses pushes of commits no key of it signed.
    """
    if require_signed is not None and not os.path.isfile(require_signed):
        raise FileNotFoundError(f"allowed signers file {require_signed}: no such file")
    init_repository(path, served=bare_remote)
    if bare_remote:
        from ..remote.hook import install_hook

        install_hook(path, require_signed)


def is_store(path: str) -> bool:
    """Whether ``path`` holds a casstore store."""
    return is_repository(path)


def is_git_repository(path: str) -> bool:
    """Whether ``path`` looks like a bare git repository (made by ``git init --bare`` or by casstore)."""
    from ..remote.inspect import is_plain_git_repository

    return is_plain_git_repository(path)


def protect_git_repository(path: str, require_signed: str | None = None) -> list[str]:
    """Give a bare git repository made by ``git init --bare`` what ``cas init --bare`` gives
    a store others push to: the hooks that protect models (refusing commits not signed by
    a key of ``require_signed`` too, when given) and merge pushed packs, and git's object
    checks on receive.  Returns the names of the hooks written (none when all were current)."""
    from ..remote.hook import install_hook

    written = install_hook(path, require_signed)
    subprocess.run(["git", "--git-dir", path, "config", "receive.fsckObjects", "true"], check=True)
    return written


def remote_hook_missing(url: str) -> bool:
    """Whether ``url`` is a local git repository without casstore's pre-receive hook (a server's
    hooks are invisible to a client: False for any other remote)."""
    from ..remote.inspect import hook_missing

    return hook_missing(url)


def check_remote_url(url: str) -> str:
    """``url`` if it is a path or a URL of a remote kind this casstore has; else UnsupportedRemoteError."""
    from ..remote.config import check_url

    return check_url(url)


def remote_schemes() -> list[str]:
    """The URL schemes of the remote kinds this casstore has (``s3``, ``gs``, ``az``, ...)."""
    from ..remote.transports import SCHEMES

    return sorted(SCHEMES)


def local_remote_path(url: str) -> str | None:
    """The directory of a remote on this machine (a path or ``file://`` URL), else None."""
    from ..remote.transports import local_path

    return local_path(url)
