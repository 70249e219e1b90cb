"""PyTorch: state dicts as safetensors, loading into modules, pickles only on request."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest
import torch

import casstore
from casstore.errors import CorruptObjectError, FrameworkError, PickleRefusedError
from casstore.frameworks import resolve
from casstore.frameworks.pytorch import Pickled, PyTorchFramework


def _net() -> Any:
    return torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(),
                               torch.nn.Linear(16, 3))


def _trained() -> tuple[Any, Any, Any]:
    torch.manual_seed(0)
    net = _net()
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    X = torch.randn(64, 5)
    y = torch.randint(0, 3, (64,))
    for _ in range(5):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(X), y).backward()
        opt.step()
    net.eval()
    return net, opt, X


def _step(net: Any, opt: Any, X: Any) -> None:
    net.train()
    opt.zero_grad()
    net(X).sum().backward()
    opt.step()
    net.eval()


def _same(a: Any, b: Any) -> None:
    """Two state dicts (nested) hold the same structure, values and tensors."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b)
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same(x, y)
    else:
        assert a == b


def test_model_and_optimizer_round_trip_as_safetensors(store: casstore.Store) -> None:
    """Both state dicts come back equal; loaded into fresh objects they predict the
    same and the optimizer takes the same next step, all with allow_pickle=False."""
    net, opt, X = _trained()
    meta = store.commit_models("torch", model=net, optimizer=opt, model_id="v1")
    assert sorted(f["path"] for f in meta["files"]) == [
        "model.safetensors", "model.structure.json", "optimizer.safetensors", "optimizer.structure.json"]
    assert {k: (v["framework"], v["format"], v["executes_code"]) for k, v in meta["frameworks"].items()} == {
        "model": ("pytorch", "safetensors", False), "optimizer": ("pytorch", "safetensors", False)}

    states = store.load("torch", "v1", allow_pickle=False)
    assert set(states) == {"model", "optimizer"}
    _same(net.state_dict(), states["model"])
    _same(opt.state_dict(), states["optimizer"])

    net2 = _net()
    opt2 = torch.optim.Adam(net2.parameters(), lr=0.5)
    got = store.load("torch", "v1", allow_pickle=False, model=net2, optimizer=opt2)
    assert got == {"model": net2, "optimizer": opt2}
    net2.eval()
    torch.testing.assert_close(net2(X), net(X), rtol=0, atol=0)
    _step(net, opt, X)
    _step(net2, opt2, X)
    torch.testing.assert_close(net2(X), net(X), rtol=0, atol=0)


def test_a_module_alone_loads_as_its_state_dict_or_into_a_module(store: casstore.Store) -> None:
    net, _, X = _trained()
    store.commit_models("torch", model=net, model_id="alone")
    sd = store.load("torch", "alone")
    assert list(sd) == list(net.state_dict())
    fresh = _net().eval()
    assert store.load("torch", "alone", model=fresh) is fresh
    torch.testing.assert_close(fresh(X), net(X), rtol=0, atol=0)


def test_tied_weights_and_other_dtypes(store: casstore.Store) -> None:
    torch.manual_seed(1)
    emb = torch.nn.Embedding(10, 4)
    head = torch.nn.Linear(4, 10, bias=False)
    head.weight = emb.weight  # tied: one storage under two names
    model = torch.nn.ModuleDict({"emb": emb, "head": head}).to(torch.bfloat16)
    model.register_buffer("mask", torch.tensor([True, False, True]))
    store.commit_models("torch", model=model, model_id="tied")
    fresh = torch.nn.ModuleDict({"emb": torch.nn.Embedding(10, 4), "head": torch.nn.Linear(4, 10, bias=False)})
    fresh = fresh.to(torch.bfloat16)
    fresh.register_buffer("mask", torch.zeros(3, dtype=torch.bool))
    store.load("torch", "tied", model=fresh)
    _same(model.state_dict(), fresh.state_dict())
    assert fresh["head"].weight.dtype == torch.bfloat16


def test_whole_module_pickle_only_on_request_and_refused_without_allow_pickle(store: casstore.Store) -> None:
    net, _, X = _trained()
    assert resolve("model", Pickled(net)).name == "pytorch"
    meta = store.commit_models("torch", model=Pickled(net), model_id="pickled")
    assert meta["frameworks"]["model"]["format"] == "torch-pickle"
    assert meta["frameworks"]["model"]["executes_code"] is True
    with pytest.raises(PickleRefusedError, match="model=pytorch is stored as torch-pickle"):
        store.load("torch", "pickled", allow_pickle=False)
    loaded = store.load("torch", "pickled")
    assert type(loaded) is torch.nn.Sequential
    torch.testing.assert_close(loaded(X), net(X), rtol=0, atol=0)


def test_next_to_another_framework_in_one_commit(store: casstore.Store) -> None:
    net, opt, X = _trained()
    arrays = {"X": X.numpy(), "labels": np.arange(4, dtype=np.int64)}
    store.commit_models("mixed", model=net, optimizer=opt, arrays=arrays, model_id="m")
    out = store.load("mixed", "m", allow_pickle=False)
    assert set(out) == {"pytorch", "numpy"}
    _same(net.state_dict(), out["pytorch"]["model"])
    np.testing.assert_array_equal(out["numpy"]["X"], arrays["X"])


def test_a_state_dict_value_safetensors_cannot_hold_is_refused(store: casstore.Store) -> None:
    class Odd(torch.nn.Module):
        def get_extra_state(self) -> Any:
            return {"when": object()}

        def set_extra_state(self, state: Any) -> None: ...

    with pytest.raises(FrameworkError, match="model: state dict value at '_extra_state.when'"):
        store.commit_models("torch", model=Odd(), model_id="odd")
    assert not store.model_exists("torch", "odd")


def test_a_structure_naming_a_missing_tensor_is_corrupt() -> None:
    from safetensors.torch import save as save_tensors

    weights = save_tensors({"w": torch.zeros(2)})
    fw = PyTorchFramework()
    for structure, match in [({"state": {"d": [["w", {"t": "nope"}]]}}, "not in the safetensors file"),
                             ({"state": {"d": [["w", {"x": 1}]]}}, "bad node"),
                             ({"state": {"d": []}}, "1 tensors the structure does not use")]:
        paths: dict[str, Any] = {"model.safetensors": io.BytesIO(weights),
                                 "model.structure.json": io.BytesIO(json.dumps(structure).encode())}
        with pytest.raises(CorruptObjectError, match=match):
            fw.load(paths, "torch.nn.Linear", "safetensors")
    with pytest.raises(CorruptObjectError, match="not a pytorch format"):
        fw.load({}, "torch.nn.Linear", "pickle")


def test_a_pickled_module_cannot_be_loaded_into_another(store: casstore.Store) -> None:
    store.commit_models("torch", model=Pickled(torch.nn.Linear(2, 2)), model_id="p")
    with pytest.raises(FrameworkError, match="a pickled module loads as itself"):
        store.load("torch", "p", model=torch.nn.Linear(2, 2))
