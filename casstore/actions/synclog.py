"""What push and pull report: their counts and changes to the ``casstore`` logger, and a
ModelStateLostWarning for each model in a state that they removed (issue 21, item 3)."""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING

from ..errors import ModelStateLostWarning

if TYPE_CHECKING:  # not imported at run time: opening a store does not load the remote code
    from ..remote.sync import SyncResult

log = logging.getLogger("casstore")


def log_sync(verb: str, result: SyncResult) -> None:
    """Tell the ``casstore`` logger what a push or pull did, and warn (ModelStateLostWarning)
    of each model in a state it removed."""
    log.info("%s %s: %d models added, %d deleted, %d replaced; %d objects, %d bytes", verb, result.url,
             len(result.models_added), len(result.models_deleted), len(result.models_replaced), result.objects,
             result.bytes)
    for c in result.changes:
        log.info("%s %s: %s %s (%s -> %s)", verb, result.url, c.change, c.model, c.old, c.new)
    for c in result.states_lost:
        # loud: a model someone had put in a state is gone from it (issue 21, item 3)
        domain, model_id = c.model.split("/", 1)
        where = f"on {result.url}" if verb == "push" else "here"
        what = (f"was deleted by this {verb}" if c.change == "deleted"
                else f"was replaced by {(c.new or '')[:10]}")
        how = (f"; `cas restore {domain} {model_id} --states` (store.restore_model(..., states=True)) brings it back"
               if verb == "pull" and c.change == "deleted" else "")
        warnings.warn(f"{c.model} ({(c.old or '')[:10]}) held state {', '.join(c.states)} {where} and {what}"
                      f"{how}", ModelStateLostWarning, stacklevel=3)  # the caller of Store.push/pull
    for m in result.conflicts:
        log.warning("%s %s: conflict: %s is a different model on each side", verb, result.url, m)
    for d in result.diverged:
        log.warning("%s %s: diverged: %s", verb, result.url, d)
    for ref, reason in result.rejected.items():
        log.warning("%s %s: rejected by the remote: %s: %s", verb, result.url, ref, reason)
