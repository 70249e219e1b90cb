"""skorch nets (kwarg ``model``): the module's parameters as safetensors, the wrapper's config as JSON.

A skorch ``NeuralNet`` is a scikit-learn estimator wrapping a torch module; joblib (what
the sklearn framework and modelstore use) would pickle it.  Instead this stores:

* ``model.safetensors`` + ``model.structure.json``: the initialised net's ``module_`` and
  ``criterion_`` state dicts, written as the pytorch framework writes one;
* ``model.skorch.json``: the net's ``get_params(deep=False)`` that are plain data
  (``lr``, ``max_epochs``, ``module__hidden`` ...), the classes among them by import name
  (``module``, ``criterion``, ``optimizer``, ``iterator_train``, ``iterator_valid``,
  ``dataset``), the names of those that are neither and so are not stored (a
  ``train_split=ValidSplit(5)``, callback objects, a module *instance*, tensors), and the
  classes a classifier inferred (``classes_inferred_``).

``load(domain, id, model=net)`` initialises ``net`` if needed and loads the state into it:
the way to get back everything that is not stored.  ``load`` alone rebuilds the net from
the config, but only from classes that are already imported: a hostile manifest must not
make the loader import a module, so the net's class must be a ``skorch.NeuralNet`` and
the module's a ``torch.nn.Module`` in a module the program imported, found by name.
Parameters that were not stored take their defaults (a warning names them).  The
optimizer's state is not stored: commit it beside the net (``optimizer=net.optimizer_``).
"""

from __future__ import annotations

import json
import math
import os
import sys
import warnings
from typing import Any, BinaryIO

from ..errors import CorruptObjectError, FrameworkError
from .base import Framework, Saved, class_name, instance_of, library_version, read_bytes, require
from .pytorch import load_state, save_state

FORMAT = "skorch"

#: class-valued parameters that are stored by name, and what each must be a subclass of
CLASS_PARAMS: dict[str, tuple[str, str]] = {
    "module": ("torch.nn", "Module"),
    "criterion": ("torch.nn", "Module"),
    "optimizer": ("torch.optim", "Optimizer"),
    "iterator_train": ("torch.utils.data", "DataLoader"),
    "iterator_valid": ("torch.utils.data", "DataLoader"),
    "dataset": ("torch.utils.data", "Dataset"),
}


