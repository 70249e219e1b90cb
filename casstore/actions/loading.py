"""Reading a model's bytes out: ``load``, ``download``, ``read_file``, ``stream_file``, ``open_file``.

The Store resolves the model and applies the signature policy (``Store._trusted``);
these take the verified commit, manifest and ``files`` tree it found.  Every byte
returned was checked against the manifest (chunk BLAKE3 keys, whole-file xxh3): see
model/readback.py.  A file ``load`` reuses from the load cache (ops/loadcache.py)
was checked so when written, and again (size, whole-file xxh3) on each reuse.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from collections.abc import Callable, Collection, Generator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO

from ..errors import DownloadConflictError, OtherFilesWarning, PickleRefusedError, UnsafePathError
from ..frameworks import by_name, entry_executes_code, load_entry
from ..model.manifest import FileEntry, Manifest
from ..model.openfile import StoredFile
from ..model.readback import Downloaded, files_under, holds_entry, iter_file, open_file, write_file
from ..model.reading import StoredModel, file_oids
from ..objects.repository import Repository
from ..ops.loadcache import DEFAULT_LIMIT as DEFAULT_CACHE_LIMIT
from ..ops.loadcache import LoadCache, parse_size
from ..util.config import get_setting
from ..util.parallel import default_workers
from ..util.progress import Counter, ProgressFn

log = logging.getLogger("casstore")


def pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(default_workers(), thread_name_prefix="cas-read")


def window() -> int:
    """Chunks in flight per read: enough to keep the pool busy, bounded whatever the file size."""
    return 2 * default_workers() + 2


def load_cache(repo: Repository) -> LoadCache:
    """The cache of files ``load`` hands over as paths; its bound is the store's ``cas.loadCacheLimit``."""
    text = get_setting(repo.config_path, "cas.loadCacheLimit")
    limit = DEFAULT_CACHE_LIMIT if text is None else parse_size(text, "cas.loadCacheLimit")
    root = repo.cache_dir("load")
    if not os.access(repo.cas_dir, os.W_OK):
        # a store we may only read (shared, read-only mount) still loads: the cache then
        # lives in the user's cache directory, one per store
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "casstore", "load", hashlib.sha256(repo.path.encode()).hexdigest()[:16])
    return LoadCache(root, limit)


def download(repo: Repository, m: StoredModel, root: str,  # noqa: PLR0913 - Store.download's options
             files: Collection[str] | None, force: bool, progress: ProgressFn | None,
             staged: Callable[[FileEntry], str | None] | None = None) -> Downloaded:
    """The body of ``Store.download`` (see there), into the absolute directory ``root``."""
    manifest, files_tree = m.manifest, m.files_tree
    name = f"{manifest.domain}/{manifest.model_id}"
    if os.path.exists(root) and not os.path.isdir(root):
        raise NotADirectoryError(f"{root} is a file, not a directory: the model's files are written into a "
                                 f"directory")
    wanted = {f.path for f in manifest.files} if files is None else set(files)
    unknown = wanted - {f.path for f in manifest.files}
    if unknown:
        raise FileNotFoundError(f"{name} has no file {sorted(unknown)[0]!r} "
                                f"(its files: {', '.join(sorted(f.path for f in manifest.files))})")
    before = files_under(root)
    existing = set(before)
    unchanged = [f.path for f in manifest.files
                 if f.path in wanted and f.path in existing and holds_entry(root, f)]
    # like `git checkout`: never replace a user's file without being told to
    differ = [f.path for f in manifest.files
              if f.path in wanted and f.path not in unchanged and os.path.lexists(os.path.join(root, f.path))]
    if differ and not force:
        raise DownloadConflictError(root, manifest.domain, manifest.model_id, differ)
    others = [p for p in before if p not in {f.path for f in manifest.files}]
    os.makedirs(root, exist_ok=True)
    repo.odb.index.refresh()  # packs may have been merged by another process
    todo = [i for i, f in enumerate(manifest.files) if f.path in wanted and f.path not in unchanged]
    counter = Counter(progress, "downloading", sum(manifest.files[i].size for i in todo))
    with pool() as p:
        for i in todo:
            write_file(repo.odb, manifest.files[i], file_oids(repo, files_tree, manifest, i), root, p,
                       window(), counter, staged)
    if others:
        shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
        files_n = "1 file" if len(others) == 1 else f"{len(others)} files"
        warnings.warn(f"{root} also holds {files_n} that {name} does not have, left untouched: {shown}",
                      OtherFilesWarning, stacklevel=3)
    log.debug("downloaded %s: %d file%s into %s (%d unchanged, %d replaced)", name, len(todo),
              "" if len(todo) == 1 else "s", root, len(unchanged), len(differ))
    return Downloaded(root, written=[manifest.files[i].path for i in todo], replaced=differ,
                      unchanged=unchanged, others=others)


