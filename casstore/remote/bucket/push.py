"""Push to a bucket: upload one pack of what the remote lacks, then move the refs with conditional writes."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dulwich.objects import ZERO_SHA, ObjectID
from dulwich.pack import UnpackedObject
from dulwich.refs import Ref

from ...errors import RemoteError
from ...objects.packwriter import EncodedEntry, PackWriter, parse_object_header
from ...util.progress import ProgressFn
from ..reftable import DomainTable, RootTable, digest
from ..transports.base import PackSource, Sent, UpdateRefs, transport_errors
from .base import CAS_ATTEMPTS, FORMAT_PER_REF, log
from .combine import Combine
from .tables import RefTables, editable_table

if TYPE_CHECKING:
    from ...objects.repository import Repository


class _GcRanMeanwhile(Exception):
    """The root's gc epoch moved during a push: objects it counted on may be gone."""


@dataclass
class SendResult:
    """What one attempt of a push did: the remote's refs after it, and each change's status."""

    refs: dict[Ref, ObjectID]
    ref_status: dict[Ref, str | None] = field(default_factory=dict)

    def moved(self, changes: Mapping[Ref, ObjectID]) -> None:
        """Make ``refs`` hold the changes whose status says they went through (None)."""
        for ref, reason in self.ref_status.items():
            if reason is None:
                if changes[ref] == ZERO_SHA:
                    self.refs.pop(ref, None)
                else:
                    self.refs[ref] = changes[ref]


def _ref_kind(ref: Ref) -> tuple[str, str, str]:
    """("states", "", ""), ("history", domain, "") or ("model", domain, id) of a casstore ref name."""
    text = ref.decode()
    if text == "refs/cas/states":
        return "states", "", ""
    if text.startswith("refs/cas/domains/"):
        return "history", text[len("refs/cas/domains/"):], ""
    domain, _, mid = text[len("refs/cas/models/"):].partition("/")
    return "model", domain, mid


def _in_order(changes: Mapping[Ref, ObjectID], base: Collection[Ref],
              put: Callable[[Ref, ObjectID], str | None]) -> dict[Ref, str | None]:
    """Each change's status: None when ``put`` made it, else why not (``put``'s refusal, or a skip).

    Several requests, no transaction (format 1), or one swap decided change by
    change (format 2): in the order that never loses a model, even interrupted
    or refused half-way.  New model refs first (a model the history does not
    list yet is harmless: model refs are the truth); then the histories and the
    states ref (a compare-and-swap on the value read with the refs); deletions
    and replacements of model refs in ``base`` last, and only for domains whose
    history moved, so a refused history never leaves a remote model deleted.
    """
    status: dict[Ref, str | None] = {}
    failed: set[str] = set()
    models = sorted(r for r in changes if _ref_kind(r)[0] == "model")
    for ref in (r for r in models if r not in base):
        status[ref] = put(ref, changes[ref])
        if status[ref] is not None:
            failed.add(_ref_kind(ref)[1])
    for ref in sorted(set(changes) - set(models)):
        what, domain, _ = _ref_kind(ref)
        if what == "history" and domain in failed:
            status[ref] = "not moved: a model ref of this domain was refused"
            continue
        status[ref] = put(ref, changes[ref])
        if status[ref] is not None and what == "history":
            failed.add(domain)
    for ref in (r for r in models if r in base):
        if _ref_kind(ref)[1] in failed:
            status[ref] = "not changed: this domain's history was not moved"
            continue
        status[ref] = put(ref, changes[ref])
    return status


