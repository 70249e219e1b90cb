"""gc's defaults, apart from ops/gc.py: the Store's signatures name them, and importing gc
itself (its graph walk, pack rewriting, adoption) would cost every ``cas`` process its start-up."""

from __future__ import annotations

#: How long an object no ref reaches is kept before gc removes it (seconds): two weeks.
DEFAULT_GRACE = 14 * 24 * 3600
#: How long gc waits for writers in progress before giving up (seconds).
DEFAULT_WAIT = 300.0
