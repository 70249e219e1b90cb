"""The ref layout and atomic ref operations.

Over 500 lines because the quick ``packed-refs`` reader restates dulwich's three ref writes
around its one lookup (``CheckedRefsContainer``), beside the ref layout they serve.

::

    refs/cas/models/<domain>/<model_id>   -> the model's commit (the source of truth)
    refs/cas/domains/<domain>             -> the domain's history (see model/history/)

Creating a model ref is the one atomic step that claims an ID: dulwich's
``add_if_new`` takes ``<ref>.lock`` with O_EXCL and fails if the ref exists, so of
several racing processes exactly one wins.  A held lock makes dulwich raise
``FileLocked`` at once; we retry with backoff for a while, then name the lock file.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from dulwich.errors import PackedRefsException, RefFormatError
from dulwich.file import FileLocked, GitFile, ensure_dir_exists
from dulwich.objects import ZERO_SHA, ObjectID, valid_hexsha
from dulwich.refs import SYMREF, DiskRefsContainer, Ref, SymrefLoop, refname_is_safe

from ..errors import CorruptObjectError, InvalidIdError, StoreLockedError
from ..util.fsutil import fsync_dir
from ..util.names import MAX_NAME_LENGTH, check_model_id

MODELS = b"refs/cas/models/"
DOMAINS = b"refs/cas/domains/"
LOCK_TIMEOUT = 30.0
#: a ref lock this old, found while holding the domain lock, was left by a killed writer
STALE_LOCK_AGE = 2.0
T = TypeVar("T")


def model_ref(domain: str, model_id: str) -> Ref:
    return Ref(MODELS + domain.encode() + b"/" + model_id.encode())


def domain_ref(domain: str) -> Ref:
    return Ref(DOMAINS + domain.encode())


def with_lock_retry(fn: Callable[[], T], timeout: float = LOCK_TIMEOUT) -> T:
    """Call ``fn``, retrying while a ref lock is held by someone else."""
    start = time.monotonic()
    delay = 0.002
    while True:
        try:
            return fn()
        except FileLocked as e:
            waited = time.monotonic() - start
            if waited >= timeout:
                raise StoreLockedError(os.fsdecode(e.lockfilename), waited) from None
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.25)


#: a byte of a ref name as dulwich's ``check_ref_format`` allows it ("/" aside)
_REF_BYTE = rb"[^\x00-\x20\x7f~^:?*\[\\/]"
#: a packed-refs text each line of which dulwich's parser accepts as it is, given that the
#: text ends with a newline and holds none of ``_FAST_SUBSTRINGS``: comments, and lower-case
#: SHA-1 ids with names of at least two non-empty components (no peeled ``^`` lines).
#: Possessive (no line can be read two ways): a third of the time of the plain expression.
_PACKED_TEXT = re.compile(rb"(?:#[^\n]*+\n|[0-9a-f]{40} " + _REF_BYTE + rb"++(?:/" + _REF_BYTE + rb"++)++\n)*+")
#: the rest of ``check_ref_format``'s rules, as substrings no valid line holds: ``..``, ``@{``, a
#: component starting with ``.`` or ending with ``.lock``, a name ending with ``.``
_FAST_SUBSTRINGS = (b"..", b"@{", b"/.", b" .", b".lock/", b".lock\n", b".\n")
_PACKED_LINE = re.compile(rb"^([0-9a-f]{40}) ([^\n]+)$", re.M)
#: how many lookups by search one version of packed-refs serves before it is parsed whole
#: (a search of 1,000,000 refs costs ~7 ms, the parse ~1.5 s)
SEARCHES_BEFORE_PARSE = 64


def fast_packed_text(text: bytes) -> bool:
    """Whether dulwich's parser accepts every line of ``text`` (a ``packed-refs``), checked in C.

    False also for some files dulwich accepts (peeled lines, upper-case or SHA-256
    ids, a last line without its newline, ``\\r\\n``): those are parsed by dulwich.
    """
    return (text.endswith(b"\n") and not any(s in text for s in _FAST_SUBSTRINGS)
            and _PACKED_TEXT.fullmatch(text) is not None)


@dataclass
class _PackedVersion:
    """One version of ``packed-refs`` as read: its key, its text (when it passed
    ``fast_packed_text``) and its parse (once needed, or dulwich's when it did not)."""

    key: tuple[int, int, int, int, int] | None  # dulwich's key of the file; None: there is none
    text: bytes | None
    parsed: dict[Ref, ObjectID] | None
    searches: int = 0
    found: dict[Ref, ObjectID | None] = field(default_factory=dict)  # packed_ref's answers
    under: dict[bytes, dict[bytes, ObjectID]] = field(default_factory=dict)  # packed_under's


class CheckedRefsContainer(DiskRefsContainer):
    """dulwich's refs, with damage reported as :class:`CorruptObjectError`, and a quick ``packed-refs``.

    dulwich raises ``PackedRefsException`` (or ``StopIteration`` for an empty
    file) from every ref lookup once ``packed-refs`` holds one bad line, and hands
    back whatever text a damaged loose ref file holds.  Both are named here, by
    file, so that callers (and gc, which must know every root) stop with one clear
    error instead of a traceback or a lookup of garbage.

    ``packed-refs`` (issue 28): dulwich parses the whole file, with a ref-name
    check in Python per line, the first time a process looks up or writes any ref
    (10-30 s for 1,000,000 refs).  Here each version of the file (by dulwich's
    own key: inode, device, size, mtime and ctime) is read once and checked whole
    by one regular expression and a few substring searches, in C
    (``fast_packed_text``: only lines dulwich accepts pass); a file that fails
    goes to dulwich's parser, which names the bad line (or accepts it: peeled
    lines, upper-case ids).  One ref is then found by a search of the text from
    its end (the last line of a name wins, as in dulwich's parse);
    ``SEARCHES_BEFORE_PARSE`` searches of one version, or a listing, parse it
    whole.  ``add_if_new``, ``set_if_equals`` and ``remove_if_equals`` are
    dulwich's, line for line, but for that lookup: the same ``<ref>.lock`` is held
    across the check and the write, so ``add_if_new`` stays the atomic claim of
    an ID, and a packed ref is removed by dulwich under ``packed-refs.lock``.
    """

    def __init__(self, path: str) -> None:
        super().__init__(path)
        #: the version of packed-refs read last; replaced whole (threads may share the container)
        self._snap: _PackedVersion | None = None

    def _packed_path(self) -> str:
        return os.path.join(os.fsdecode(self.path), "packed-refs")

    def _corrupt(self, e: BaseException) -> CorruptObjectError:
        self._invalidate_packed_refs_cache()
        return CorruptObjectError(self._packed_path(), f"damaged packed-refs file: {e or 'empty'}")

    def _invalidate_packed_refs_cache(self) -> None:
        self._packed_refs, self._peeled_refs, self._packed_refs_key = None, None, None  # dulwich's
        self._snap = None

    def _load_packed(self) -> _PackedVersion:
        """``packed-refs`` as it is on disk now: one stat when it was read already."""
        key = self._current_packed_refs_key()
        snap = self._snap
        if snap is not None and snap.key == key:
            return snap
        try:
            with open(self._packed_path(), "rb") as f:
                text = f.read()
                st = os.fstat(f.fileno())  # the file read, not a newer one renamed into place since
        except FileNotFoundError:
            snap = self._snap = _PackedVersion(None, None, {})
            return snap
        key = (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns)  # dulwich's key
        if fast_packed_text(text):
            snap = _PackedVersion(key, text, None)
        else:  # dulwich's parse: it names the bad line, or reads what the expression does not
            try:
                parsed = super().get_packed_refs()
            except (PackedRefsException, StopIteration, ValueError) as e:
                raise self._corrupt(e) from None
            snap = _PackedVersion(self._packed_refs_key or key, None, parsed)  # the version dulwich read
        self._snap = snap
        return snap

    def get_packed_refs(self) -> dict[Ref, ObjectID]:
        snap = self._load_packed()
        if snap.parsed is None:
            assert snap.text is not None
            snap.parsed = {Ref(n): ObjectID(s) for s, n in _PACKED_LINE.findall(snap.text)}
            # dulwich's own cache, as its parse would have left it (a file without peeled lines)
            self._packed_refs, self._peeled_refs, self._packed_refs_key = snap.parsed, {}, snap.key
        return snap.parsed

    def packed_ref(self, name: Ref) -> ObjectID | None:
        """``name``'s value in ``packed-refs`` (None: not there), without parsing the file when it can."""
        snap = self._load_packed()
        text = snap.text
        if snap.parsed is not None or text is None:
            return self.get_packed_refs().get(name)
        raw = bytes(name)
        if raw.find(b"\n") >= 0 or raw.find(b" ") >= 0 or raw.find(b"/") < 0:
            return None  # never a name that passed the check (and a search must not span lines)
        if name in snap.found:  # this version of the file was searched for it (a claim looks twice)
            return snap.found[name]
        snap.searches += 1
        if snap.searches > SEARCHES_BEFORE_PARSE:
            return self.get_packed_refs().get(name)
        needle = b" " + raw + b"\n"
        end = len(text)
        value = None
        while (i := text.rfind(needle, 0, end)) >= 0:
            start = i - 40
            # every line passed fast_packed_text: one starting 40 bytes before the space, and not a
            # comment, is "<id> <name>"
            if start >= 0 and (start == 0 or text[start - 1] == 0x0A) and text[start] != 0x23:
                value = ObjectID(text[start:i])
                break
            end = i + len(needle) - 1
        snap.found[name] = value
        return value

    def packed_under(self, prefix: bytes) -> dict[bytes, ObjectID]:
        """The packed refs directly under ``prefix`` (name without it -> value), deeper ones left out.

        One search of the text per version of the file, kept with it (a pull lists
        the domain's refs twice): the same dict until the file changes, which the
        caller must not change.
        """
        assert prefix.endswith(b"/")
        snap = self._load_packed()
        got = snap.under.get(prefix)
        if got is None:
            if snap.parsed is None and snap.text is not None:
                line = re.compile(rb"^([0-9a-f]{40}) " + re.escape(prefix) + rb"([^/\n]+)$", re.M)
                got = {name: ObjectID(sha) for sha, name in line.findall(snap.text)}
            else:
                n = len(prefix)
                got = {name[n:]: sha for name, sha in self.get_packed_refs().items()
                       if name.startswith(prefix) and b"/" not in name[n:]}
            snap.under[prefix] = got
        return got

    def read_ref(self, refname: Ref) -> bytes | None:
        contents = self.read_loose_ref(refname)
        if not contents:
            contents = self.packed_ref(refname)
        return contents

    def read_loose_ref(self, name: Ref) -> bytes | None:
        value = super().read_loose_ref(name)
        if value is not None and not value.startswith(SYMREF) and not valid_hexsha(value):
            raise CorruptObjectError(os.path.join(os.fsdecode(self.path), os.fsdecode(name)),
                                     f"damaged ref file: {value[:60]!r} is not an object id")
        return value

    # dulwich 1.2's DiskRefsContainer methods, but for ``packed_ref`` where they took the whole parse

    def set_if_equals(  # noqa: PLR0913 - dulwich's signature
        self, name: Ref, old_ref: ObjectID | None, new_ref: ObjectID, committer: bytes | None = None,
        timestamp: int | None = None, timezone: int | None = None, message: bytes | None = None,
    ) -> bool:
        self._check_refname(name)
        self._check_ref_value(new_ref)
        try:
            realnames, _ = self.follow(name)
            realname = realnames[-1]
        except (KeyError, IndexError, SymrefLoop):
            realname = name
        if not refname_is_safe(realname):  # the resolved symref target may escape the ref store
            raise RefFormatError(realname)
        filename = self.refpath(realname)
        # none of the ancestor folders may be a packed ref
        probe_ref = Ref(os.path.dirname(realname))
        while probe_ref:
            if self.packed_ref(probe_ref) is not None:
                raise NotADirectoryError(filename)
            probe_ref = Ref(os.path.dirname(probe_ref))
        ensure_dir_exists(os.path.dirname(filename))
        with GitFile(filename, "wb") as f:
            # read again while holding the lock
            current = self._read_loose_ref_file(realname)
            if current is None:
                current = self.packed_ref(realname)
            if old_ref is not None and (ZERO_SHA if current is None else current) != old_ref:
                f.abort()
                return False
            if current is not None and current == new_ref:
                f.abort()  # the ref holds it already: no write, no fsync
                return True
            try:
                f.write(new_ref + b"\n")
            except OSError:
                f.abort()
                raise
            self._log(realname, old_ref, new_ref, committer=committer, timestamp=timestamp,
                      timezone=timezone, message=message)
        return True

    def add_if_new(  # noqa: PLR0913 - dulwich's signature
        self, name: Ref, ref: ObjectID, committer: bytes | None = None, timestamp: int | None = None,
        timezone: int | None = None, message: bytes | None = None,
    ) -> bool:
        self._check_refname(name)
        self._check_ref_value(ref)
        try:
            realnames, contents = self.follow(name)
            if contents is not None:
                return False
            realname = realnames[-1]
        except (KeyError, IndexError):
            realname = name
        if not refname_is_safe(realname):
            raise RefFormatError(realname)
        filename = self.refpath(realname)
        ensure_dir_exists(os.path.dirname(filename))
        with GitFile(filename, "wb") as f:  # O_EXCL on <ref>.lock: the claim
            if os.path.exists(filename) or self.packed_ref(name) is not None:
                f.abort()
                return False
            try:
                f.write(ref + b"\n")
            except OSError:
                f.abort()
                raise
            self._log(name, None, ref, committer=committer, timestamp=timestamp, timezone=timezone,
                      message=message)
        return True

    def remove_if_equals(  # noqa: PLR0913 - dulwich's signature
        self, name: Ref, old_ref: ObjectID | None, committer: bytes | None = None,
        timestamp: int | None = None, timezone: int | None = None, message: bytes | None = None,
    ) -> bool:
        self._check_refname(name)
        filename = self.refpath(name)
        ensure_dir_exists(os.path.dirname(filename))
        f = GitFile(filename, "wb")
        try:
            if old_ref is not None:
                orig_ref = self.read_loose_ref(name)
                if orig_ref is None:
                    orig_ref = self.packed_ref(name)
                    if orig_ref is None:
                        orig_ref = ZERO_SHA
                if orig_ref != old_ref:
                    return False
            try:
                found = os.path.lexists(filename)
            except OSError:
                found = False  # may only be packed, or otherwise unstorable
            if found:
                os.remove(filename)
            if self.packed_ref(name) is not None:
                self._remove_packed_ref(name)  # dulwich's: rewrites packed-refs under its lock
            self._log(name, old_ref, None, committer=committer, timestamp=timestamp, timezone=timezone,
                      message=message)
        finally:
            f.abort()  # never written: only the lock was wanted
        # outside the lock: remove the parent directories left empty (a ref of such a name can be made)
        parent, sep, _ = name.rpartition(b"/")
        while sep and parent != b"refs":
            try:
                os.rmdir(self.refpath(parent))
            except OSError:
                break
            parent, sep, _ = parent.rpartition(b"/")
        return True


#: model IDs, each followed by a newline, by util/names.py's rules but for those ``_BAD_IN_IDS`` checks
_ID_LINES = re.compile(rb"(?:[A-Za-z0-9_-][A-Za-z0-9._-]{0,%d}\n)*+" % (MAX_NAME_LENGTH - 1))
_BAD_IN_IDS = (b"..", b".\n", b".lock\n")
_HEX = frozenset(b"0123456789abcdef")


def _valid_id(mid: str) -> bool:
    try:
        check_model_id(mid)
    except InvalidIdError:
        return False
    return True


def _valid_ids(packed: dict[bytes, ObjectID]) -> dict[str, ObjectID]:
    """``packed`` (ID -> value) as text, the entries with an invalid ID left out: one match for all."""
    joined = b"\n".join(packed)
    if _ID_LINES.fullmatch(joined + b"\n") and not any(s in joined + b"\n" for s in _BAD_IN_IDS):
        return dict(zip(joined.decode().split("\n"), packed.values(), strict=True)) if packed else {}
    out = {}
    for k, v in packed.items():
        mid = k.decode("utf-8", "replace")
        if _valid_id(mid):
            out[mid] = v
    return out


def _read_ref_file(path: str) -> ObjectID | None:
    """A loose ref's object id; None when the file is damaged (empty, garbage, symbolic)."""
    with open(path, "rb") as f:
        data = f.read(128).strip()
    return ObjectID(data) if len(data) == 40 and set(data) <= _HEX else None


class Refs:
    """casstore's view of the store's refs.

    Reading a damaged ref (a loose ref file that does not hold an object id, or
    a damaged ``packed-refs``) raises :class:`CorruptObjectError` naming the file.
    """

    def __init__(self, git_dir: str) -> None:
        self.git_dir = git_dir
        self.container = CheckedRefsContainer(git_dir)
        #: run before every ref change: the Repository makes held-back objects durable
        #: here (``ObjectDB.flush``), so no ref ever names an object that is not on disk
        self.before_write: Callable[[], object] = lambda: None
        #: domain -> (its packed refs as ``container.packed_under`` gave them, their valid IDs)
        self._valid_packed: dict[str, tuple[dict[bytes, ObjectID], dict[str, ObjectID]]] = {}

    def lock_files(self, domain: str | None, with_models: bool = True) -> list[str]:
        """The ``.lock`` files that exist for ``domain``'s refs (None: the state list's).

        ``with_models=False`` names only the history ref's, without listing the model refs.
        """
        refs_dir = os.path.join(self.git_dir, "refs", "cas")
        if domain is None:
            return [os.path.join(refs_dir, "states.lock")]
        models = os.path.join(refs_dir, "models", domain)
        out = [os.path.join(refs_dir, "domains", domain + ".lock")]
        if not with_models:
            return out
        try:
            out += [os.path.join(models, n) for n in sorted(os.listdir(models)) if n.endswith(".lock")]
        except (FileNotFoundError, NotADirectoryError):
            pass
        return out

    def clear_stale_locks(self, domain: str | None, min_age: float = STALE_LOCK_AGE,
                          with_models: bool = True) -> list[str]:
        """Remove the ref ``.lock`` files that a killed writer left behind.

        dulwich updates a ref through ``<ref>.lock``; a writer SIGKILLed in between
        leaves the file, and every later update of that ref fails until it is gone.
        Only for callers holding the lock that orders casstore's writers of these
        refs (the domain's, or for ``domain=None`` the state list's; model/writer.py):
        no casstore writer can be updating them then, so such a file is a leftover,
        or the live lock of a foreign writer (a ``git push`` into this store), which
        holds it for milliseconds.  A lock younger than ``min_age`` is therefore
        waited for (until it vanishes or reaches that age) before it is removed.

        Returns the paths removed.
        """
        removed = []
        for path in self.lock_files(domain, with_models):
            while True:
                try:
                    age = time.time() - os.stat(path).st_mtime
                except FileNotFoundError:
                    break  # none, or a live writer finished
                if age < min_age:
                    time.sleep(min(min_age - age, 0.1) + 0.005)
                    continue
                try:
                    os.unlink(path)
                    removed.append(path)
                except FileNotFoundError:
                    pass
                break
        for d in sorted({os.path.dirname(p) for p in removed}):
            fsync_dir(d)
        return removed

    def _sync(self, name: bytes) -> None:
        # dulwich fsyncs the ref file but not the directory holding its new name.  After
        # a deletion dulwich may also have removed the emptied directories: sync the
        # nearest one that is left.
        d = os.path.dirname(os.path.join(self.git_dir, os.fsdecode(name)))
        while not os.path.isdir(d) and len(d) > len(self.git_dir):
            d = os.path.dirname(d)
        fsync_dir(d)

    def get(self, name: Ref) -> ObjectID | None:
        try:
            return self.container[name]
        except KeyError:
            return None

    def add_if_new(self, name: Ref, sha: ObjectID) -> bool:
        self.before_write()
        ok = with_lock_retry(lambda: self.container.add_if_new(name, sha))
        if ok:
            self._sync(name)
        return ok

    def set_if_equals(self, name: Ref, old: ObjectID | None, new: ObjectID) -> bool:
        """Compare-and-swap; ``old=None`` means the ref must not exist yet."""
        if old is None:
            return self.add_if_new(name, new)
        self.before_write()
        ok = with_lock_retry(lambda: self.container.set_if_equals(name, old, new))
        if ok:
            self._sync(name)
        return ok

    def remove_if_equals(self, name: Ref, old: ObjectID) -> bool:
        self.before_write()
        ok = with_lock_retry(lambda: self.container.remove_if_equals(name, old))
        if ok:
            self._sync(name)
        return ok

    def subkeys(self, base: bytes) -> set[bytes]:
        """Ref names under ``base`` (without the prefix), loose and packed."""
        assert base.endswith(b"/")
        return set(self.container.subkeys(Ref(base)))

    def domains(self) -> set[str]:
        """Every domain with a model ref or a history, loose or packed.

        Reads two directories and ``packed-refs``, never the model refs themselves:
        listing every ref under ``refs/cas/models/`` cost O(models in the store).
        """
        names: set[str] = set()
        base = os.path.join(self.git_dir, "refs", "cas")
        for sub, want_dir in (("models", True), ("domains", False)):
            try:
                entries = list(os.scandir(os.path.join(base, sub)))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for e in entries:
                if e.name.endswith(".lock") or e.name.startswith("."):
                    continue
                if want_dir and e.is_dir(follow_symlinks=False):
                    if self._has_loose_ref(e.path):
                        names.add(e.name)
                elif not want_dir and e.is_file(follow_symlinks=False):
                    names.add(e.name)
        for name in self.container.get_packed_refs():
            for prefix in (MODELS, DOMAINS):
                if name.startswith(prefix):
                    first = name[len(prefix):].split(b"/")[0]
                    if first:
                        names.add(first.decode())
        return names

    @staticmethod
    def _has_loose_ref(directory: str) -> bool:
        """Whether a model refs directory holds a ref (dulwich may leave it empty, or with locks)."""
        with os.scandir(directory) as it:
            return any(not e.name.endswith(".lock") for e in it)

    def scan_models(self, domain: str) -> tuple[dict[bytes, ObjectID], list[os.DirEntry[str]]]:
        """The domain's model refs as they lie on disk, unread and unvalidated: one listing.

        Returns the packed ones (ID -> value, as ``packed-refs`` has it) and the
        loose ones (the files of ``refs/cas/models/<domain>/``, ``.lock`` files left
        out).  Model IDs never contain ``/``: deeper names are left out.  This is
        the one scan of a domain's refs that counting, listing and reconciling
        share; ``model_ids`` validates names through dulwich instead.  The packed
        dict is the container's, kept while ``packed-refs`` does not change: read it,
        never change it.
        """
        prefix = MODELS + domain.encode() + b"/"
        packed = self.container.packed_under(prefix)  # one object per version of packed-refs: not to be changed
        try:
            with os.scandir(os.path.join(self.git_dir, os.fsdecode(prefix))) as it:
                loose = [e for e in it if not e.name.endswith(".lock") and e.is_file(follow_symlinks=False)]
        except (FileNotFoundError, NotADirectoryError):
            loose = []
        return packed, loose

    def model_refs(self, domain: str) -> dict[str, ObjectID]:
        """The domain's model refs (ID -> commit): what ``model_ids`` then one ``get`` per ID return.

        The packed ones from one search of ``packed-refs`` for the domain's lines
        (kept for as long as the file does not change: a pull lists its refs
        before and after it moves them), each loose one read; a loose ref wins over
        a packed one, as in git.  Refs with a bad name or value are left out; a
        damaged ``packed-refs`` raises :class:`CorruptObjectError`, as ``get`` does.
        About 1 s for 1,000,000 packed refs, where dulwich's parse and a lookup per
        ID took 12 s.
        """
        packed, loose = self.scan_models(domain)
        seen = self._valid_packed.get(domain)
        if seen is None or seen[0] is not packed:  # packed-refs changed: check its IDs again
            seen = self._valid_packed[domain] = (packed, _valid_ids(packed))
        found = dict(seen[1])
        for e in loose:
            try:
                value = _read_ref_file(e.path) if _valid_id(e.name) else None
            except FileNotFoundError:  # deleted meanwhile
                value = None
            if value is not None:
                found[e.name] = value
            else:
                found.pop(e.name, None)
        return found

    def has_domain(self, domain: str) -> bool:
        """Whether ``domain`` has a history or a model ref: a stat, and rarely a listing."""
        if self.get(domain_ref(domain)) is not None:
            return True
        packed, loose = self.scan_models(domain)
        return bool(loose or packed)

    def model_ids(self, domain: str) -> set[str]:
        return {k.decode() for k in self.subkeys(MODELS + domain.encode() + b"/") if b"/" not in k}

    def count_model_ids(self, domain: str) -> int:
        """How many model refs ``domain`` has: one directory listing plus packed-refs.

        ``model_ids`` validates every ref name through dulwich, which costs ~0.2 ms
        per model (20 s for 100,000); counting needs only the names.
        """
        packed, loose = self.scan_models(domain)
        if not packed:
            return len(loose)
        return len({os.fsencode(e.name) for e in loose} | set(packed))
