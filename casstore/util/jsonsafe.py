"""Any msgpack value as JSON can hold it: ``cas ... --json`` and ``cas serve``'s API share this mapping.

A manifest's ``extra_metadata`` is msgpack: it may hold bytes, NaN, non-string
keys, msgpack Timestamps and extension types, none of which JSON has.
"""

from __future__ import annotations

import json
import math
from typing import Any


def to_json(o: Any) -> Any:
    """``o`` with every value JSON can hold as itself, and the rest mapped to strings.

    - NaN, Infinity, -Infinity (floats) -> the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``
    - bytes values -> lowercase hex (as digests and object ids are shown)
    - bytes keys -> the text when they are UTF-8, else hex; other non-string keys
      -> their JSON text (``1`` -> ``"1"``, ``None`` -> ``"null"``, ``True`` -> ``"true"``)
    - tuples and lists -> arrays; anything else -> ``str(o)``

    Two keys that map to the same string keep the last value (as msgpack maps
    with such keys are rare and JSON objects cannot repeat keys).
    """
    if o is None or isinstance(o, (bool, int, str)):
        return o
    if isinstance(o, float):
        if math.isnan(o):
            return "NaN"
        if math.isinf(o):
            return "Infinity" if o > 0 else "-Infinity"
        return o
    if isinstance(o, (bytes, bytearray, memoryview)):
        return bytes(o).hex()
    if isinstance(o, dict):
        return {_json_key(k): to_json(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [to_json(v) for v in o]
    return str(o)


def _json_key(k: Any) -> str:
    if isinstance(k, str):
        return k
    if isinstance(k, (bytes, bytearray, memoryview)):
        try:
            return bytes(k).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(k).hex()
    converted = to_json(k)
    return converted if isinstance(converted, str) else json.dumps(converted)
