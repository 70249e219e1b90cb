"""Safe loading: the per-entry executes_code flag, allow_pickle, versions, missing libraries."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import msgpack
import numpy as np
import pytest

import casstore
from casstore import frameworks
from casstore.errors import CorruptObjectError, FrameworkError, PickleRefusedError
from casstore.frameworks.base import require
from casstore.frameworks.sklearn import SklearnFramework
from casstore.model.manifest import Manifest, decode


def _without_flag(data: bytes) -> bytes:
    """A manifest as casstore wrote it before the executes_code field existed."""
    doc = msgpack.unpackb(data, raw=False)
    for e in doc["frameworks"]:
        del e["executes_code"]
    return msgpack.packb(doc, use_bin_type=True)  # type: ignore[no-any-return]


def test_old_manifests_derive_the_flag_from_the_format(store: casstore.Store, iris_model: object,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A store written before the field loads unchanged; joblib entries count as code,
    xgboost's UBJSON and plain files do not; allow_pickle=False refuses the joblib one."""
    import xgboost

    encode = Manifest.encode
    monkeypatch.setattr(Manifest, "encode", lambda self: _without_flag(encode(self)))
    X = np.random.default_rng(0).normal(size=(50, 4))
    booster = xgboost.train({"max_depth": 2}, xgboost.DMatrix(X, label=X[:, 0] > 0), 3)
    store.commit_models("old", model=iris_model, model_id="sk")
    store.commit_models("old", model=booster, model_id="xgb")
    monkeypatch.undo()

    assert store.get_model_info("old", "sk")["frameworks"]["model"]["executes_code"] is True
    assert store.get_model_info("old", "xgb")["frameworks"]["model"]["executes_code"] is False
    with pytest.raises(PickleRefusedError):
        store.load("old", "sk", allow_pickle=False)
    assert type(store.load("old", "sk")) is type(iris_model)
    assert type(store.load("old", "xgb", allow_pickle=False)) is xgboost.Booster

    m = store._resolve("old", "sk")[1]
    assert [e.executes_code for e in decode(_without_flag(m.encode())).frameworks] == [True]


def test_a_non_bool_flag_makes_the_manifest_corrupt(store: casstore.Store, iris_model: object) -> None:
    store.commit_models("d", model=iris_model, model_id="m")
    doc = msgpack.unpackb(store._resolve("d", "m")[1].encode(), raw=False)
    doc["frameworks"][0]["executes_code"] = 0
    with pytest.raises(CorruptObjectError, match="'executes_code' has type int"):
        decode(msgpack.packb(doc, use_bin_type=True))


def test_allow_pickle_false_refuses_joblib_naming_entry_and_alternative(store: casstore.Store,
                                                                        iris_model: object) -> None:
    store.commit_models("d", model=iris_model, model_id="m")
    info = store.get_model_info("d", "m")["frameworks"]["model"]
    assert (info["format"], info["executes_code"]) == ("joblib", True)
    with pytest.raises(PickleRefusedError, match=r"d/m: entry model=sklearn is stored as joblib") as ei:
        store.load("d", "m", allow_pickle=False)
    assert (ei.value.domain, ei.value.model_id, ei.value.kwarg) == ("d", "m", "model")
    assert "download()" in ei.value.alternative
    assert type(store.load("d", "m")) is type(iris_model)  # the default still loads it


def test_store_setting_refuses_pickles_and_the_argument_overrides_it(tmp_path: Path,
                                                                    iris_model: object) -> None:
    with casstore.open(tmp_path / "s") as s:
        s.commit_models("d", model=iris_model, model_id="m")
    subprocess.run(["git", "config", "-f", str(tmp_path / "s" / "config"), "cas.allowPickle", "false"],
                   check=True)
    with casstore.open(tmp_path / "s") as s:
        assert s.allow_pickle is False
        with pytest.raises(PickleRefusedError, match="entry model=sklearn"):
            s.load("d", "m")
        assert type(s.load("d", "m", allow_pickle=True)) is type(iris_model)


def test_a_manifest_that_calls_a_pickle_data_is_still_refused(store: casstore.Store, iris_model: object,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A hostile writer sets executes_code=False on a joblib entry: the reader's
    framework decides, so the entry is refused all the same."""
    monkeypatch.setattr(SklearnFramework, "data_formats", ("joblib",))
    store.commit_models("d", model=iris_model, model_id="liar")
    monkeypatch.undo()
    assert store._resolve("d", "liar")[1].frameworks[0].executes_code is False
    assert store.get_model_info("d", "liar")["frameworks"]["model"]["executes_code"] is True
    with pytest.raises(PickleRefusedError, match="entry model=sklearn"):
        store.load("d", "liar", allow_pickle=False)


def test_cas_show_says_which_entries_run_code(tmp_path: Path, iris_model: object) -> None:
    with casstore.open(tmp_path / "s") as s:
        s.commit_models("d", model=iris_model, arrays={"w": np.zeros(3)}, model_id="m")
    out = subprocess.run([sys.executable, "-m", "casstore", "--store", str(tmp_path / "s"), "show", "d", "m"],
                         capture_output=True, text=True, check=True).stdout
    lines = {ln.split(":")[0].strip(): ln for ln in out.splitlines() if ln.startswith("  ")}
    assert lines["model"].endswith("loading runs code (pickle)")
    assert lines["arrays"].endswith("data only")


def test_another_major_version_warns(store: casstore.Store, iris_model: object,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import sklearn

    monkeypatch.setattr(sklearn, "__version__", "0.24.2")
    store.commit_models("d", model=iris_model, model_id="old")
    monkeypatch.undo()
    assert store.get_model_info("d", "old")["frameworks"]["model"]["library"]["version"] == "0.24.2"
    with pytest.warns(UserWarning, match=rf"saved with sklearn 0.24.2 and loaded with sklearn {sklearn.__version__}"):
        store.load("d", "old")
    store.commit_models("d", model=iris_model, model_id="new")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        store.load("d", "new")


def test_a_failed_load_names_both_versions(store: casstore.Store) -> None:
    import torch

    store.commit_models("d", model=torch.nn.Linear(3, 2), model_id="lin")
    with pytest.raises(FrameworkError, match=r"saved with torch 2\.\d+\.\d+\S*, installed: 2\.") as ei:
        store.load("d", "lin", model=torch.nn.Linear(4, 2))  # shapes differ
    assert "size mismatch" in str(ei.value)


def test_load_into_an_unknown_keyword_is_a_type_error(store: casstore.Store) -> None:
    store.commit_models("d", arrays={"a": np.ones(2)}, model_id="m")
    with pytest.raises(TypeError, match="has no 'model' to load into"):
        store.load("d", "m", model=object())


def test_a_missing_library_names_the_pip_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lightgbm", None)  # import lightgbm now raises ImportError
    with pytest.raises(FrameworkError, match=r"pip install -e '[^']*\[lightgbm\]' \(or the extra 'all'\)"):
        require("lightgbm", "lightgbm")


def test_every_framework_declares_its_extra_and_safe_formats() -> None:
    for fw in frameworks.FRAMEWORKS:
        assert fw.extra, fw.name
    safe = {fw.name: fw.data_formats for fw in frameworks.FRAMEWORKS}
    assert safe["shap"] == ()
    assert safe["sklearn"] == ("skops",)
    assert safe["pytorch"] == safe["numpy"] == ("safetensors",)


def test_importing_casstore_imports_no_new_framework_library() -> None:
    libs = ("torch", "safetensors", "lightgbm", "onnx", "onnxruntime")
    code = f"import sys, casstore, casstore.cli; print(sorted(m for m in {libs!r} if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"
