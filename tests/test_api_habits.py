"""API habits ML users expect (issue 24): numpy values in metadata, states in
``get_model_info``, and loading by state (``load``, ``download``, ``cas download --state``,
``ModelStore``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import casstore
from casstore import ModelNotFoundException, ModelStore, StateNotFoundException
from casstore.errors import NoModelInStateError
from tests.helpers.cli import cas

# -- 24.10: numpy scalars and one-element arrays in extra_metadata ---------------------------


def test_numpy_scalars_in_metadata_are_stored_as_python_values(store: casstore.Store, tmp_path: Path) -> None:
    model = tmp_path / "m.bin"
    model.write_bytes(b"weights")
    given = {"epochs": np.int64(12), "small": np.int8(-3), "big": np.uint64(2**63), "early_stop": np.bool_(True),
             "acc": np.float32(0.5), "loss": np.float64(0.25), "f16": np.float16(1.5),
             "auc": np.array([0.75]), "n": np.array(7), "flag": np.array([[False]], dtype=bool),
             "per_fold": [np.int64(1), np.float32(2.0)], "nested": {"best": np.int32(3)}, "name": np.str_("x")}
    want = {"epochs": 12, "small": -3, "big": 2**63, "early_stop": True, "acc": 0.5, "loss": 0.25, "f16": 1.5,
            "auc": 0.75, "n": 7, "flag": False, "per_fold": [1, 2.0], "nested": {"best": 3}, "name": "x"}
    returned = store.commit_models("d", model=str(model), model_id="v1", extra_metadata=given)
    stored = casstore.open(store.path).get_model_info("d", "v1")["extra_metadata"]
    for got in (returned["extra_metadata"], stored):
        assert got == want
        assert {k: type(v) for k, v in got.items()} == {k: type(v) for k, v in want.items()}
        assert type(got["per_fold"][0]) is int and type(got["nested"]["best"]) is int
    # a float32's value, as a Python float, exactly (not the shortest decimal of its float32)
    returned = store.commit_models("d", model=str(model), model_id="v2", extra_metadata={"x": np.float32(0.1)})
    assert returned["extra_metadata"]["x"] == float(np.float32(0.1))


@pytest.mark.parametrize(("value", "named"), [(np.arange(3), r"shape \(3,\).*tolist"),
                                              (np.complex64(1j), "complex64"),
                                              (np.datetime64("2026-01-01"), "datetime64")])
def test_numpy_values_without_a_plain_form_are_refused(store: casstore.Store, tmp_path: Path, value: Any,
                                                       named: str) -> None:
    model = tmp_path / "m.bin"
    model.write_bytes(b"weights")
    with pytest.raises(TypeError, match=f"extra_metadata is not msgpack-serialisable: .*{named}"):
        store.commit_models("d", model=str(model), extra_metadata={"v": value})
    assert store.list_domains() == [] and store.fsck().ok


def test_get_model_info_has_the_states_as_cas_show(store: casstore.Store, tmp_path: Path) -> None:
    model = tmp_path / "m.bin"
    model.write_bytes(b"weights")
    first = store.commit_models("d", model=str(model), model_id="v1")
    assert first["states"] == [] and store.get_model_info("d", "v1") == first  # still the dict commit returned
    store.commit_models("d", model=str(model), model_id="v2")
    for s in ("staging", "production"):
        store.create_model_state(s)
        store.set_model_state("d", "v1", s)
    assert store.get_model_info("d", "v1")["states"] == ["production", "staging"]
    assert store.get_model_info("d", "v2")["states"] == []
    shown = json.loads(cas("show", "d", "v1", "--json", store=Path(store.path)).stdout)
    assert shown["states"] == store.get_model_info("d", "v1")["states"] == store.get_model_states("d", "v1")
    # another writer (another process, here another Store) moves the states: seen at once
    other = casstore.open(store.path)
    other.remove_model_state("d", "v1", "staging")
    other.set_model_state("d", "v2", "staging")
    assert store.get_model_info("d", "v1")["states"] == ["production"]
    assert store.get_model_info("d", "v2")["states"] == ["staging"]
    other.delete_model("d", "v1")
    other.commit_models("d", model=str(model), model_id="v1")  # the ID again: a new model, in no state
    assert store.get_model_info("d", "v1")["states"] == []


# -- 24.8: load by state ---------------------------------------------------------------------


@pytest.fixture
def staged(store: casstore.Store, tmp_path: Path) -> casstore.Store:
    """d/v1 and d/v2 in production (v2 the newer), d/v3 in none, the state "empty" holding nothing."""
    for mid in ("v1", "v2", "v3"):
        (tmp_path / f"{mid}.bin").write_bytes(f"weights of {mid}".encode())
        store.commit_models("d", model=str(tmp_path / f"{mid}.bin"), model_id=mid)
    store.create_model_state("production")
    store.create_model_state("empty")
    store.set_model_state("d", "v2", "production")
    store.set_model_state("d", "v1", "production")  # set last: "newest" is the model's, not the event's
    return store


def test_load_download_and_info_by_state(staged: casstore.Store, tmp_path: Path) -> None:
    assert Path(staged.load("d", state="production")).read_bytes() == b"weights of v2"
    assert staged.get_model_info("d", state="production")["model_id"] == "v2"
    out = staged.download(tmp_path / "out", "d", state="production")
    assert (Path(out) / "v2.bin").read_bytes() == b"weights of v2"
    staged.remove_model_state("d", "v2", "production")
    assert Path(staged.load("d", state="production")).read_bytes() == b"weights of v1"
    assert Path(staged.load("d")).read_bytes() == b"weights of v3"  # no state: the newest, as before


def test_load_by_state_errors_name_the_problem(staged: casstore.Store, tmp_path: Path) -> None:
    with pytest.raises(NoModelInStateError, match="no model of domain 'd' is in state 'empty'") as e:
        staged.load("d", state="empty")
    assert isinstance(e.value, ModelNotFoundException) and e.value.state == "empty" and e.value.domain == "d"
    with pytest.raises(StateNotFoundException, match="'nope' does not exist"):
        staged.download(tmp_path / "out", "d", state="nope")
    with pytest.raises(ValueError, match="not both"):
        staged.load("d", "v1", state="production")
    with pytest.raises(casstore.DomainNotFoundException):
        staged.get_model_info("elsewhere", state="production")
    assert not (tmp_path / "out").exists()


def test_cas_download_by_state(staged: casstore.Store, tmp_path: Path) -> None:
    store = Path(staged.path)
    r = cas("download", "d", "--state", "production", str(tmp_path / "out"), store=store)
    assert r.stdout.startswith("downloaded d/v2: 1 file")
    assert (tmp_path / "out" / "v2.bin").read_bytes() == b"weights of v2"
    r = cas("download", "--state", "production", "d", str(tmp_path / "again"), store=store)  # options anywhere
    assert (tmp_path / "again" / "v2.bin").exists()
    for args, says in ((["d", "v1", str(tmp_path / "x"), "--state", "production"], "not both"),
                       (["d", "--state", "empty", str(tmp_path / "x")], "no model of domain 'd' is in state 'empty'"),
                       (["d", "--state", "nope", str(tmp_path / "x")], "'nope' does not exist"),
                       (["d", "v1"], "no DIR given")):
        r = cas("download", *args, store=store, check=2)
        assert says in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "x").exists()
    assert "--state STATE DIR" in cas("download", "-h").stdout


def test_modelstore_load_and_download_by_state(tmp_path: Path) -> None:
    ms = ModelStore.from_file_system(root_directory=str(tmp_path / "root"), create_directory=True)
    for mid in ("v1", "v2"):
        (tmp_path / f"{mid}.bin").write_bytes(f"weights of {mid}".encode())
        ms.upload("d", mid, model=str(tmp_path / f"{mid}.bin"))
    ms.create_model_state("production")
    ms.set_model_state("d", "v1", "production")
    assert Path(ms.load("d", state_name="production")).read_bytes() == b"weights of v1"
    out = ms.download(str(tmp_path / "out"), "d", state_name="production")
    assert (Path(out) / "v1.bin").read_bytes() == b"weights of v1"
    assert (Path(out) / "model-info.json").exists()
    ms.create_model_state("archived")
    with pytest.raises(NoModelInStateError):
        ms.load("d", state_name="archived")
    with pytest.raises(ValueError, match="does not exist"):  # as list_models(domain, state_name)
        ms.download(str(tmp_path / "out2"), "d", state_name="nope")
    with pytest.raises(ValueError, match="not both"):
        ms.load("d", "v2", state_name="production")
    with pytest.raises(TypeError, match="model_id"):
        ms.load("d")
    assert Path(ms.load("d", "v2")).read_bytes() == b"weights of v2"  # modelstore's call, unchanged
