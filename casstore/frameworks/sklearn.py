"""scikit-learn estimators and pipelines (kwarg ``model``): joblib, or skops on request.

By default an estimator is saved with joblib (a pickle: loading it executes code
from the store).  ``model=Skops(clf)`` saves it in skops' format instead: a zip of
JSON and arrays that skops rebuilds only from types on its trusted list, so
loading it runs no code from the store.  A file that needs a type skops does not
trust by default (``sklearn.tree._tree.Tree`` in tree ensembles, a custom class)
is refused, naming the types; review them, then ``download`` the file and call
``skops.io.load(path, trusted=[...])`` yourself.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, BinaryIO

from ..errors import CorruptObjectError, FrameworkError
from .base import Framework, Saved, class_name, instance_of, library_version, read_bytes, require

JOBLIB = "joblib"
SKOPS = "skops"


class Skops:
    """Ask for an estimator to be stored in skops' format (``model=Skops(clf)``)."""

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator


def with_store_format(obj: Any, setting: str) -> Any:
    """``obj`` (an estimator the sklearn framework claimed) as the store setting
    ``cas.sklearnFormat`` asks: ``Skops(obj)`` under ``skops``; an explicit
    ``Skops(...)`` stays one under ``joblib``.

    Raises:
        FrameworkError: the setting names neither format.
    """
    if setting not in (JOBLIB, SKOPS):
        raise FrameworkError(f"cas.sklearnFormat = {setting!r}: the store setting must be {JOBLIB} or {SKOPS}")
    if setting == SKOPS and not isinstance(obj, Skops):
        return Skops(obj)
    return obj


class SklearnFramework(Framework):
    name = "sklearn"
    kwargs = ("model",)
    extra = "skops"  # scikit-learn itself is a core dependency
    data_formats = (SKOPS,)
    safe_alternative = ("download() the files instead of loading them, or commit the estimator as "
                        "model=casstore.frameworks.sklearn.Skops(estimator)")
    file_name = "model.joblib"
    skops_name = "model.skops"

    def matches(self, obj: Any) -> bool:
        if isinstance(obj, Skops):
            return instance_of(obj.estimator, "sklearn.base", "BaseEstimator")
        return instance_of(obj, "sklearn.base", "BaseEstimator")

    def save(self, obj: Any, kwarg: str, directory: str) -> Saved:
        if isinstance(obj, Skops):
            sio = require("skops.io", "skops")
            path = os.path.join(directory, self.skops_name)
            sio.dump(obj.estimator, path)
            untrusted = sio.get_untrusted_types(file=path)
            if untrusted:
                # stored all the same (the caller asked for skops), but say now what load() will say
                warnings.warn(f"casstore: {kwarg}={class_name(obj.estimator)} needs types skops does not trust "
                              f"by default ({', '.join(untrusted)}): load() will refuse it; download() the file "
                              "and call skops.io.load(path, trusted=[...]) after reviewing them", stacklevel=3)
            return Saved(SKOPS, {self.skops_name: path}, library_version("sklearn"), class_name(obj.estimator))
        import joblib

        path = os.path.join(directory, self.file_name)
        joblib.dump(obj, path)  # uncompressed: casstore compresses chunks itself
        return Saved(JOBLIB, {self.file_name: path}, library_version("sklearn"), class_name(obj))

    def load(self, paths: dict[str, str | BinaryIO], cls: str, format: str) -> Any:
        if format == JOBLIB:
            import joblib

            return joblib.load(paths[self.file_name])
        if format != SKOPS:
            raise CorruptObjectError(format, "not a scikit-learn format this casstore loads")
        sio = require("skops.io", "skops")
        data = read_bytes(paths[self.skops_name])
        untrusted = sio.get_untrusted_types(data=data)
        if untrusted:
            raise FrameworkError(
                f"{self.skops_name} needs types skops does not trust by default: {', '.join(untrusted)}; "
                "review them, download() the file and load it with skops.io.load(path, trusted=[...])"
            )
        return sio.loads(data)
