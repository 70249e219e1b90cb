"""Who signed a model commit or a history event, checked against the allowed signers file.

A model commit's signature covers the commit, hence its tree: the manifest (which names
the domain, the ID and every file's chunk list) and every chunk blob.  A history
commit's signature covers one event (commit, state change, deletion, restore, merge)
and the domain index it leaves.  ``util/sshsig.py`` does the checking with
``ssh-keygen``, exactly as ``git verify-commit`` does (docs/signing.md).

Verdicts are cached under ``cas/cache/sigs/``, keyed by the commit, the allowed
signers file's contents and the domain: a signature is checked once, and a warm
``load`` pays one small file read for it.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import BinaryIO

from dulwich.objects import Commit, ObjectID

from ..objects.repository import Repository
from ..util.fsutil import write_new_file
from ..util.sshsig import UNSIGNED, Verdict, allowed_signers_file, verify


class Verifier:
    """Checks commits' signatures against one allowed signers file (the store's, by default)."""

    def __init__(self, repo: Repository, allowed: str | None = None) -> None:
        self.repo = repo
        #: the allowed signers file (None: none configured; every valid signature is untrusted)
        self.allowed = allowed if allowed is not None else allowed_signers_file(repo.path)
        contents = b"\0none"
        if self.allowed:
            try:
                with open(self.allowed, "rb") as f:
                    contents = f.read()
            except OSError:
                contents = b"\0missing"
        self._key = hashlib.sha256((self.allowed or "").encode() + b"\0" + contents).hexdigest()[:32]
        self.cache_dir = os.path.join(repo.path, "cas", "cache", "sigs")
        self._memo: dict[tuple[bytes, str], Verdict] = {}

    def commit(self, commit_id: ObjectID | str, domain: str) -> Verdict:
        """The verdict on ``commit_id``'s signature for ``domain``."""
        oid = commit_id.encode() if isinstance(commit_id, str) else bytes(commit_id)
        memo = self._memo.get((oid, domain))
        if memo is not None:
            return memo
        c = self.repo.odb.read(ObjectID(oid), Commit)
        assert isinstance(c, Commit)
        return self.of(c, domain)

    def of(self, c: Commit, domain: str) -> Verdict:
        """The verdict on the signature of the commit object ``c`` (already read and verified)."""
        oid = bytes(c.id)
        if not c.gpgsig:
            return Verdict(UNSIGNED)
        name = hashlib.sha1(oid + b"\0" + self._key.encode() + b"\0" + domain.encode()).hexdigest()
        path = os.path.join(self.cache_dir, name)
        verdict = _read_cached(path)
        if verdict is None:
            verdict = verify(c.raw_without_sig(), c.gpgsig, self.allowed, when=c.commit_time, domain=domain)
            _write_cached(path, verdict)
        self._memo[(oid, domain)] = verdict
        return verdict


def _read_cached(path: str) -> Verdict | None:
    try:
        with open(path, "rb") as f:
            d = json.loads(f.read())
        return Verdict(str(d["status"]), d.get("principal"), d.get("key"), d.get("detail") or "")
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_cached(path: str, verdict: Verdict) -> None:
    """Best effort: a read-only store or a full disk only costs the next check again."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        data = json.dumps(verdict.as_dict()).encode()

        def write(f: BinaryIO) -> None:
            f.write(data)

        write_new_file(path, write)
    except OSError:
        pass