def check_load(manifest: Manifest, into: Collection[str], allow_pickle: bool) -> None:
    """What ``load`` refuses before reading a byte: a keyword to load ``into`` that the model
    lacks (TypeError), and without ``allow_pickle`` an entry whose loading runs code
    (PickleRefusedError)."""
    kwargs = {e.kwarg for e in manifest.frameworks}
    for k in into:
        if k not in kwargs:
            raise TypeError(f"load(): {manifest.domain}/{manifest.model_id} has no {k!r} to load into "
                            f"(it has {', '.join(sorted(kwargs))})")
    if not allow_pickle:
        for e in manifest.frameworks:
            if entry_executes_code(e):
                raise PickleRefusedError(manifest.domain, manifest.model_id, e.kwarg, e.framework,
                                         e.format, by_name(e.framework).safe_alternative)


def _cached(repo: Repository, m: StoredModel, p: ThreadPoolExecutor, progress: ProgressFn | None) -> str:
    """The load cache's directory holding the files of the entries handed over as paths
    (written there first when missing or damaged); "" when there are none."""
    sha, manifest, files_tree = m.commit, m.manifest, m.files_tree
    index = {f.path: i for i, f in enumerate(manifest.files)}
    # entries handed over as paths live in the load cache, reused while intact
    as_paths = [(e.kwarg, index[name]) for e in manifest.frameworks if not by_name(e.framework).loads
                for name in e.files]
    for kwarg, _ in as_paths:
        # the keyword names a directory of the cache: a forged manifest's "../x" must not escape
        if not kwarg.isidentifier():
            raise UnsafePathError(kwarg, f"{manifest.domain}/{manifest.model_id}: a model keyword "
                                         "must be a Python identifier")
    if not as_paths:
        return ""
    files = [(kwarg, manifest.files[i]) for kwarg, i in as_paths]
    cache = load_cache(repo)
    found = cache.get(sha.decode(), files)
    if found is None:
        counter = Counter(progress, "downloading", sum(f.size for _, f in files))

        def write(root: str) -> None:
            for kwarg, i in as_paths:
                write_file(repo.odb, manifest.files[i], file_oids(repo, files_tree, manifest, i),
                           os.path.join(root, kwarg), p, window(), counter)

        found = cache.fill(sha.decode(), manifest.domain, manifest.model_id, files, write)
        log.debug("load %s/%s: files written to the load cache %s", manifest.domain,
                  manifest.model_id, found)
    else:
        log.debug("load %s/%s: reusing %s (verified)", manifest.domain, manifest.model_id, found)
    return found


