"""Files a pull writes while it verifies them, for the download that follows (``cas pull --download``).

A pull reads every file of a new model in full to check it (incoming.py: each new
chunk against its key, the whole file against the manifest's size, xxh3 and BLAKE3).
A download right after it would decompress and hash the same bytes again.  With a
:class:`Staging`, the pull also writes the bytes of one model's files, as it checks
them, into temporary files in a directory next to the download's; a file is kept only
once its whole-file check passed.  The download then moves such a file into place
instead of reading the store -- when the manifest entry it writes has the same path,
size, xxh3 and BLAKE3 as the staged one, which fixes every byte.  Everything else of
the download (which model, the signature policy, files it must not replace) is the
ordinary :meth:`Store.download`'s; a file that was not staged is read as always.

Staging is best effort and never changes what the pull does: a directory that cannot
be created or a write that fails (a full disk) only means the download reads the store.
Whatever is not taken is deleted with the directory (:meth:`Staging.close`), also when
the pull fails: a hostile remote leaves neither the store nor the download directory
changed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping

from dulwich.objects import Commit, ObjectID

from ..model.manifest import FileEntry
from ..objects.odb import ObjectDB
from ..util.fsutil import TMP_PREFIX

_Key = tuple[str, int, bytes, bytes]


def _key(entry: FileEntry) -> _Key:
    return entry.path, entry.size, entry.xxh3, entry.blake3


class Tee:
    """One file being staged: fed the bytes the pull verifies, in order."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._f = open(path, "wb")  # noqa: SIM115 - closed by finish()
        self.ok = True

    def write(self, raw: bytes | memoryview) -> None:
        if self.ok:
            try:
                self._f.write(raw)
            except OSError:
                self.ok = False  # a full disk: the download reads the store instead

    def finish(self) -> bool:
        """Close the file; whether it holds every byte written."""
        try:
            self._f.close()
        except OSError:
            self.ok = False
        return self.ok


class Staging:
    """The files of one model (``domain``/``model_id``; None: the newest new one) a pull stages for ``root``."""

    def __init__(self, root: str, domain: str, model_id: str | None) -> None:
        self.root = os.path.abspath(root)
        self.domain = domain
        self.model_id = model_id
        self.chosen = model_id
        self.dir: str | None = None
        self.files: dict[_Key, str] = {}
        self.failed = False

    def choose(self, odb: ObjectDB, domain: str, models: Mapping[str, ObjectID],
               new: Callable[[ObjectID], bool]) -> None:
        """Without a model ID: stage the new model of the domain whose commit is the newest.

        A guess at what the download will take (the newest model after the merge); when
        it is another, that download reads the store as always.
        """
        if domain != self.domain or self.model_id is not None:
            return
        best: tuple[int, str] | None = None
        for mid, sha in models.items():
            if new(sha):
                c = odb.read(sha, Commit)
                assert isinstance(c, Commit)
                if best is None or (c.commit_time, mid) > best:
                    best = (c.commit_time, mid)
        self.chosen = best[1] if best else None

    def tee(self, domain: str, model_id: str) -> Callable[[FileEntry], Tee | None] | None:
        """A function giving a :class:`Tee` for each file of that model, if it is the one staged."""
        if self.failed or (domain, model_id) != (self.domain, self.chosen):
            return None
        if self.dir is None:
            try:  # next to the download's directory: a rename moves the file into place
                self.dir = tempfile.mkdtemp(prefix=TMP_PREFIX + "pull-", dir=os.path.dirname(self.root))
            except OSError:
                self.failed = True
                return None
        where = self.dir

        def start(entry: FileEntry) -> Tee | None:
            try:
                fd, path = tempfile.mkstemp(dir=where)
                os.close(fd)
                return Tee(path)
            except OSError:
                return None
        return start

    def verified(self, entry: FileEntry, tee: Tee) -> None:
        """``tee`` holds exactly the bytes of ``entry``, checked against its manifest."""
        if tee.finish():
            self.files[_key(entry)] = tee.path

    def take(self, entry: FileEntry) -> str | None:
        """A staged file holding exactly ``entry``'s bytes, for the caller to move into place."""
        return self.files.pop(_key(entry), None)

    def close(self) -> None:
        """Delete what was not taken."""
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
        self.files.clear()
