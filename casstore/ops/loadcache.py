"""The load cache: where ``Store.load`` puts the files it hands over as paths.

Frameworks that only store files (``model_file``) load as the path of a file.
Those files live in the store's load cache, one directory per model commit::

    <store>/cas/cache/load/<model commit>/<kwarg>/<path in the model>
    <store>/cas/cache/load/<model commit>/entry.json   (domain, ID, bytes; for `cas cache`)

Guarantees:

* An entry appears whole: it is written into a scratch directory beside it and
  renamed into place, so no reader sees half an entry; of two processes filling
  the same entry, one rename wins and the other uses the winner's copy.
* An entry is verified on every reuse (size and whole-file xxh3 of every file
  against the manifest, the same check a fresh load makes): a file changed by
  the user (the path is theirs to read, not to write) is detected and the entry
  rebuilt, never returned changed.
* The cache is bounded: after an entry is added, the least recently used other
  entries are removed until the total is at most the limit (``cas.loadCacheLimit``).
  The entry just loaded is never removed by its own load, so a model larger than
  the limit still loads.  A path returned earlier stays valid until its entry is
  evicted or the cache cleared (``cas cache clear``); copy the file to keep it
  longer.
* Whatever else sits at an entry's place is rebuilt, never followed: a stray
  file or a symlink at ``<commit>`` (or at a directory or file inside it) is
  removed (the link itself, not what it points to) and the entry written again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import xxhash

from ..model.manifest import FileEntry

log = logging.getLogger("casstore")

ENTRY_META = "entry.json"  # not a Python identifier, so never a kwarg directory
#: default bound of the cache's total size, when the store sets no ``cas.loadCacheLimit``
DEFAULT_LIMIT = 4 << 30


@dataclass
class CacheEntry:
    """One model's files in the load cache."""

    commit: str
    domain: str
    model_id: str
    bytes: int
    last_used: float
    path: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def parse_size(text: str, source: str) -> int:
    """``4g``, ``512m``, ``100k`` or a number of bytes, like git's size settings."""
    t = text.strip().lower()
    factor = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}.get(t[-1:], 1)
    digits = t[:-1] if factor > 1 else t
    if not digits.isdigit():
        raise ValueError(f"{source} = {text!r}: expected a size such as 4g, 512m or 1000000")
    return int(digits) * factor


class LoadCache:
    """The load cache of one store (see the module docstring)."""

    def __init__(self, root: str, limit: int = DEFAULT_LIMIT) -> None:
        self.root = root
        self.limit = limit

    def _dir(self, commit: str) -> str:
        return os.path.join(self.root, commit)

    def get(self, commit: str, files: Sequence[tuple[str, FileEntry]]) -> str | None:
        """The entry's directory if it holds exactly the bytes of ``files``, else None (and it is gone)."""
        d = self._dir(commit)
        try:
            if not stat.S_ISDIR(os.lstat(d).st_mode):
                # a stray file or a symlink (maybe to a directory outside the cache): never
                # read through it, remove it so that the entry can be written in its place
                log.warning("load cache: %s is not an entry directory; loading the model again", d)
                self._remove(d)
                return None
        except FileNotFoundError:
            return None
        for kwarg, f in files:
            if not _intact(d, kwarg, f):
                log.warning("load cache: %s/%s changed since it was loaded; loading it again", kwarg, f.path)
                self._remove(d)
                return None
        os.utime(d)  # the mtime is the entry's last use: eviction takes the oldest first
        return d

    def fill(self, commit: str, domain: str, model_id: str, files: Sequence[tuple[str, FileEntry]],
             write: Callable[[str], None]) -> str:
        """Create the entry: ``write(scratch_dir)`` writes the files, then it is renamed into place."""
        os.makedirs(self.root, exist_ok=True)
        scratch = tempfile.mkdtemp(dir=self.root, prefix="tmp-")
        try:
            write(scratch)
            with open(os.path.join(scratch, ENTRY_META), "w") as out:
                json.dump({"domain": domain, "model_id": model_id, "bytes": sum(f.size for _, f in files)}, out)
            d = self._dir(commit)
            try:
                os.rename(scratch, d)
            except OSError:
                # another process filled it first (rename onto a non-empty directory fails): use theirs
                found = self.get(commit, files)
                if found is None:
                    raise
                return found
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        self.evict(keep=commit)
        return d

    def entries(self) -> list[CacheEntry]:
        """Every complete entry, most recently used first."""
        out = []
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        for name in names:
            d = os.path.join(self.root, name)
            try:
                with open(os.path.join(d, ENTRY_META)) as f:
                    meta = json.load(f)
                used = os.lstat(d).st_mtime
            except (OSError, ValueError):
                continue  # scratch space of a load in progress, or an entry being removed
            out.append(CacheEntry(name, str(meta.get("domain", "?")), str(meta.get("model_id", "?")),
                                  int(meta.get("bytes", 0)), used, d))
        out.sort(key=lambda e: e.last_used, reverse=True)
        return out

    def evict(self, keep: str | None = None) -> list[CacheEntry]:
        """Remove least recently used entries (never ``keep``) until the total is within the limit."""
        entries = self.entries()
        total = sum(e.bytes for e in entries)
        removed = []
        for e in reversed(entries):  # oldest first
            if total <= self.limit:
                break
            if e.commit == keep:
                continue
            self._remove(e.path)
            total -= e.bytes
            removed.append(e)
        if removed:
            log.info("load cache: evicted %d entries to stay within %d bytes", len(removed), self.limit)
        return removed

    def clear(self) -> list[CacheEntry]:
        """Remove every entry (and any scratch space left by killed loads); returns the entries removed."""
        entries = self.entries()
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        for name in names:
            self._remove(os.path.join(self.root, name))
        return entries

    def _remove(self, d: str) -> None:
        # rename first: readers and `cas cache` never see a half-deleted entry as complete
        trash = os.path.join(self.root, f"tmp-removed-{os.getpid()}-{time.monotonic_ns()}")
        try:
            os.rename(d, trash)  # a symlink is renamed itself, not what it points to
        except FileNotFoundError:
            return
        try:
            if stat.S_ISDIR(os.lstat(trash).st_mode):
                shutil.rmtree(trash, ignore_errors=True)  # rmtree never follows symlinks inside
            else:
                os.unlink(trash)
        except OSError:
            pass


def _intact(entry: str, kwarg: str, f: FileEntry) -> bool:
    """Whether the entry holds ``kwarg/f.path`` as a regular file with exactly ``f``'s size and xxh3.

    No component of the path below ``entry`` may be a symlink: the file returned
    must be the cache's own, not one a link points at.
    """
    path = entry
    try:
        for part in (kwarg, *f.path.split("/")[:-1]):
            path = os.path.join(path, part)
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                return False
        path = os.path.join(path, f.path.split("/")[-1])
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size != f.size:
            return False
        xx = xxhash.xxh3_128()
        with open(path, "rb") as src:
            while block := src.read(1 << 20):
                xx.update(block)
        return xx.digest() == f.xxh3
    except OSError:
        return False
