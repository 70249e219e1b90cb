"""What ``Store.restore_model`` does around model/deletion.py's ``restore``: putting the model
back in the states it held (those that still exist; a warning names each that does not),
logging it, and the info dict it returns."""

from __future__ import annotations

import logging
import warnings
from typing import Any

from ..model.deletion import restore
from ..model.stateops import set_state
from ..model.states import list_states
from ..objects.repository import Repository
from .info import info_dict

log = logging.getLogger("casstore")


def restore_model(repo: Repository, domain: str, model_id: str, commit: str | None,  # noqa: PLR0913 - Store.restore_model's options
                  target: str, ident: bytes, *, states: bool) -> dict[str, Any]:
    """Commit the deleted model again as ``target``; the caller holds the store lock.

    Raises:
        ModelExistsException: ``target`` is taken now.  RestoreError: nothing to restore.
    """
    manifest, new, gone, held = restore(repo, domain, model_id, commit, target, ident, states=states)
    restored = []
    existing = set(list_states(repo.odb, repo.refs))
    for state in held:
        if state in existing:
            set_state(repo, domain, target, state)
            restored.append(state)
        else:
            warnings.warn(f"casstore: {domain}/{model_id} was in state {state!r}, which no longer exists: "
                          f"not restored", stacklevel=3)
    log.info("restored %s/%s (%s) from %s", domain, target, new.decode()[:10], gone.commit.decode()[:10])
    return {**info_dict(manifest, new), "restored_from": gone.commit.decode(), "states": restored}
