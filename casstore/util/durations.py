"""Durations as users write them (``90s``, ``12h``, ``2.weeks.ago``, ``never``) and as the API takes them.

gc's grace period and wait, and a bucket's settle time, are read with these.
"""

from __future__ import annotations

import math
import re

from ..errors import InvalidDurationError

_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600,
          "d": 86400, "day": 86400, "w": 7 * 86400, "week": 7 * 86400}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)[ .]?([a-z]*?)s?(?:[ .]ago)?")


def check_duration(value: object, what: str = "grace period") -> float:
    """``value`` as seconds, if it is a number >= 0 (``math.inf`` allowed: forever).

    Raises:
        InvalidDurationError: NaN, negative, or not a number.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidDurationError(what, value, "must be a number of seconds")
    if math.isnan(value):
        raise InvalidDurationError(what, value, "must be a number of seconds, not NaN")
    if value < 0:
        raise InvalidDurationError(what, value, "must not be negative")
    return float(value)


def parse_duration(text: str, what: str = "grace period") -> float:
    """Seconds from ``3600``, ``90s``, ``30m``, ``12h``, ``3d``, ``2w`` (also git's
    ``2.weeks.ago``), ``now`` (0) or ``never`` (infinite).

    Raises:
        InvalidDurationError: anything else, NaN and negative values included.
    """
    t = text.strip().lower()
    if t == "now":
        return 0.0
    if t in ("never", "inf", "infinity"):
        return math.inf
    if t in ("nan", "+nan", "-nan"):
        raise InvalidDurationError(what, text, "must be a number of seconds, not NaN")
    if t.startswith("-"):
        raise InvalidDurationError(what, text, "must not be negative")
    m = _DURATION.fullmatch(t)
    unit = m.group(2) if m else ""
    if m is None or unit not in _UNITS and unit != "":
        raise InvalidDurationError(what, text, "expected seconds or a duration like 90s, 30m, 12h, 3d, 2w, "
                                   "now or never")
    return check_duration(float(m.group(1)) * _UNITS.get(unit, 1), what)
