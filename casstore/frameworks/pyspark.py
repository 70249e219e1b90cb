"""Spark ML models and pipelines (kwarg ``model``), as the directory Spark ML's ``save`` writes.

What is stored is Spark ML's own persistence format, unchanged, under ``model.spark/``:
per stage a ``metadata/`` JSON line (the class, its uid and params) and for fitted
models ``data/`` as Parquet, with Hadoop's ``.crc`` and ``_SUCCESS`` files.  Loading
calls the class's ``load`` on a private copy; it needs an active ``SparkSession``.

What Spark ML reads is JSON and Parquet: no pickle, no Java serialisation.  It does
build the classes that the metadata names, importing Python modules by name; so
before Spark sees the files, casstore checks that every class named in any
``metadata`` file (and the class to call ``load`` on) is one of Spark ML's own
(``org.apache.spark.ml.*``, ``pyspark.ml.*``).  ``pyspark.ml.connect``,
``pyspark.ml.torch`` and ``pyspark.ml.deepspeed`` are excluded: their models are
saved with ``torch.save`` (a pickle) and use another persistence API.  Pipelines with
custom Python stages are therefore refused by ``load``; ``download`` them instead.

Some models read their Parquet data lazily (``ALSModel``'s factors): the private
copy stays on disk until the loaded object is garbage-collected or Python exits.
"""

from __future__ import annotations

import importlib
import json
import os
import posixpath
import re
import shutil
import tempfile
import weakref
from typing import Any, BinaryIO, cast

from ..errors import CorruptObjectError, FrameworkError
from .base import Framework, Saved, class_name, instance_of, library_version, read_bytes, require, spool

FORMAT = "spark-ml"
PREFIX = "model.spark/"
# Spark ML's own classes; the excluded ones save torch pickles through another API
_ALLOWED = ("org.apache.spark.ml.", "pyspark.ml.")
_EXCLUDED = ("pyspark.ml.connect.", "pyspark.ml.torch.", "pyspark.ml.deepspeed.", "pyspark.ml.dl_util")


#: what a stage's uid may look like: pyspark joins it into the path it loads the stage from
_UID = re.compile(r"[A-Za-z0-9_\-]{1,200}\Z")


def _spark_class_ok(name: object) -> bool:
    # pyspark turns org.apache.spark.X into pyspark.X before importing it: check what it imports
    return (isinstance(name, str) and name.startswith(_ALLOWED)
            and not name.replace("org.apache.spark", "pyspark", 1).startswith(_EXCLUDED))


def _check_metadata(name: str, data: bytes) -> None:
    """Refuse a metadata file that names a class other than Spark ML's own, or a stage
    uid that is not a plain name (``stages/0_<uid>`` must not lead out of the copy)."""
    for line in data.decode("utf-8", "replace").splitlines():
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            raise CorruptObjectError(name, "metadata that is not JSON") from None
        cls = doc.get("class") if isinstance(doc, dict) else None
        if not _spark_class_ok(cls):
            raise CorruptObjectError(name, f"metadata names the class {cls!r}, not one of Spark ML's own "
                                     "(org.apache.spark.ml.*, pyspark.ml.*)")
        params = doc.get("paramMap") if isinstance(doc, dict) else None
        stage_uids = params.get("stageUids") if isinstance(params, dict) else None
        uids = [doc.get("uid")] + (stage_uids if isinstance(stage_uids, list) else [])
        for uid in uids:
            if uid is not None and not (isinstance(uid, str) and _UID.match(uid)):
                raise CorruptObjectError(name, f"metadata names the uid {uid!r}, not a plain name")


def _local_uri(path: str) -> str:
    # a bare path would go to the cluster's default file system (HDFS) if one is configured
    return "file://" + os.path.abspath(path)


class PySparkFramework(Framework):
    name = "pyspark"
    kwargs = ("model",)
    extra = "pyspark"
    data_formats = (FORMAT,)

    def matches(self, obj: Any) -> bool:
        return instance_of(obj, "pyspark.ml.util", "MLWritable")

    def save(self, obj: Any, kwarg: str, directory: str) -> Saved:
        target = os.path.join(directory, PREFIX.rstrip("/"))
        obj.write().save(_local_uri(target))
        files: dict[str, str] = {}
        for root, _, names in os.walk(target):
            for n in sorted(names):
                local = os.path.join(root, n)
                files[PREFIX + os.path.relpath(local, target).replace(os.sep, "/")] = local
        return Saved(FORMAT, dict(sorted(files.items())), library_version("pyspark"), class_name(obj))

    def load(self, paths: dict[str, str | BinaryIO], cls: str, format: str) -> Any:
        if format != FORMAT:
            raise CorruptObjectError(format, "not a pyspark format this casstore loads")
        require("pyspark.ml", self.extra)
        util = importlib.import_module("pyspark.ml.util")
        sql = importlib.import_module("pyspark.sql")
        module, _, name = cls.rpartition(".")
        if not _spark_class_ok(cls):
            raise CorruptObjectError(cls, "not a Spark ML class (pyspark.ml.*)")
        try:
            reader: Any = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            raise CorruptObjectError(cls, "no such Spark ML class in this pyspark") from None
        if not (isinstance(reader, type) and issubclass(reader, util.MLReadable)):
            raise CorruptObjectError(cls, "not a Spark ML class that can be loaded")
        if sql.SparkSession.getActiveSession() is None:
            raise FrameworkError(f"loading {cls} needs an active SparkSession: "
                                 "start one (SparkSession.builder.getOrCreate()) first")
        d = tempfile.mkdtemp(prefix="casstore-spark-")
        try:
            for n, src in paths.items():
                rel = n[len(PREFIX):]
                # the manifest's paths were checked when it was read; a loader still never
                # writes outside its own directory
                if not n.startswith(PREFIX) or posixpath.normpath(rel) != rel or rel.startswith(("/", "..")):
                    raise CorruptObjectError(n, f"not a file under {PREFIX}")
                local = os.path.join(d, *rel.split("/"))
                os.makedirs(os.path.dirname(local), exist_ok=True)
                if "metadata" in rel.split("/")[:-1] and not posixpath.basename(rel).startswith((".", "_")):
                    data = read_bytes(src)
                    _check_metadata(n, data)
                    with open(local, "wb") as f:
                        f.write(data)
                else:
                    spool(src, local)
            model = cast(Any, reader).load(_local_uri(d))
        except BaseException:
            shutil.rmtree(d, ignore_errors=True)
            raise
        weakref.finalize(model, shutil.rmtree, d, True)
        return model
