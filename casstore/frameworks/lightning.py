"""PyTorch Lightning (kwargs ``trainer``, ``model``), as safetensors and JSON: no pickles.

``model=`` takes a ``LightningModule`` (of ``lightning.pytorch`` or of the older
``pytorch_lightning`` package).  Its ``state_dict()`` is stored as the pytorch
framework stores one (``model.safetensors`` + ``model.structure.json``), and its
``hparams`` as plain JSON (``model.hparams.json``).  ``load`` gives a dict shaped like a
Lightning checkpoint, ``{"state_dict": ..., "hyper_parameters": ...}``; passing a module
loads the state into it, passing the module's class builds ``cls(**hyper_parameters)``
first: ``load(domain, id, model=MyModule)``.

``trainer=`` takes a fitted ``Trainer``.  What is stored is the checkpoint it would write
(``trainer.save_checkpoint``: module state, optimizer and scheduler states, loop
progress, callbacks' state, hyper-parameters), split into tensors (safetensors) and the
structure around them (JSON) like a state dict, so a checkpoint holding anything else
(an arbitrary object in a callback's state) is refused.  ``load`` gives the checkpoint
dict back; ``torch.save`` it and pass the file to ``trainer.fit(model, ckpt_path=...)``
to resume.  Nothing here calls ``torch.load`` on data from the store.
"""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any, BinaryIO

from ..errors import CorruptObjectError, FrameworkError
from .base import Framework, Saved, class_name, instance_of, library_version, read_bytes
from .pytorch import load_state, save_state

MODULE_FORMAT = "lightning-module"
CHECKPOINT_FORMAT = "lightning-checkpoint"
#: the two packages Lightning ships under; their classes are distinct
PACKAGES = ("lightning.pytorch", "pytorch_lightning")


def _package_of(obj: Any, name: str) -> str | None:
    for pkg in PACKAGES:
        if instance_of(obj, pkg, name):
            return pkg
    return None


def _plain(value: Any, path: str, kwarg: str) -> Any:
    """``value`` as JSON data (tuples become lists), or FrameworkError naming its path."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FrameworkError(f"{kwarg}: hyper-parameter {path!r} is {value}, which JSON cannot hold")
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{path}.{i}", kwarg) for i, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _plain(v, f"{path}.{k}", kwarg) for k, v in value.items()}
    raise FrameworkError(f"{kwarg}: hyper-parameter {path!r} is a {class_name(value)}, not plain data "
                         "(JSON); leave it out with save_hyperparameters(ignore=[...])")


def _hparams_file(paths: dict[str, str | BinaryIO]) -> str:
    names = [n for n in paths if n.endswith(".hparams.json")]
    if len(names) != 1:
        raise CorruptObjectError(", ".join(paths), "expected one .hparams.json file")
    return names[0]


class LightningFramework(Framework):
    name = "lightning"
    kwargs = ("trainer", "model")
    # a LightningModule is a torch.nn.Module: it keeps its hyper-parameters here
    overrides = ("pytorch",)
    extra = "lightning"
    data_formats = (MODULE_FORMAT, CHECKPOINT_FORMAT)

    def matches(self, obj: Any) -> bool:
        return _package_of(obj, "LightningModule") is not None or _package_of(obj, "Trainer") is not None

    def save(self, obj: Any, kwarg: str, directory: str) -> Saved:
        pkg = _package_of(obj, "LightningModule")
        if pkg is not None:
            files = save_state(obj.state_dict(), kwarg, directory)
            hparams = {k: _plain(v, k, kwarg) for k, v in dict(obj.hparams).items()}
            path = os.path.join(directory, f"{kwarg}.hparams.json")
            with open(path, "w") as f:
                json.dump({"hyper_parameters": hparams}, f, indent=1)
            files[f"{kwarg}.hparams.json"] = path
            return Saved(MODULE_FORMAT, files, library_version(pkg), class_name(obj))
        return Saved(CHECKPOINT_FORMAT, save_state(self._checkpoint(obj, kwarg, directory), kwarg, directory),
                     library_version(_package_of(obj, "Trainer") or PACKAGES[0]), class_name(obj))

    def _checkpoint(self, trainer: Any, kwarg: str, directory: str) -> Any:
        """The checkpoint dict ``trainer.save_checkpoint`` writes.

        Lightning's public way to build it writes a torch pickle: it goes to a scratch
        file of ours and is read back at once with ``weights_only=True`` (torch's
        restricted unpickler), which refuses anything but tensors and plain containers.
        """
        import torch

        scratch = os.path.join(directory, f".{kwarg}.scratch.ckpt")  # never listed in the entry's files
        try:
            trainer.save_checkpoint(scratch)
            return torch.load(scratch, weights_only=True, map_location="cpu")
        except Exception as e:
            raise FrameworkError(f"{kwarg}: the trainer's checkpoint cannot be stored as data: "
                                 f"{type(e).__name__}: {e}") from None
        finally:
            if os.path.exists(scratch):
                os.unlink(scratch)

    def _module(self, paths: dict[str, str | BinaryIO]) -> dict[str, Any]:
        hp_name = _hparams_file(paths)
        try:
            doc = json.loads(read_bytes(paths[hp_name]))
            hparams = doc["hyper_parameters"]
            if not isinstance(hparams, dict):
                raise ValueError("hyper_parameters is not an object")
        except (ValueError, KeyError, TypeError) as e:
            raise CorruptObjectError(hp_name, f"bad hyper-parameters: {e}") from None
        state = load_state({n: p for n, p in paths.items() if n != hp_name})
        return {"state_dict": state, "hyper_parameters": hparams}

    def load(self, paths: dict[str, str | BinaryIO], cls: str, format: str) -> Any:
        if format == MODULE_FORMAT:
            return self._module(paths)
        if format == CHECKPOINT_FORMAT:
            return load_state(paths)
        raise CorruptObjectError(format, "not a lightning format this casstore loads")

    def load_into(self, paths: dict[str, str | BinaryIO], cls: str, format: str, target: Any) -> Any:
        """``target``: a LightningModule to fill, or its class (built from the stored hyper-parameters)."""
        if format != MODULE_FORMAT:
            raise FrameworkError(f"a {format} entry loads as a checkpoint dict: call load() without an "
                                 "object to load into, then trainer.fit(model, ckpt_path=...)")
        stored = self._module(paths)
        if isinstance(target, type):
            bases = [sys.modules[p].LightningModule for p in PACKAGES if p in sys.modules]
            if not any(issubclass(target, b) for b in bases):
                raise FrameworkError(f"cannot build a {target.__qualname__}: not a LightningModule class")
            module = target(**stored["hyper_parameters"])
            module.load_state_dict(stored["state_dict"])
            return module.eval()  # built for inference, as load_from_checkpoint returns it
        if _package_of(target, "LightningModule") is None:
            raise FrameworkError(f"cannot load a lightning module's state into a {class_name(target)}")
        target.load_state_dict(stored["state_dict"])
        return target
