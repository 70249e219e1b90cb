"""Spark ML models as Spark ML's save directory.  One local SparkSession for the module:
starting the JVM is the slow part."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import casstore
from casstore.errors import CorruptObjectError
from casstore.frameworks import resolve
from casstore.frameworks.pyspark import PySparkFramework


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from pyspark.sql import SparkSession

    scratch = tmp_path_factory.mktemp("spark")
    session = (SparkSession.builder.master("local[2]").appName("casstore-tests")
               .config("spark.ui.enabled", "false")
               .config("spark.driver.host", "127.0.0.1")
               .config("spark.driver.memory", "512m")
               .config("spark.sql.shuffle.partitions", "2")
               # the tests' JVM lives for seconds: C1 alone compiles sooner, adaptive planning is overhead
               .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1")
               .config("spark.sql.adaptive.enabled", "false")
               .config("spark.local.dir", str(scratch))
               .config("spark.sql.warehouse.dir", str(scratch / "warehouse"))
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def pipeline(spark: Any) -> tuple[Any, Any]:
    """A fitted two-stage PipelineModel (VectorAssembler + LogisticRegression) and its data."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import VectorAssembler

    rows = [(float(i % 7), float(i % 3), float((i % 7) > 3)) for i in range(40)]
    df = spark.createDataFrame(rows, ["a", "b", "label"]).coalesce(1).cache()
    stages = [VectorAssembler(inputCols=["a", "b"], outputCol="features"), LogisticRegression(maxIter=5)]
    return Pipeline(stages=stages).fit(df), df


def _predictions(model: Any, df: Any) -> list[float]:
    return [r.probability[1] for r in model.transform(df).select("probability").collect()]


def test_spark_pipeline_model_round_trips_next_to_arrays(store: casstore.Store, pipeline: tuple[Any, Any]) -> None:
    from pyspark.ml import PipelineModel

    model, df = pipeline
    assert resolve("model", model).name == "pyspark"
    meta = store.commit_models("spark", model=model, arrays={"w": np.ones(2)}, model_id="m")
    entry = meta["frameworks"]["model"]
    assert (entry["framework"], entry["format"], entry["executes_code"]) == ("pyspark", "spark-ml", False)
    assert entry["class"] == "pyspark.ml.pipeline.PipelineModel"
    assert "model.spark/metadata/_SUCCESS" in entry["files"]
    assert any(f.startswith("model.spark/stages/1_LogisticRegression") and f.endswith(".parquet")
               for f in entry["files"])
    out = store.load("spark", "m", allow_pickle=False)
    assert type(out["pyspark"]) is PipelineModel
    assert _predictions(out["pyspark"], df) == _predictions(model, df)
    np.testing.assert_array_equal(out["numpy"]["w"], np.ones(2))

    # a single fitted stage loads with its own class
    lr = model.stages[1]
    store.commit_models("spark", model=lr, model_id="lr")
    alone = store.load("spark", "lr")
    assert type(alone) is type(lr)
    assert alone.coefficients == lr.coefficients and alone.intercept == lr.intercept


def _saved_files(store: casstore.Store, tmp_path: Path, pipeline: tuple[Any, Any]) -> dict[str, bytes]:
    store.commit_models("spark", model=pipeline[0], model_id="x")
    root = Path(store.download(tmp_path / "dl", "spark", "x"))
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_metadata_naming_a_class_outside_spark_ml_is_refused_before_spark_reads_it(
        store: casstore.Store, tmp_path: Path, pipeline: tuple[Any, Any]) -> None:
    """pyspark imports the module a metadata file names: a hostile store could name any."""
    files = _saved_files(store, tmp_path, pipeline)
    meta_name = next(n for n in files if n.startswith("model.spark/stages/0_") and "/metadata/part-" in n
                     and not n.endswith(".crc"))
    doc = json.loads(files[meta_name])
    doc["class"] = "os.system"
    files[meta_name] = json.dumps(doc).encode()
    # a hostile author drops Hadoop's checksum too, which would otherwise catch the edit
    del files[str(Path(meta_name).parent / f".{Path(meta_name).name}.crc")]
    paths: dict[str, Any] = {n: io.BytesIO(b) for n, b in files.items()}
    with pytest.raises(CorruptObjectError, match=r"metadata names the class 'os.system'"):
        PySparkFramework().load(paths, "pyspark.ml.pipeline.PipelineModel", "spark-ml")
    for cls in ("os.system", "pyspark.ml.connect.classification.LogisticRegressionModel"):
        with pytest.raises(CorruptObjectError, match="not a Spark ML class"):
            PySparkFramework().load({}, cls, "spark-ml")


def test_spark_load_refuses_paths_outside_its_directory(spark: Any) -> None:
    with pytest.raises(CorruptObjectError, match="not a file under model.spark/"):
        PySparkFramework().load({"model.spark/../x": io.BytesIO(b"")}, "pyspark.ml.pipeline.PipelineModel",
                                "spark-ml")


def test_spark_load_without_a_session_says_to_start_one(tmp_path: Path) -> None:
    code = ("from casstore.frameworks.pyspark import PySparkFramework\n"
            "try:\n    PySparkFramework().load({}, 'pyspark.ml.pipeline.PipelineModel', 'spark-ml')\n"
            "except Exception as e:\n    print(type(e).__name__, e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=tmp_path).stdout
    assert out.startswith("FrameworkError loading pyspark.ml.pipeline.PipelineModel needs an active SparkSession")


@pytest.mark.parametrize("doc", [
    # pyspark imports org.apache.spark.X as pyspark.X: its connect models are torch pickles
    {"class": "org.apache.spark.ml.connect.classification.LogisticRegressionModel", "uid": "a"},
    {"class": "org.apache.spark.ml.torch.distributor.TorchDistributor", "uid": "a"},
    # a stage's directory is stages/<i>_<uid>: a uid must not lead out of the private copy
    {"class": "pyspark.ml.pipeline.PipelineModel", "uid": "x",
     "paramMap": {"stageUids": ["x/../../../../tmp/elsewhere"]}},
    {"class": "pyspark.ml.classification.LogisticRegressionModel", "uid": "../up"},
])
def test_metadata_naming_an_excluded_class_or_a_path_as_uid_is_refused(spark: Any, doc: dict[str, Any]) -> None:
    """issue 20 item 1 (the audit of every loader): the names Spark ML itself turns into imports
    and paths are checked the way pyspark will use them."""
    line = json.dumps(doc).encode()
    paths: dict[str, Any] = {"model.spark/metadata/part-00000": io.BytesIO(line)}
    with pytest.raises(CorruptObjectError, match="metadata names the"):
        PySparkFramework().load(paths, "pyspark.ml.pipeline.PipelineModel", "spark-ml")
