"""skorch: the module's parameters as safetensors and the net's config as JSON, never joblib."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from skorch import NeuralNetClassifier
from skorch.dataset import ValidSplit

import casstore
from casstore.errors import CorruptObjectError, FrameworkError
from casstore.frameworks import resolve
from casstore.frameworks.skorch import FORMAT, SkorchFramework


class Classifier(torch.nn.Module):
    def __init__(self, hidden: int = 10) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 3))

    def forward(self, X: Any) -> Any:
        return self.layers(X)


def _data() -> tuple[Any, Any]:
    X = np.random.default_rng(0).normal(size=(90, 4)).astype("float32")
    return X, (X[:, 0] > 0).astype("int64") + (X[:, 1] > 0)


def _net(**kw: Any) -> Any:
    opts: dict[str, Any] = {"module__hidden": 7, "max_epochs": 4, "lr": 0.1, "optimizer__momentum": 0.9,
                            "criterion": torch.nn.CrossEntropyLoss, "criterion__label_smoothing": 0.1,
                            "train_split": None, "verbose": 0}
    opts.update(kw)
    return NeuralNetClassifier(Classifier, **opts)


@pytest.fixture(scope="module")
def fitted() -> tuple[Any, Any]:
    torch.manual_seed(0)
    X, y = _data()
    return _net().fit(X, y), X


def test_round_trip_rebuilds_the_net_or_fills_one_with_the_same_predictions(
        store: casstore.Store, fitted: tuple[Any, Any]) -> None:
    net, X = fitted
    assert resolve("model", net).name == "skorch"  # not sklearn (joblib), not pytorch
    meta = store.commit_models("sk", model=net, model_id="v1")
    assert sorted(f["path"] for f in meta["files"]) == ["model.safetensors", "model.skorch.json",
                                                       "model.structure.json"]
    assert (meta["frameworks"]["model"]["format"], meta["frameworks"]["model"]["executes_code"]) == (FORMAT, False)
    config = json.loads(store.read_file("sk", "v1", "model.skorch.json"))
    assert config["classes"]["module"] == f"{__name__}:Classifier"
    assert config["params"]["module__hidden"] == 7 and config["params"]["criterion__label_smoothing"] == 0.1
    assert config["not_stored"] == []

    rebuilt = store.load("sk", "v1", allow_pickle=False)
    assert type(rebuilt) is NeuralNetClassifier and rebuilt is not net
    assert (rebuilt.lr, rebuilt.max_epochs, rebuilt.module_.layers[0].out_features) == (0.1, 4, 7)
    assert isinstance(rebuilt.optimizer_, torch.optim.SGD) and rebuilt.optimizer_.defaults["momentum"] == 0.9
    np.testing.assert_array_equal(rebuilt.classes_, net.classes_)
    np.testing.assert_array_equal(rebuilt.predict_proba(X), net.predict_proba(X))

    fresh = _net()  # not even initialised: load initialises it
    assert store.load("sk", "v1", model=fresh) is fresh
    np.testing.assert_array_equal(fresh.predict(X), net.predict(X))


def test_next_to_its_optimizer_in_one_commit(store: casstore.Store, fitted: tuple[Any, Any]) -> None:
    """The optimizer's state is not part of the net's entry: it commits beside it."""
    net, X = fitted
    store.commit_models("sk", model=net, optimizer=net.optimizer_, model_id="m")
    out = store.load("sk", "m", allow_pickle=False)
    assert set(out) == {"skorch", "pytorch"}
    np.testing.assert_array_equal(out["skorch"].predict_proba(X), net.predict_proba(X))
    opt = out["skorch"].optimizer_
    opt.load_state_dict(out["pytorch"])
    buffers = [o.state_dict()["state"][0]["momentum_buffer"] for o in (opt, net.optimizer_)]
    assert torch.equal(*buffers)


def test_what_is_not_data_is_listed_and_a_rebuild_warns(store: casstore.Store) -> None:
    X, y = _data()
    net = _net(train_split=ValidSplit(3), max_epochs=1).fit(X, y)
    store.commit_models("sk", model=net, model_id="split")
    assert json.loads(store.read_file("sk", "split", "model.skorch.json"))["not_stored"] == ["train_split"]
    with pytest.warns(UserWarning, match="takes defaults for train_split"):
        rebuilt = store.load("sk", "split")
    np.testing.assert_array_equal(rebuilt.predict(X), net.predict(X))

    given = NeuralNetClassifier(Classifier(hidden=5), max_epochs=1, train_split=None, verbose=0).fit(X, y)
    store.commit_models("sk", model=given, model_id="instance")
    assert json.loads(store.read_file("sk", "instance", "model.skorch.json"))["not_stored"] == ["module"]
    with pytest.raises(FrameworkError, match="given its module as an instance"):
        store.load("sk", "instance")
    into = NeuralNetClassifier(Classifier(hidden=5), verbose=0)
    np.testing.assert_array_equal(store.load("sk", "instance", model=into).predict(X), given.predict(X))


def test_a_module_class_that_cannot_be_found_by_name_needs_a_net(store: casstore.Store) -> None:
    class Local(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(4, 3)

        def forward(self, X: Any) -> Any:
            return self.lin(X)

    X, y = _data()
    net = NeuralNetClassifier(Local, max_epochs=1, train_split=None, verbose=0).fit(X, y)
    store.commit_models("sk", model=net, model_id="local")
    with pytest.raises(FrameworkError, match="a class defined in a function cannot be found by name"):
        store.load("sk", "local")
    into = NeuralNetClassifier(Local, verbose=0)
    np.testing.assert_array_equal(store.load("sk", "local", model=into).predict(X), net.predict(X))


def test_an_unfitted_net_is_refused(store: casstore.Store) -> None:
    with pytest.raises(FrameworkError, match="model: the skorch net is not initialised"):
        store.commit_models("sk", model=_net(), model_id="raw")


def test_a_hostile_config_cannot_import_or_build_other_classes(fitted: tuple[Any, Any], tmp_path: Path) -> None:
    net, _ = fitted
    fw = SkorchFramework()
    saved = fw.save(net, "model", str(tmp_path))
    cls = "skorch.classifier.NeuralNetClassifier"

    def paths(**classes: str) -> dict[str, Any]:
        files = {n: io.BytesIO(Path(p).read_bytes()) for n, p in saved.files.items()}
        config = json.loads(files["model.skorch.json"].getvalue())
        config["classes"].update(classes)
        files["model.skorch.json"] = io.BytesIO(json.dumps(config).encode())
        return files

    assert "this" not in sys.modules
    with pytest.raises(FrameworkError, match="without importing this"):
        fw.load(paths(module="this:Zen"), cls, FORMAT)
    assert "this" not in sys.modules  # the name alone did not import (run) it
    with pytest.raises(CorruptObjectError, match="not a torch.nn.Module class"):
        fw.load(paths(module="subprocess:Popen"), cls, FORMAT)
    with pytest.raises(CorruptObjectError, match="not a class parameter"):
        fw.load(paths(callbacks="subprocess:Popen"), cls, FORMAT)
    with pytest.raises(CorruptObjectError, match="not a skorch.NeuralNet class"):
        fw.load(paths(), "subprocess.Popen", FORMAT)


def test_without_skorch_loading_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "skorch", None)  # import skorch now raises ImportError
    with pytest.raises(FrameworkError, match=r"pip install -e '[^']*\[skorch\]'"):
        SkorchFramework().load({}, "skorch.classifier.NeuralNetClassifier", FORMAT)
