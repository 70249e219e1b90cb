"""PyTorch modules and optimizers (kwargs ``model``, ``optimizer``), as safetensors.

What is stored is the object's ``state_dict()``: its tensors, tensor by tensor, in a
safetensors file (``<kwarg>.safetensors``: a JSON header and raw little-endian
tensor data, nothing executable), and the dict's shape around them (nested dicts,
lists, numbers and strings: an optimizer's step counts and hyper-parameters) in
``<kwarg>.structure.json``.  Loading these runs no code from the store.

``load`` returns the state dict; ``load(domain, id, model=net, optimizer=opt)``
loads it into the objects given (``load_state_dict``) and returns them.  A whole
module can be pickled on explicit request only: ``model=Pickled(net)``, stored with
``torch.save`` and loaded with ``torch.load(weights_only=False)``, which executes
code from the store and is refused under ``allow_pickle=False``.
"""

from __future__ import annotations

import io
import json
import os
from collections import OrderedDict
from typing import Any, BinaryIO

from ..errors import CorruptObjectError, FrameworkError
from .base import Framework, Saved, class_name, instance_of, library_version, read_bytes, require

FORMAT = "safetensors"
PICKLE_FORMAT = "torch-pickle"


class Pickled:
    """Ask for a whole module to be pickled (``model=Pickled(net)``), not its state dict.

    Loading such an entry executes code from the store; prefer the default.
    """

    def __init__(self, module: Any) -> None:
        self.module = module


def _is_tensor(obj: Any) -> bool:
    return instance_of(obj, "torch", "Tensor")


def _split(obj: Any, path: str, tensors: dict[str, Any], where: str) -> Any:
    """The JSON skeleton of ``obj``; its tensors go into ``tensors`` by name."""
    if _is_tensor(obj):
        key = path or "tensor"
        n = 1
        while key in tensors:  # two paths that join to the same dotted name
            n += 1
            key = f"{path}#{n}"
        t = obj.detach().cpu().contiguous()
        tensors[key] = t
        return {"t": key}
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise FrameworkError(f"{where}: state dict key {k!r} is not a str or int")
            items.append([k, _split(v, f"{path}.{k}" if path else str(k), tensors, where)])
        return {"d": items}
    if isinstance(obj, (list, tuple)):
        parts = [_split(v, f"{path}.{i}" if path else str(i), tensors, where) for i, v in enumerate(obj)]
        return {"u" if isinstance(obj, tuple) else "l": parts}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return {"v": obj}
    raise FrameworkError(f"{where}: state dict value at {path!r} is a {class_name(obj)}, "
                         "which safetensors cannot store (use Pickled(...) to pickle the whole object)")


def _join(node: Any, tensors: dict[str, Any], used: set[str]) -> Any:
    """Rebuild what :func:`_split` took apart; raises ValueError on a malformed skeleton."""
    if not isinstance(node, dict) or len(node) != 1:
        raise ValueError(f"bad node {node!r:.60}")
    ((tag, value),) = node.items()
    if tag == "t":
        if not isinstance(value, str) or value not in tensors:
            raise ValueError(f"tensor {value!r:.60} is not in the safetensors file")
        used.add(value)
        return tensors[value]
    if tag == "d":
        if not isinstance(value, list):
            raise ValueError("dict node is not a list")
        out: dict[Any, Any] = OrderedDict()
        for item in value:
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], (str, int))):
                raise ValueError(f"bad dict item {item!r:.60}")
            out[item[0]] = _join(item[1], tensors, used)
        return out
    if tag in ("l", "u"):
        if not isinstance(value, list):
            raise ValueError("list node is not a list")
        parts = [_join(v, tensors, used) for v in value]
        return tuple(parts) if tag == "u" else parts
    if tag == "v" and (value is None or isinstance(value, (bool, int, float, str))):
        return value
    raise ValueError(f"bad node {node!r:.60}")


