"""Framework registry: add a framework with one module and one line below."""

from __future__ import annotations

from typing import Any

from ..errors import FrameworkError
from .base import Framework, Saved
from .model_file import ModelFileFramework
from .shap import ShapFramework
from .sklearn import SklearnFramework
from .xgboost import XGBoostFramework

FRAMEWORKS: list[Framework] = [
    SklearnFramework(),
    XGBoostFramework(),
    ShapFramework(),
    ModelFileFramework(),
]

__all__ = ["FRAMEWORKS", "Framework", "Saved", "by_name", "known_kwargs", "resolve"]


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
    return list(seen)


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
