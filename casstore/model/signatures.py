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
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO

from dulwich.objects import Commit, ObjectID

from ..errors import DomainNotFoundException, UnsignedModelError
from ..objects.odb import ObjectDB
from ..objects.refs import domain_ref
from ..objects.repository import Repository
from ..util.fsutil import write_new_file
from ..util.sshsig import UNSIGNED, Verdict, allowed_signers_file, verify
from .history import iter_log, parse_event
from .listing import iter_models
from .reading import read_model


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
        self.cache_dir = repo.cache_dir("sigs")
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

    def of(self, c: Commit, domain: str, *, cache: bool = True) -> Verdict:
        """The verdict on the signature of the commit object ``c`` (already read and verified).

        ``cache=False``: neither read nor write the verdict cache (objects that are not the
        store's yet: a refused pull leaves no trace).
        """
        oid = bytes(c.id)
        if not c.gpgsig:
            return Verdict(UNSIGNED)
        name = hashlib.sha1(oid + b"\0" + self._key.encode() + b"\0" + domain.encode()).hexdigest()
        path = os.path.join(self.cache_dir, name)
        verdict = _read_cached(path) if cache else None
        if verdict is None:
            verdict = verify(c.raw_without_sig(), c.gpgsig, self.allowed, when=c.commit_time, domain=domain)
            if not cache:
                return verdict
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


def check_received(verifier: Verifier, odb: ObjectDB, domain: str, models: Mapping[str, ObjectID],  # noqa: PLR0913 - what checking received signatures needs
                   history: ObjectID | None, known: Callable[[ObjectID], bool]) -> None:
    """Refuse what a pull would add to ``domain`` unless an allowed key signed it all.

    ``models``: the remote's model refs of the domain; ``history``: its history tip;
    ``odb``: where the received objects are (the quarantine); ``known``: whether this
    store already has an object (what it has was checked when it arrived, or made here).
    Every new model commit and every new history event must be ``good``.

    Raises:
        UnsignedModelError: naming the first model or event that is not.
    """
    for mid, sha in sorted(models.items()):
        if known(sha):
            continue
        c = odb.read(sha, Commit)
        assert isinstance(c, Commit)
        verdict = verifier.of(c, domain, cache=False)
        if not verdict.ok:
            raise UnsignedModelError(domain, mid, sha.decode(), verdict.describe())
    stack = [history] if history is not None else []
    seen: set[ObjectID] = set()
    while stack:
        sha = stack.pop()
        if sha in seen or known(sha):
            continue
        seen.add(sha)
        c = odb.read(sha, Commit)
        assert isinstance(c, Commit)
        verdict = verifier.of(c, domain, cache=False)
        if not verdict.ok:
            ev = parse_event(c)
            raise UnsignedModelError(domain, ev.model_id or "-", sha.decode(),
                                     f"history event '{ev.event} {ev.model_id}': {verdict.describe()}")
        stack.extend(c.parents)


def verify_domain(repo: Repository, v: Verifier, domain: str, model_id: str | None) -> dict[str, Any]:
    """The body of ``Store.verify_model`` (see there): the verdict on each live model's commit
    (or ``model_id``'s) and on each event of the domain history (about ``model_id``).

    Raises:
        DomainNotFoundException, ModelNotFoundException.
    """
    ids = [model_id] if model_id is not None else sorted(iter_models(repo, domain))
    verdicts: list[Verdict] = []
    models = []
    for mid in ids:
        sha = read_model(repo, domain, mid).commit
        verdicts.append(v.commit(sha, domain))
        models.append({"model_id": mid, "commit": sha.decode(), "signature": verdicts[-1].as_dict()})
    head = repo.refs.get(domain_ref(domain))
    if head is None:
        raise DomainNotFoundException(domain)
    events = []
    for e in iter_log(repo.odb, head):
        if model_id is None or e.model_id == model_id:
            verdicts.append(v.commit(e.history_commit, domain))
            events.append({"event": e.event, "model_id": e.model_id, "history_commit": e.history_commit,
                           "time": e.as_dict()["time"], "signature": verdicts[-1].as_dict()})
    ok = all(x.ok for x in verdicts)
    return {"domain": domain, "allowed_signers": v.allowed, "models": models, "events": events, "ok": ok}