def load(repo: Repository, m: StoredModel, into: dict[str, Any], progress: ProgressFn | None) -> Any:
    """The body of ``Store.load`` (see there) once ``check_load`` passed."""
    manifest, files_tree = m.manifest, m.files_tree
    repo.odb.index.refresh()  # packs may have been merged by another process
    index = {f.path: i for i, f in enumerate(manifest.files)}
    result: dict[str, dict[str, Any]] = {}
    with pool() as p:
        cached = _cached(repo, m, p, progress)
        for e in manifest.frameworks:
            fw = by_name(e.framework)
            paths: dict[str, str | BinaryIO] = {}
            finish: list[Callable[[], None]] = []
            for name in e.files:
                i = index[name]
                if fw.loads:
                    # deserialise while chunks are decompressed and verified: no
                    # temporary file, memory bounded by the read window
                    oids = file_oids(repo, files_tree, manifest, i)
                    paths[name], done = open_file(repo.odb, manifest.files[i], oids, p, window())
                    finish.append(done)
                else:
                    paths[name] = os.path.join(cached, e.kwarg, *name.split("/"))
            result.setdefault(e.framework, {})[e.kwarg] = load_entry(fw, e, paths, into.get(e.kwarg))
            for done in finish:
                done()  # whatever the deserialiser did not read is verified too
    objects = {name: next(iter(by_kwarg.values())) if len(by_kwarg) == 1 else by_kwarg
               for name, by_kwarg in result.items()}
    if len(objects) == 1:
        return next(iter(objects.values()))
    return objects


def _find(manifest: Manifest, path: str) -> int:
    """The index of the file ``path`` in the manifest (matched exactly, never opened as a path)."""
    for i, f in enumerate(manifest.files):
        if f.path == path:
            return i
    raise FileNotFoundError(f"{manifest.domain}/{manifest.model_id} has no file {path!r}")


def read_file(repo: Repository, m: StoredModel, path: str) -> bytes:
    """The verified content of one stored file (small files; use download for big ones)."""
    manifest, files_tree = m.manifest, m.files_tree
    i = _find(manifest, path)
    with pool() as p:
        return b"".join(iter_file(repo.odb, manifest.files[i], file_oids(repo, files_tree, manifest, i), p, 4))


def stream_file(repo: Repository, m: StoredModel, path: str,
                window_: int | None) -> tuple[int, Generator[bytes | memoryview, None, None]]:
    """The body of ``Store.stream_file`` (see there)."""
    manifest, files_tree = m.manifest, m.files_tree
    i = _find(manifest, path)
    f = manifest.files[i]
    oids = file_oids(repo, files_tree, manifest, i)
    repo.odb.index.refresh()  # packs may have been merged by another process
    return f.size, _stream(repo, f, oids, window_ or window())


def open_stored(repo: Repository, m: StoredModel, path: str) -> StoredFile:
    """The body of ``Store.open_file`` (see there)."""
    manifest, files_tree = m.manifest, m.files_tree
    i = _find(manifest, path)
    repo.odb.index.refresh()  # packs may have been merged by another process
    return StoredFile(repo.odb, manifest.files[i], file_oids(repo, files_tree, manifest, i),
                      f"{manifest.domain}/{manifest.model_id}/{path}")


def _stream(repo: Repository, entry: FileEntry, oids: list[bytes],
            window_: int) -> Generator[bytes | memoryview, None, None]:
    with ThreadPoolExecutor(min(default_workers(), window_), thread_name_prefix="cas-read") as p:
        yield from iter_file(repo.odb, entry, oids, p, window_)


def card_path(manifest: Manifest) -> str | None:
    """The model card among the model's files: a ``MODEL_CARD.md`` or ``README.md`` (any case),
    the least nested first, MODEL_CARD before README; None if there is none."""
    cards = [f.path for f in manifest.files if f.path.rsplit("/", 1)[-1].lower() in ("model_card.md", "readme.md")]
    if not cards:
        return None
    return min(cards, key=lambda p: (p.count("/"), not p.lower().endswith("model_card.md"), p))


def read_card(repo: Repository, m: StoredModel, path: str, max_bytes: int) -> tuple[str, str]:
    """(path, text) of the card: at most ``max_bytes``, each chunk verified, as UTF-8 with
    undecodable bytes replaced."""
    with open_stored(repo, m, path) as f:
        raw = f.read(max_bytes)
    return path, raw.decode("utf-8", "replace")
