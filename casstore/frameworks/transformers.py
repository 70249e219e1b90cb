"""Hugging Face transformers (kwargs ``model``, ``tokenizer``, ``config``, ``processor``).

Each object is stored as what its ``save_pretrained`` writes, in a directory named
after its keyword (``model/config.json``, ``model/model.safetensors``,
``tokenizer/tokenizer.json`` ...): weights as safetensors, everything else as JSON
or the tokenizer's own data files.  A save that writes a pickle (``.bin``, ``.pt``,
``.pkl`` ...) is refused, so an entry holds data only.

Loading spools the entry's files into a private temporary directory and calls
``from_pretrained`` on the class recorded in the manifest, with
``local_files_only=True`` (no hub access), ``use_safetensors=True`` for models and
``trust_remote_code=False`` for every kind (model, tokenizer, config, processor, and the
tokenizer or image processor a processor loads): no load ever asks on stdin whether to
run custom code.  Python files that came with a model (custom code registered with
``auto_map``) are stored and downloaded but never laid out for ``from_pretrained``, so
nothing can import them; a JSON file that names a hub kernel as an attention or experts
implementation (``"attn_implementation": "org/kernel"``: code fetched and run by the
``kernels`` library) is refused.  Because the manifest may be
hostile, the recorded class is only used if it is a transformers class (its module is
under ``transformers.``) of the right kind; for a class of your own, pass it:
``load(domain, id, model=MyBertSubclass)`` calls ``MyBertSubclass.from_pretrained``.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import tempfile
from typing import Any, BinaryIO

from ..errors import CorruptObjectError, FrameworkError
from .base import Framework, Saved, class_name, instance_of, library_version, read_bytes, require

FORMAT = "transformers"

#: what can be saved, as (module, class) pairs, by kind; the kind decides how it loads
KINDS: dict[str, tuple[tuple[str, str], ...]] = {
    "model": (("transformers", "PreTrainedModel"),),
    "tokenizer": (("transformers", "PreTrainedTokenizerBase"),),
    "config": (("transformers", "PretrainedConfig"),),
    "processor": (("transformers", "ProcessorMixin"), ("transformers", "ImageProcessingMixin"),
                  ("transformers", "FeatureExtractionMixin")),
}

#: files that deserialise by unpickling: save_pretrained must not leave any behind
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".h5", ".msgpack")

#: files transformers imports as code (custom classes named by ``auto_map``): stored, never spooled
CODE_SUFFIXES = (".py", ".pyc", ".so", ".pyd")


def _names_a_kernel(doc: Any, under_implementation: bool = False) -> str | None:
    """The first hub kernel (``org/name``) a config names as an ``*_implementation``, if any.

    transformers fetches such a kernel with the ``kernels`` library and runs it: code
    named by stored data.  Nested configs (``text_config`` ...) and per-config dicts
    are searched too.
    """
    if isinstance(doc, dict):
        for k, v in doc.items():
            found = _names_a_kernel(v, under_implementation or (isinstance(k, str) and "implementation" in k))
            if found:
                return found
    elif isinstance(doc, list):
        for v in doc:
            found = _names_a_kernel(v, under_implementation)
            if found:
                return found
    elif under_implementation and isinstance(doc, str) and ("/" in doc or ":" in doc):
        return doc
    return None


def _kind(obj: Any) -> str | None:
    for kind, bases in KINDS.items():
        if any(instance_of(obj, m, n) for m, n in bases):
            return kind
    return None


def _kind_of_class(cls: type) -> str | None:
    if cls.__module__.startswith("transformers.models.auto."):
        # AutoModel & co. are factories, no subclasses: their name says what they build
        for kind, prefix in (("config", "AutoConfig"), ("tokenizer", "AutoTokenizer"), ("processor", "AutoProcessor"),
                             ("processor", "AutoImageProcessor"), ("processor", "AutoFeatureExtractor"),
                             ("model", "AutoModel")):
            if cls.__name__.startswith(prefix):
                return kind
        return None
    for kind, bases in KINDS.items():
        for m, n in bases:
            base = getattr(importlib.import_module(m), n, None)
            if isinstance(base, type) and issubclass(cls, base):
                return kind
    return None


def _stored_class(cls: str) -> type:
    """The class the manifest names, if it is one of transformers' own loadable classes.

    Only modules under ``transformers.`` are imported: a hostile manifest must not make
    the loader import (run) any other module or call another class's constructor.
    """
    module, _, name = cls.rpartition(".")
    if not module.startswith("transformers.") or not name.isidentifier():
        raise FrameworkError(f"{cls} is not a transformers class: pass the class to load with, "
                             "e.g. load(domain, id, model=MyModelClass)")
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise FrameworkError(f"class {cls} is not in the installed transformers ({e}): "
                             "pass the class to load with, e.g. load(domain, id, model=AutoModel)") from None
    if not isinstance(found, type) or _kind_of_class(found) is None:
        raise CorruptObjectError(cls, "not a transformers model, tokenizer, config or processor class")
    return found


def _spool(paths: dict[str, str | BinaryIO], into: str) -> str:
    """Lay the entry's files out as ``save_pretrained`` wrote them, under ``into``.

    Returns the directory to pass to ``from_pretrained``.  Every name must sit in one
    top directory (the keyword's) and stay inside it: nothing is written outside ``into``.
    """
    tops = {name.split("/", 1)[0] for name in paths}
    if len(tops) != 1 or any("/" not in name for name in paths):
        raise CorruptObjectError(", ".join(paths), "expected the files of one save_pretrained directory")
    (top,) = tops
    root = os.path.join(into, "pretrained")
    for name, src in paths.items():
        rel = os.path.normpath(name.split("/", 1)[1])
        if os.path.isabs(rel) or rel == ".." or rel.startswith(".." + os.sep):
            raise CorruptObjectError(name, "file name leaves its directory")
        if rel.lower().endswith(CODE_SUFFIXES):
            continue  # custom code: stored and downloaded, never where transformers could import it
        dest = os.path.join(root, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if rel.lower().endswith(".json"):
            data = read_bytes(src)
            try:
                kernel = _names_a_kernel(json.loads(data))
            except (ValueError, RecursionError):
                kernel = None  # not JSON: transformers will say so, and runs nothing from it
            if kernel:
                raise CorruptObjectError(name, f"names the hub kernel {kernel!r} as an implementation: "
                                         "code that transformers would fetch and run")
            with open(dest, "xb") as f:
                f.write(data)
        elif isinstance(src, str):
            os.symlink(os.path.abspath(src), dest)  # a large file, already verified on disk: no copy
        else:
            with open(dest, "xb") as f:
                shutil.copyfileobj(src, f)
    if not os.path.isdir(root):
        raise CorruptObjectError(", ".join(paths), "no file of a save_pretrained directory but code")
    return root


class TransformersFramework(Framework):
    name = "transformers"
    kwargs = ("model", "tokenizer", "config", "processor")
    # a transformers model is a torch.nn.Module too
    overrides = ("pytorch",)
    extra = "transformers"
    data_formats = (FORMAT,)

    def matches(self, obj: Any) -> bool:
        return _kind(obj) is not None

    def save(self, obj: Any, kwarg: str, directory: str) -> Saved:
        root = os.path.join(directory, kwarg)
        if _kind(obj) == "model":
            # transformers 4 writes pytorch_model.bin (a pickle) unless told otherwise; 5 ignores it
            obj.save_pretrained(root, safe_serialization=True)
        else:
            obj.save_pretrained(root)
        files: dict[str, str] = {}
        for here, _, names in os.walk(root):
            for n in sorted(names):
                path = os.path.join(here, n)
                rel = os.path.relpath(path, directory).replace(os.sep, "/")
                if n.endswith(PICKLE_SUFFIXES):
                    raise FrameworkError(f"{kwarg}: save_pretrained wrote {rel}, a pickle-based file; "
                                         "casstore stores transformers objects as data only")
                files[rel] = path
        if not files:
            raise FrameworkError(f"{kwarg}: save_pretrained of a {class_name(obj)} wrote no files")
        return Saved(FORMAT, files, library_version("transformers"), class_name(obj))

    def _from_pretrained(self, paths: dict[str, str | BinaryIO], cls: type, format: str) -> Any:
        if format != FORMAT:
            raise CorruptObjectError(format, "not a transformers format this casstore loads")
        kind = _kind_of_class(cls)
        # every kind, processors too: a processor passes it on to the tokenizer and image
        # processor it loads, and without it transformers asks on stdin whether to run auto_map code
        options: dict[str, Any] = {"local_files_only": True, "trust_remote_code": False}
        if kind == "model":
            options["use_safetensors"] = True
        with tempfile.TemporaryDirectory(prefix="casstore-transformers-") as d:
            # from_pretrained reads every file it needs before returning (weights are copied
            # out of the safetensors mapping into the module), so the directory can go
            return cls.from_pretrained(_spool(paths, d), **options)  # type: ignore[attr-defined]

    def load(self, paths: dict[str, str | BinaryIO], cls: str, format: str) -> Any:
        require("transformers", self.extra)
        return self._from_pretrained(paths, _stored_class(cls), format)

    def load_into(self, paths: dict[str, str | BinaryIO], cls: str, format: str, target: Any) -> Any:
        """``target`` is a class to load with (``model=BertForMaskedLM``), not an instance."""
        require("transformers", self.extra)
        if not isinstance(target, type) or _kind_of_class(target) is None:
            raise FrameworkError(f"transformers loads with a class (load(..., model=AutoModel)), "
                                 f"not a {class_name(target)}")
        return self._from_pretrained(paths, target, format)