def save_state(state: Any, kwarg: str, directory: str) -> dict[str, str]:
    """Write a state dict (or any nest of dicts, lists and tensors) as safetensors + JSON.

    Returns the files written (``<kwarg>.safetensors``, ``<kwarg>.structure.json``:
    name in the store -> path); :func:`load_state` reads them back.  Shared by the
    frameworks that store torch state (lightning, skorch).

    Raises:
        FrameworkError: a value that is none of tensor, dict, list, tuple, str,
            number, bool or None (naming its path in the dict).
    """
    save_file = require("safetensors.torch", "torch").save_file
    tensors: dict[str, Any] = {}
    skeleton = _split(state, "", tensors, kwarg)
    meta = getattr(state, "_metadata", None)  # per-submodule versions load_state_dict reads
    doc = {"state": skeleton, "metadata": {str(k): v for k, v in meta.items()} if meta else None}
    # tensors sharing storage (tied weights) are stored once each: safetensors refuses aliases
    seen: set[tuple[int, int]] = set()
    for key, t in tensors.items():
        if t.numel():
            span = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
            if span in seen or t.untyped_storage().nbytes() != t.numel() * t.element_size():
                tensors[key] = t.clone()
            seen.add(span)
    weights = os.path.join(directory, f"{kwarg}.safetensors")
    structure = os.path.join(directory, f"{kwarg}.structure.json")
    save_file(tensors, weights)
    with open(structure, "w") as f:
        json.dump(doc, f)
    return {f"{kwarg}.safetensors": weights, f"{kwarg}.structure.json": structure}


def load_state(paths: dict[str, str | BinaryIO]) -> Any:
    """Read back what :func:`save_state` wrote: the one ``.safetensors`` and the one
    ``.structure.json`` file among ``paths``.  Runs no code from the store.

    Raises:
        CorruptObjectError: the files are missing or do not fit together.
    """
    require("torch", "torch")
    load_tensors = require("safetensors.torch", "torch").load

    weights = [n for n in paths if n.endswith(".safetensors")]
    structure = [n for n in paths if n.endswith(".structure.json")]
    if len(weights) != 1 or len(structure) != 1:
        raise CorruptObjectError(", ".join(paths), "expected one .safetensors and one .structure.json file")
    tensors = load_tensors(read_bytes(paths[weights[0]]))
    try:
        doc = json.loads(read_bytes(paths[structure[0]]))
        if not isinstance(doc, dict):
            raise ValueError("not an object")
        used: set[str] = set()
        state = _join(doc.get("state"), tensors, used)
        meta = doc.get("metadata")
        if isinstance(state, OrderedDict) and isinstance(meta, dict):
            state._metadata = OrderedDict(meta)  # type: ignore[attr-defined]
    except (ValueError, RecursionError) as e:
        raise CorruptObjectError(structure[0], f"bad state dict structure: {e}") from None
    if used != set(tensors):
        raise CorruptObjectError(weights[0], f"{len(set(tensors) - used)} tensors the structure does not use")
    return state


class PyTorchFramework(Framework):
    name = "pytorch"
    kwargs = ("model", "optimizer")
    extra = "torch"
    data_formats = (FORMAT,)
    safe_alternative = "commit the module itself (its state dict is stored as safetensors), not Pickled(module)"

    def matches(self, obj: Any) -> bool:
        if isinstance(obj, Pickled):
            return instance_of(obj.module, "torch.nn", "Module")
        return instance_of(obj, "torch.nn", "Module") or instance_of(obj, "torch.optim", "Optimizer")

    def save(self, obj: Any, kwarg: str, directory: str) -> Saved:
        import torch

        if isinstance(obj, Pickled):
            path = os.path.join(directory, f"{kwarg}.pt")
            torch.save(obj.module, path)
            return Saved(PICKLE_FORMAT, {f"{kwarg}.pt": path}, library_version("torch"), class_name(obj.module))
        return Saved(FORMAT, save_state(obj.state_dict(), kwarg, directory), library_version("torch"),
                     class_name(obj))

    def _state(self, paths: dict[str, str | BinaryIO], format: str) -> Any:
        if format != FORMAT:
            raise CorruptObjectError(format, "not a pytorch format this casstore loads")
        return load_state(paths)

    def load(self, paths: dict[str, str | BinaryIO], cls: str, format: str) -> Any:
        if format == PICKLE_FORMAT:
            torch = require("torch", self.extra)
            (src,) = paths.values()
            # the caller checked allow_pickle: this entry executes code by design
            return torch.load(src if isinstance(src, str) else io.BytesIO(src.read()), weights_only=False)
        return self._state(paths, format)

    def load_into(self, paths: dict[str, str | BinaryIO], cls: str, format: str, target: Any) -> Any:
        if not self.matches(target) or isinstance(target, Pickled):
            raise FrameworkError(f"cannot load a pytorch state dict into a {class_name(target)}")
        if format == PICKLE_FORMAT:
            raise FrameworkError("a pickled module loads as itself: call load() without an object to load into")
        target.load_state_dict(self._state(paths, format))
        return target