def _is_plain(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False


def _imported_class(name: str, module: str, base_name: str) -> type:
    """The class called ``name`` if its module is imported already and it subclasses the base.

    Raises:
        FrameworkError: the module is not imported or has no such class.
        CorruptObjectError: it is not a class of the expected kind.
    """
    mod_name, _, qual = name.partition(":")
    if not qual:
        raise CorruptObjectError(name, "not a class name (module:qualname)")
    if mod_name not in sys.modules:  # never import here: importing runs the module's code
        raise FrameworkError(f"class {name} is not importable without importing {mod_name}: import it "
                             "first, or pass a net to load into: load(domain, id, model=net)")
    found: Any = sys.modules[mod_name]
    for part in qual.split("."):
        found = getattr(found, part, None)
    if not isinstance(found, type):
        raise FrameworkError(f"{mod_name} has no class {qual} (a class defined in a function cannot be "
                             "found by name): pass a net to load into: load(domain, id, model=net)")
    base = getattr(sys.modules.get(module), base_name, None)
    if not isinstance(base, type) or not issubclass(found, base):
        raise CorruptObjectError(name, f"not a {module}.{base_name} class")
    return found


def _class_ref(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


class SkorchFramework(Framework):
    name = "skorch"
    kwargs = ("model",)
    # a skorch net is a scikit-learn estimator (sklearn would pickle it) wrapping a torch module
    overrides = ("sklearn", "pytorch")
    extra = "skorch"
    data_formats = (FORMAT,)

    def matches(self, obj: Any) -> bool:
        return instance_of(obj, "skorch", "NeuralNet")

    def save(self, obj: Any, kwarg: str, directory: str) -> Saved:
        if not getattr(obj, "initialized_", False):
            raise FrameworkError(f"{kwarg}: the skorch net is not initialised: fit it or call initialize() first")
        params: dict[str, Any] = {}
        classes: dict[str, str] = {}
        not_stored: list[str] = []
        for key, value in obj.get_params(deep=False).items():
            if key.startswith("_"):
                continue  # skorch's bookkeeping (_params_to_validate), not a parameter
            if isinstance(value, type) and key in CLASS_PARAMS:
                classes[key] = _class_ref(value)
            elif _is_plain(value):
                params[key] = value
            else:
                not_stored.append(key)
        inferred: Any = getattr(obj, "classes_inferred_", None)
        config = {"params": params, "classes": classes, "not_stored": sorted(not_stored),
                  "classes_inferred": inferred.tolist() if hasattr(inferred, "tolist") else None}
        if not _is_plain(config["classes_inferred"]):
            raise FrameworkError(f"{kwarg}: the classes the net inferred are not plain data")
        state = {"module": obj.module_.state_dict(), "criterion": obj.criterion_.state_dict()}
        files = save_state(state, kwarg, directory)
        path = os.path.join(directory, f"{kwarg}.skorch.json")
        with open(path, "w") as f:
            json.dump(config, f, indent=1)
        files[f"{kwarg}.skorch.json"] = path
        lib = library_version("skorch")
        return Saved(FORMAT, files, lib, class_name(obj))

    def _read(self, paths: dict[str, str | BinaryIO], format: str) -> tuple[dict[str, Any], Any]:
        if format != FORMAT:
            raise CorruptObjectError(format, "not a skorch format this casstore loads")
        names = [n for n in paths if n.endswith(".skorch.json")]
        if len(names) != 1:
            raise CorruptObjectError(", ".join(paths), "expected one .skorch.json file")
        try:
            config = json.loads(read_bytes(paths[names[0]]))
            if not (isinstance(config, dict) and isinstance(config.get("params"), dict)
                    and isinstance(config.get("classes"), dict) and isinstance(config.get("not_stored"), list)):
                raise ValueError("params, classes or not_stored missing")
        except ValueError as e:
            raise CorruptObjectError(names[0], f"bad skorch config: {e}") from None
        state = load_state({n: p for n, p in paths.items() if n != names[0]})
        if not (isinstance(state, dict) and set(state) == {"module", "criterion"}):
            raise CorruptObjectError(names[0], "state is not {module, criterion}")
        return config, state

    def _fill(self, net: Any, config: dict[str, Any], state: Any) -> Any:
        if not getattr(net, "initialized_", False):
            net.initialize()
        net.module_.load_state_dict(state["module"])
        net.criterion_.load_state_dict(state["criterion"])
        if config.get("classes_inferred") is not None:
            import numpy as np

            net.classes_inferred_ = np.asarray(config["classes_inferred"])
        return net

    def load(self, paths: dict[str, str | BinaryIO], cls: str, format: str) -> Any:
        require("skorch", self.extra)
        require("torch", self.extra)
        config, state = self._read(paths, format)
        mod, _, qual = cls.rpartition(".")
        net_cls = _imported_class(f"{mod}:{qual}", "skorch", "NeuralNet")
        if "module" in config["not_stored"]:
            raise FrameworkError(f"the net was given its module as an instance, which is not stored as data: "
                                 f"pass a net to load into: load(domain, id, model={qual}(MyModule(...)))")
        kwargs = dict(config["params"])
        for key, ref in config["classes"].items():
            if key not in CLASS_PARAMS or not isinstance(ref, str):
                raise CorruptObjectError(f"{key}={ref!r}", "not a class parameter this casstore stores")
            kwargs[key] = _imported_class(ref, *CLASS_PARAMS[key])
        if config["not_stored"]:
            missing = ", ".join(map(str, config["not_stored"]))
            warnings.warn(f"casstore: the rebuilt {qual} takes defaults for {missing} (not stored: not "
                          "plain data); load into a net of yours to keep them",
                          stacklevel=4)
        try:
            net = net_cls(**kwargs)
        except TypeError as e:  # another skorch version, or a damaged config
            raise FrameworkError(f"the stored parameters do not build a {cls}: {e}; pass a net to load "
                                 "into: load(domain, id, model=net)") from None
        return self._fill(net, config, state)

    def load_into(self, paths: dict[str, str | BinaryIO], cls: str, format: str, target: Any) -> Any:
        if not self.matches(target):
            raise FrameworkError(f"cannot load a skorch net into a {class_name(target)}")
        config, state = self._read(paths, format)
        return self._fill(target, config, state)
