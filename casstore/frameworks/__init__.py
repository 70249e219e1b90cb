"""Framework registry: add a framework with one module and one line below."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, BinaryIO

from ..errors import CasError, FrameworkError
from .annoy import AnnoyFramework
from .base import Framework, Saved, library_version
from .catboost import CatBoostFramework
from .gensim import GensimFramework
from .keras import KerasFramework
from .lightgbm import LightGBMFramework
from .lightning import LightningFramework
from .model_file import ModelFileFramework
from .numpy_arrays import NumpyArraysFramework
from .onnx import OnnxFramework
from .prophet import ProphetFramework
from .pyspark import PySparkFramework
from .pytorch import PyTorchFramework
from .shap import ShapFramework
from .sklearn import SklearnFramework
from .skorch import SkorchFramework
from .transformers import TransformersFramework
from .xgboost import XGBoostFramework

FRAMEWORKS: list[Framework] = [
    SklearnFramework(),
    XGBoostFramework(),
    ShapFramework(),
    ModelFileFramework(),
    PyTorchFramework(),
    NumpyArraysFramework(),
    LightGBMFramework(),
    OnnxFramework(),
    CatBoostFramework(),
    KerasFramework(),
    TransformersFramework(),
    LightningFramework(),
    SkorchFramework(),
    ProphetFramework(),
    GensimFramework(),
    AnnoyFramework(),
    PySparkFramework(),
]

if TYPE_CHECKING:
    from ..model.manifest import FrameworkEntry

__all__ = ["FRAMEWORKS", "Framework", "Saved", "bundle_params", "by_name", "entry_executes_code", "known_kwargs",
           "load_entry", "resolve"]


def by_name(name: str) -> Framework:
    for fw in FRAMEWORKS:
        if fw.name == name:
            return fw
    raise FrameworkError(f"unknown framework {name!r} (known: {', '.join(f.name for f in FRAMEWORKS)})")


def known_kwargs() -> list[str]:
    seen: dict[str, None] = {}
    for fw in FRAMEWORKS:
        for k in fw.kwargs:
            seen[k] = None
        for k in fw.params:
            seen[k] = None
    return list(seen)


def bundle_params(models: dict[str, Any]) -> dict[str, Any]:
    """``commit_models``' keywords with parameter keywords (annoy's ``metric=``) folded into their object.

    Raises:
        TypeError: a parameter keyword without its object, or an object without a parameter it needs.
    """
    for fw in FRAMEWORKS:
        if fw.params:
            models = fw.bundle(models)
    return models


def resolve(kwarg: str, obj: Any) -> Framework:
    """The one framework that saves ``obj`` given as ``kwarg``.

    Raises:
        TypeError: no framework accepts ``kwarg``, or none recognises ``obj``.
        FrameworkError: several frameworks claim it and none is more specific.
    """
    owners = [fw for fw in FRAMEWORKS if kwarg in fw.kwargs]
    if not owners:
        raise TypeError(
            f"commit_models() got an unexpected keyword argument {kwarg!r}; "
            f"understood: {', '.join(known_kwargs())}, extra_files, extra_metadata, model_id"
        )
    claims = [fw for fw in owners if fw.matches(obj)]
    names = {fw.name for fw in claims}
    # drop every claim that a more specific claimant overrides
    claims = [fw for fw in claims if not any(fw.name in o.overrides for o in claims if o is not fw)]
    if not claims:
        raise TypeError(
            f"{kwarg}={type(obj).__module__}.{type(obj).__qualname__}: no framework recognises it "
            f"(frameworks for {kwarg!r}: {', '.join(fw.name for fw in owners)})"
        )
    if len(claims) > 1:
        raise FrameworkError(
            f"{kwarg}: frameworks {', '.join(sorted(names))} all claim this object; "
            "declare which one overrides the others"
        )
    return claims[0]


def entry_executes_code(entry: FrameworkEntry) -> bool:
    """Whether loading ``entry`` can execute code from the store.

    True if the manifest says so or if the framework does not know its format
    as data: a hostile manifest cannot mark a pickle safe.  An entry of a
    framework this casstore does not know counts as code.
    """
    if entry.executes_code:
        return True
    try:
        return by_name(entry.framework).executes_code(entry.format)
    except FrameworkError:
        return True


def _major(version: str) -> str:
    return version.split(".")[0].split("+")[0]


def load_entry(fw: Framework, entry: FrameworkEntry, paths: dict[str, str | BinaryIO], target: Any) -> Any:
    """``fw.load`` (or ``load_into`` ``target``) with the library-version checks.

    Warns when the installed library's major version differs from the one the
    entry was saved with.

    Raises:
        FrameworkError: the load failed; the message names both versions.
        CasError: raised by the framework or by verification, unchanged.
    """
    name = entry.library.get("name", "")
    saved = entry.library.get("version")
    try:
        if target is None:
            obj = fw.load(paths, entry.cls, entry.format)
        else:
            obj = fw.load_into(paths, entry.cls, entry.format, target)
    except CasError:
        raise
    except Exception as e:
        # the library is imported by now if it is installed: sys.modules says which version
        now = library_version(name).get("version", "not imported") if name else "unknown"
        raise FrameworkError(
            f"loading {entry.kwarg}={entry.framework} ({entry.cls}, {entry.format}) failed: "
            f"{type(e).__name__}: {e} (saved with {name or 'unknown library'} {saved or 'of unknown version'}, "
            f"installed: {now})"
        ) from e
    loaded_with = library_version(name).get("version") if name else None
    if saved and loaded_with and _major(saved) != _major(loaded_with):
        warnings.warn(
            f"casstore: {entry.kwarg}={entry.framework} was saved with {name} {saved} and loaded with "
            f"{name} {loaded_with} (another major version): check its predictions",
            stacklevel=3,
        )
    return obj
