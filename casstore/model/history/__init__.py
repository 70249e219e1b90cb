"""Domain history: one commit per event on ``refs/cas/domains/<domain>``.

Each history commit's tree is the domain index *after* the event::

    models/<d>/.../<model_id>   gitlink (mode 160000) -> the model's commit
    states/<state>/<model_id>   gitlink -> the model's commit

``models`` is a tree of leaves that split past a bound, by the hex digits of
the ID's key (indextree.py; docs/format.md, "Index layout"): an event rewrites
one root-to-leaf path, not the index.  The flat and 256-shard layouts older
versions wrote are read too, and converted by the next write.

Gitlinks are not followed by git's reachability walk, so the history never keeps a
deleted model's data alive; the model refs do that.  The commit message is
human-readable (``git log refs/cas/domains/x`` works) and ends with trailers that
casstore parses::

    commit v1

    Cas-Event: commit
    Cas-Model: v1
    Cas-Commit: <hex>
    Cas-State: production      (state events only)

Appending is a compare-and-swap loop on the ref, so concurrent writers never lose
each other's events.

The model refs are the truth; the history records them.  casstore's writers
change a model ref and append its event while holding the domain's lock (see
locking.py), so between two writers the history at its head lists exactly the
models the refs hold.  A writer killed between the two steps (SIGKILL, power
loss) leaves a ref without its event, or an event-less deletion; ``reconcile``,
run by the next writer of the domain under the same lock (and by
``cas fsck --repair``), records what is missing.

The package's modules, each one concern: ``index`` (the domain index: read,
checked, written), ``events`` (event kinds, ``Event``, messages and trailers),
``log`` (walking the history, the ``Cas-Newest`` bound), ``append`` (appending
events: commit, delete, layout) and ``recovery`` (crash recovery: ``reconcile``).  Every name
is re-exported here: import from ``casstore.model.history``.
"""

from __future__ import annotations

from ...objects.trailers import parse_trailers as parse_trailers
from ..indextree import GITLINK as GITLINK
from ..indextree import TREE as TREE
from ..indextree import ShardedModels as ShardedModels
from ..indextree import key_of as key_of
from ..indextree import shard_of as shard_of
from .append import append_event as append_event
from .append import convert_layout as convert_layout
from .append import record_delete as record_delete
from .events import EVENTS as EVENTS
from .events import QUIET_EVENTS as QUIET_EVENTS
from .events import Event as Event
from .events import event_message as event_message
from .events import parse_event as parse_event
from .index import DomainIndex as DomainIndex
from .index import check_index as check_index
from .index import read_index as read_index
from .index import read_states as read_states
from .log import NEWEST as NEWEST
from .log import events_since as events_since
from .log import has_newest as has_newest
from .log import iter_log as iter_log
from .log import newest_created as newest_created
from .log import walk_log as walk_log
from .recovery import model_refs as model_refs
from .recovery import reconcile as reconcile

#: the name ``event_message`` had before the package (benchmarks/bench_serve.py imports it)
_message = event_message
