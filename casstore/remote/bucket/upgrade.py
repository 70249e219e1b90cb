"""Upgrading a bucket of format 1 (one object per ref) to ref tables, in place."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from dulwich.objects import ObjectID
from dulwich.refs import Ref

from ...errors import InvalidIdError
from ...util.names import check_domain, check_model_id
from ..reftable import ROOT_KEY, DomainTable, RootTable, digest
from .base import CAS_ATTEMPTS, FORMAT, MARKER
from .tables import RefTables, editable_table

#: seconds an upgrade waits after writing the new marker, for format-1 pushes already under way
UPGRADE_SETTLE = 10.0


@dataclass
class UpgradeResult:
    """What ``BucketClient.upgrade`` did."""

    url: str
    #: the remote's format before: 0 (nothing there), 1 (one object per ref) or 2 (already upgraded)
    old_format: int = 0
    #: per-ref objects folded into the ref tables (and deleted)
    refs: int = 0
    #: per-ref objects left in place: their value differs from the table's (ref -> value)
    left: dict[str, str] = field(default_factory=dict)


class Upgrade(RefTables):
    """``upgrade``."""

    def upgrade(self, settle: float = UPGRADE_SETTLE) -> UpgradeResult:
        """Convert a format-1 remote (one object per ref) to ref tables, in place, while others use it.

        1. The marker says format 2: from then on a format-1 client refuses the
           remote ("written by a newer casstore"), and format-2 clients read the
           old refs (pulls) or wait (pushes) until the root exists.
        2. Wait ``settle`` seconds: a format-1 push that read the marker before
           may still write its refs.
        3. Fold the per-ref objects into the tables (root compare-and-swap), then
           delete each with its version as read: one a late format-1 push changed
           meanwhile is refused, read again and folded in the next round.

        A per-ref object whose value differs from the table's (only a format-1
        client writing after the settle time can cause it) is left in place and
        reported; running the upgrade again folds any such late writes that do
        not conflict.  Idempotent: an upgraded remote is left as it is.

        Raises:
            RemoteError: the service failed, or the remote is of a newer format.
        """
        result = UpgradeResult(self.url)
        with self._errors():
            got = self._get(self._key(MARKER), 256)
            result.old_format = 0 if got is None else self._marker_format(got[0])
            if result.old_format < FORMAT:
                self._put(self._key(MARKER), f"{MARKER} {FORMAT}\n".encode())
                if result.old_format:
                    time.sleep(settle)
            left: set[Ref] = set()
            for _ in range(CAS_ATTEMPTS):
                refs, versions = self.read_ref_objects()
                todo = {r: s for r, s in refs.items() if r not in left}
                if not todo:
                    break
                root, version = self.read_root(fresh=True)
                tables = self.read_tables(root, None)
                new_root = RootTable(root.states, dict(root.domains), root.gc)
                changed: dict[str, DomainTable] = {}
                fold: list[Ref] = []
                for ref, sha in sorted(todo.items()):
                    done = self._fold(ref, sha, new_root, tables, changed)
                    if done is None:
                        left.add(ref)
                        result.left[ref.decode("utf-8", "replace")] = sha.decode()
                    else:  # added, or there already: the old object is to delete either way
                        fold.append(ref)
                for domain, t in changed.items():
                    new_root.domains[domain] = digest(t.encode())
                if new_root != root and not self.write_root(new_root, changed, version):
                    continue
                result.refs += len(fold)
                with ThreadPoolExecutor(8) as pool:
                    list(pool.map(self._delete_ref, [self._key(r.decode()) for r in fold], [versions[r] for r in fold]))
            if result.old_format == 0 and self.read_root(fresh=True)[1] is None:
                self._put_ref(self._key(ROOT_KEY), RootTable().encode(), None)
        return result

    @staticmethod
    def _fold(ref: Ref, sha: ObjectID, root: RootTable, tables: dict[str, DomainTable],
              changed: dict[str, DomainTable]) -> bool | None:
        """Put a format-1 ref into the tables: True when added, False when there already, None on a conflict."""
        try:
            text = ref.decode("ascii")
            if len(sha) != 40 or not all(c in b"0123456789abcdef" for c in sha):
                return None
            if text == "refs/cas/states":
                if root.states not in (None, sha):
                    return None
                added = root.states is None
                root.states = sha
                return added
            if text.startswith("refs/cas/domains/"):
                domain, mid = check_domain(text[len("refs/cas/domains/"):]), None
            elif text.startswith("refs/cas/models/"):
                d, _, m = text[len("refs/cas/models/"):].partition("/")
                domain, mid = check_domain(d), check_model_id(m)
            else:
                return None
        except (UnicodeDecodeError, InvalidIdError):
            return None
        if domain not in changed:
            changed[domain] = editable_table(root, tables, domain)
        table = changed[domain]
        now = table.history if mid is None else table.models.get(mid)
        if now is not None:
            return False if now == sha else None
        if mid is None:
            table.history = sha
        else:
            table.models[mid] = sha
        return True
