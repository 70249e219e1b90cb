"""``extra_metadata``: checked and normalised to plain msgpack values before a commit."""

from __future__ import annotations

import sys
from typing import Any

import msgpack

__all__ = ["plain_metadata"]


def _numpy_value(o: Any) -> Any:
    """msgpack's fallback: a numpy scalar (``np.int64``, ``np.bool_``, ``np.float32``) or an
    array of one element, as the Python bool, int, float or str it holds.

    numpy is looked up, never imported: an object of its types means it is loaded.
    ``np.float64`` and ``np.str_`` subclass Python's types and never get here.
    """
    np = sys.modules.get("numpy")
    if np is not None and isinstance(o, (np.generic, np.ndarray)):
        if isinstance(o, np.ndarray) and o.size != 1:
            raise TypeError(f"a numpy array of shape {o.shape} (only one element is converted: "
                            "pass a list, e.g. arr.tolist())")
        value = o.item()
        if value is None or isinstance(value, (bool, int, float, str, bytes)):
            return value
        raise TypeError(f"a numpy {o.dtype} value, {value!r}, has no msgpack form")
    raise TypeError(f"can not serialize {type(o).__name__!r} object")


def plain_metadata(meta: Any) -> dict[Any, Any] | None:
    """``meta`` as it is stored and returned: a dict of msgpack values (tuples become
    lists; numpy scalars and one-element arrays become Python numbers and bools).

    Raises:
        TypeError: not a dict, or a value msgpack cannot hold (named).
    """
    if meta is None:
        return None
    if not isinstance(meta, dict):
        raise TypeError(f"extra_metadata must be a dict, not {type(meta).__name__}")
    try:
        packed = msgpack.packb(meta, use_bin_type=True, default=_numpy_value)
        out: dict[Any, Any] = msgpack.unpackb(packed, raw=False, strict_map_key=False)
    except (TypeError, ValueError, OverflowError) as e:
        raise TypeError(f"extra_metadata is not msgpack-serialisable: {e}") from None
    return out