class Push(RefTables, Combine):
    """The ``Transport``'s ``send``: the pack, then the refs (per-ref objects or the ref tables)."""

    def send(self, repo: Repository, update_refs: UpdateRefs, domains: set[str] | None,
             progress: ProgressFn | None) -> Sent:
        """Upload what the remote lacks, then move its refs with conditional writes.

        A push reads the ref tables of ``domains`` (None: all), the domains whose
        refs it may change.  On a remote of ref tables, a ``cas gc`` of the bucket
        that ran between the read of the refs and their swap may have deleted
        objects the pack left out: the push then starts again (at most
        ``CAS_ATTEMPTS`` times).
        """
        with PackSource(repo, progress) as source, transport_errors(self.url):
            status = self._send_retrying(update_refs, source, domains)
        return Sent(status, b"", source.objects, source.bytes_sent)

    def _send_retrying(self, update_refs: UpdateRefs, source: PackSource,
                       domains: set[str] | None) -> dict[bytes, str | None]:
        with self._errors():
            for attempt in range(CAS_ATTEMPTS):
                try:
                    result = self._send_once(update_refs, source, domains)
                    break
                except _GcRanMeanwhile:
                    # back off: a gc collects the pack the lost attempt left unreferenced, and
                    # a push that started again at once would race that gc's epoch swap too
                    log.info("remote %s: a gc ran during the push: pushing again", self.url)
                    self.gc_restarts += 1
                    time.sleep(min(2.0, 0.1 * 2 ** attempt) * (0.5 + random.random()))  # noqa: S311 - jitter
            else:
                raise RemoteError(self.url, f"a gc of the remote kept running during the push ({CAS_ATTEMPTS} "
                                            "attempts): push again")
            if not result.ref_status:
                return {}
        try:
            self.combine_packs()
        except Exception as e:  # best effort: the push is complete, and the next one tries again
            log.warning("remote %s: combining small packs failed (the push itself succeeded): %s", self.url, e)
        return {ref: why for ref, why in result.ref_status.items()}

    def _send_once(self, update_refs: UpdateRefs, source: PackSource, domains: set[str] | None) -> SendResult:
        per_ref = self._check_marker(create=True) == FORMAT_PER_REF
        if per_ref:
            refs, versions = self.read_ref_objects()
        else:
            root, root_version = self.read_root()
            if root_version is None and any(True for _ in self._list("refs/cas/")):
                raise RemoteError(self.url, "is being upgraded to ref tables (format 2): try again in a "
                                            f"moment, or finish it with `cas remote upgrade {self.url}`")
            tables = self.read_tables(root, domains)
            refs = self.tables_as_refs(root, tables)
        new = update_refs(dict(refs))
        changes = {r: s for r, s in new.items() if refs.get(r) != s}
        result = SendResult(dict(refs))
        if not changes:
            return result
        count, records = source.generate(set(refs.values()), {s for s in changes.values() if s != ZERO_SHA})
        if count:
            self._upload_pack(count, records)
        if per_ref:
            self._update_refs(changes, versions, result)
        else:
            self._update_tables(changes, refs, root, root_version, tables, result)
        return result

    def _upload_pack(self, count: int, records: Iterator[UnpackedObject]) -> None:
        with self._scratch("push") as work:
            with PackWriter(work, work, count, durable=False) as writer:
                for u in records:
                    assert u.comp_chunks is not None  # PackSource's records are compressed entries
                    entry = b"".join(u.comp_chunks)
                    _, _, hlen = parse_object_header(entry)
                    writer.add(EncodedEntry.verbatim(u.sha(), entry[:hlen], entry[hlen:]))
                name = writer.finish()
            self._publish(work, name, "uploading")

    def _update_refs(self, changes: Mapping[Ref, ObjectID], versions: Mapping[Ref, str], result: SendResult) -> None:
        """Move refs with conditional writes, one request each (``_in_order``); ``versions`` holds the version
        each ref was read with."""

        def write(ref: Ref, sha: ObjectID) -> str | None:
            key = self._key(ref.decode())
            if sha == ZERO_SHA:
                done = self._delete_ref(key, versions[ref]) if ref in versions else True
            else:
                done = self._put_ref(key, sha + b"\n", versions.get(ref))
            if not done:
                # a request retried after a lost answer is refused by its own first attempt:
                # if the ref now holds what we wanted, the update went through
                now = self._get(key, 100)
                if (now[0].strip() if now is not None else ZERO_SHA) == sha:
                    return None
                return "changed on the remote meanwhile" if ref in versions else "already exists on the remote"
            return None

        result.ref_status.update(_in_order(changes, versions.keys(), write))
        result.moved(changes)

    def _update_tables(self, changes: Mapping[Ref, ObjectID], base: Mapping[Ref, ObjectID], root: RootTable,  # noqa: PLR0913 - what a ref table update needs
                       version: str | None, tables: dict[str, DomainTable], result: SendResult) -> None:
        """Apply ``changes`` (decided on the refs ``base``) to the ref tables, by the root's compare-and-swap.

        Each attempt decides every change against the tables as they are now,
        with ``_update_refs``'s rules: a model ID is created only where absent; a
        history, the states ref, a model replaced or deleted only where it still
        has the value the push read; a refused model creation or history leaves
        its domain's history and removals alone.  The new domain tables are
        written, then the root swapped; a lost swap (another writer, anywhere in
        the store) reads the root and the touched domains' tables again and
        decides again.  All the changes that pass go in one swap: atomic.
        """
        touched = sorted({_ref_kind(r)[1] for r in changes if _ref_kind(r)[0] != "states"})
        for attempt in range(CAS_ATTEMPTS):
            status, new_root, written = self._plan_tables(changes, base, root, tables)
            if new_root == root or self.write_root(new_root, written, version):
                result.ref_status.update(status)
                break
            time.sleep(min(2.0, 0.05 * 2 ** attempt) * random.random())  # noqa: S311 - jitter, not crypto
            epoch = root.gc
            root, version = self.read_root(fresh=True)
            if root.gc != epoch:
                raise _GcRanMeanwhile()
            tables.update(self.read_tables(root, set(touched)))
        else:
            for ref in changes:
                result.ref_status[ref] = f"other clients kept changing the remote's refs ({CAS_ATTEMPTS} attempts)"
        result.moved(changes)

    @staticmethod
    def _plan_tables(changes: Mapping[Ref, ObjectID], base: Mapping[Ref, ObjectID], root: RootTable,  # noqa: C901 - one branch per change to a ref table
                     tables: Mapping[str, DomainTable]
                     ) -> tuple[dict[Ref, str | None], RootTable, dict[str, DomainTable]]:
        """One attempt of ``_update_tables``: each change's status, the new root, the tables to write."""
        kind = _ref_kind
        new_tables: dict[str, DomainTable] = {}
        states = [root.states]

        def table(domain: str) -> DomainTable:
            if domain not in new_tables:
                new_tables[domain] = editable_table(root, tables, domain)
            return new_tables[domain]

        def current(ref: Ref) -> ObjectID | None:
            what, domain, mid = kind(ref)
            if what == "states":
                return states[0]
            return table(domain).history if what == "history" else table(domain).models.get(mid)

        def put(ref: Ref, sha: ObjectID) -> str | None:
            now = current(ref)
            if now == (None if sha == ZERO_SHA else sha):
                return None  # there already (a retried request, or another client did the same)
            what, domain, mid = kind(ref)
            if now != base.get(ref):
                return "already exists on the remote" if what == "model" and ref not in base \
                    else "changed on the remote meanwhile"
            if what == "states":
                states[0] = sha
            elif what == "history":
                table(domain).history = None if sha == ZERO_SHA else sha
            elif sha == ZERO_SHA:
                del table(domain).models[mid]
            else:
                table(domain).models[mid] = sha
            return None

        status = _in_order(changes, base.keys(), put)
        new_root = RootTable(states[0], dict(root.domains), root.gc)
        written: dict[str, DomainTable] = {}
        for domain, t in new_tables.items():
            if t.empty():
                new_root.domains.pop(domain, None)
            else:
                name = digest(t.encode())
                if root.domains.get(domain) != name:
                    new_root.domains[domain] = name
                    written[domain] = t
        return status, new_root, written
