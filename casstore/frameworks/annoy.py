"""Annoy indexes (kwargs ``model``, ``metric``, ``num_trees``, as modelstore), as ``.ann`` files.

An ``.ann`` file is annoy's node array; annoy cannot load it without the vector
length ``f`` and the metric, which the index does not report, so
``commit_models(domain, model=index, metric="angular", num_trees=10)`` takes the
metric (required) and ``model.ann.json`` records ``f``, the metric, the number of
trees and of items beside it.  Loading runs no code: annoy memory-maps the node
array.  annoy does not bounds-check the nodes of a file, so a crafted ``.ann``
from a hostile store can crash the process on a query (out-of-bounds reads); it
cannot make annoy run code.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, BinaryIO

from ..errors import CorruptObjectError
from .base import Framework, Saved, class_name, instance_of, library_version, read_bytes, require, spool

FORMAT = "annoy"
METRICS = ("angular", "euclidean", "manhattan", "hamming", "dot")


class Annoy:
    """An annoy index with the parameters needed to load it (``model=Annoy(index, "angular")``).

    ``commit_models(model=index, metric=..., num_trees=...)`` builds one; ``num_trees``
    is accepted as modelstore does, and checked against the index's own count.
    """

    def __init__(self, index: Any, metric: str, num_trees: int | None = None) -> None:
        if metric not in METRICS:
            raise TypeError(f"annoy: metric={metric!r} is not one of {', '.join(METRICS)}")
        built = index.get_n_trees()
        if num_trees is not None and num_trees != built:
            raise TypeError(f"annoy: num_trees={num_trees!r} but the index was built with {built} trees")
        self.index = index
        self.metric = metric
        self.num_trees = built


class AnnoyFramework(Framework):
    name = "annoy"
    kwargs = ("model",)
    params = ("metric", "num_trees")
    extra = "annoy"
    data_formats = (FORMAT,)
    file_name = "model.ann"
    params_name = "model.ann.json"

    def bundle(self, models: dict[str, Any]) -> dict[str, Any]:
        given = [p for p in self.params if p in models]
        model = models.get("model")
        if not instance_of(model, "annoy", "AnnoyIndex"):
            if given:
                raise TypeError(f"{'=, '.join(given)}= describe an annoy index, but model= is "
                                f"{type(model).__module__}.{type(model).__qualname__}")
            return models
        if "metric" not in models:
            raise TypeError(f"annoy: commit_models(model=index, metric=...) needs the metric "
                            f"({', '.join(METRICS)}): annoy cannot load an index without it")
        rest = {k: v for k, v in models.items() if k not in self.params}
        rest["model"] = Annoy(model, models["metric"], models.get("num_trees"))
        return rest

    def matches(self, obj: Any) -> bool:
        return isinstance(obj, Annoy)

    def save(self, obj: Any, kwarg: str, directory: str) -> Saved:
        path = os.path.join(directory, self.file_name)
        # annoy's save() then memory-maps the file it wrote into the caller's index; the mapping
        # outlives the scratch directory, so the index keeps working after the commit
        obj.index.save(path)
        params = os.path.join(directory, self.params_name)
        with open(params, "w", encoding="utf-8") as f:
            json.dump({"f": obj.index.f, "metric": obj.metric, "num_trees": obj.num_trees,
                       "n_items": obj.index.get_n_items()}, f)
        files = {self.file_name: path, self.params_name: params}
        return Saved(FORMAT, files, library_version("annoy"), class_name(obj.index))

    def load(self, paths: dict[str, str | BinaryIO], cls: str, format: str) -> Any:
        if format != FORMAT:
            raise CorruptObjectError(format, "not an annoy format this casstore loads")
        annoy = require("annoy", self.extra)
        try:
            p = json.loads(read_bytes(paths[self.params_name]))
            f, metric, n_items = p["f"], p["metric"], p["n_items"]
        except (ValueError, KeyError, TypeError) as e:
            raise CorruptObjectError(self.params_name, f"not annoy parameters: {e}") from None
        if type(f) is not int or not 0 < f <= 1 << 20 or metric not in METRICS or type(n_items) is not int:
            raise CorruptObjectError(self.params_name, f"f={f!r}, metric={metric!r}, n_items={n_items!r}")
        index = annoy.AnnoyIndex(f, metric)
        # annoy loads from a path only; it memory-maps the file, and the mapping outlives the
        # file's name, so the private copy can be removed right away
        with tempfile.TemporaryDirectory(prefix="casstore-annoy-") as d:
            path = os.path.join(d, self.file_name)
            spool(paths[self.file_name], path)
            try:
                index.load(path)
            except OSError as e:
                raise CorruptObjectError(self.file_name, f"annoy cannot load it: {e}") from None
        if index.get_n_items() != n_items:
            raise CorruptObjectError(self.file_name, f"{index.get_n_items()} items, {self.params_name} says {n_items}")
        return index
