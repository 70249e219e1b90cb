"""The Store operations the front ends (cas, cas serve, compat) use instead of its internals."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import casstore
from casstore.errors import DomainNotFoundException
from casstore.modelinfo import ModelInfo


def _commit(store: casstore.Store, tmp_path: Path, model_id: str, data: bytes = b"weights") -> dict[str, object]:
    f = tmp_path / f"{model_id}.onnx"
    f.write_bytes(data)
    return store.commit_models("d", model=str(f), model_id=model_id, extra_metadata={"acc": 0.9})


def test_model_info_is_the_public_dict_typed(store: casstore.Store, tmp_path: Path) -> None:
    _commit(store, tmp_path, "v1")
    store.create_model_state("prod")
    store.set_model_state("d", "v1", "prod")
    info = store.model_info("d", "v1")
    d = store.get_model_info("d", "v1")
    assert isinstance(info, ModelInfo)
    # the same dict, key for key and in the same order (cas show --json prints it)
    assert info.as_dict() == d and list(info.as_dict()) == list(d)
    assert json.dumps(info.as_dict()) == json.dumps(d)
    assert (info.domain, info.model_id, info.commit, info.states) == ("d", "v1", d["commit"], ["prod"])
    assert info.files[0].path == d["files"][0]["path"] and info.files[0].size == len(b"weights")
    kw, fw = next(iter(info.frameworks.items()))
    assert fw.cls == d["frameworks"][kw]["class"] and fw.executes_code == d["frameworks"][kw]["executes_code"]
    assert store.model_info("d", state="prod").commit == d["commit"]
    # a key this type does not name yet comes back unchanged, in its place
    more = {**d, "new_key": [1]}
    assert ModelInfo.from_dict(more).as_dict() == more and list(ModelInfo.from_dict(more).as_dict()) == list(more)


def test_log_counts_states_and_commits(store: casstore.Store, tmp_path: Path) -> None:
    with pytest.raises(DomainNotFoundException):
        store.iter_log("d")  # raised at once, not when first read
    assert store.count_models("d") == 0
    a = _commit(store, tmp_path, "v1")
    _commit(store, tmp_path, "v2", b"other")
    store.create_model_state("prod")
    store.set_model_state("d", "v1", "prod")
    events = list(store.iter_log("d"))
    assert [(e.event, e.model_id) for e in events] == [("state-set", "v1"), ("commit", "v2"), ("commit", "v1")]
    assert [e.as_dict() for e in events] == [e.as_dict() for e in store.log("d")]
    head = store.history_head("d")
    store.delete_model("d", "v2")
    # a head read before: the history as it was then
    assert [e.event for e in store.iter_log("d", head)] == ["state-set", "commit", "commit"]
    assert next(store.iter_log("d")).event == "delete"
    assert store.count_models("d") == 1
    assert store.model_states("d", store.history_head("d")) == {"prod": {"v1": a["commit"]}}
    assert store.model_states("d", None) == {}
    assert store.model_commit("d", "v1") == str(a["commit"]).encode()
    assert store.model_commit("d", "v2") is None


def test_scratch_dir_is_in_the_store_and_removed(store: casstore.Store) -> None:
    with store.scratch_dir("x-") as work:
        assert os.path.isdir(work) and os.path.basename(work).startswith("x-")
        assert os.stat(work).st_dev == os.stat(store.path).st_dev
        assert os.path.commonpath([work, store.path]) == store.path
    assert not os.path.exists(work)


def test_remotes_and_status(store: casstore.Store, tmp_path: Path) -> None:
    other = tmp_path / "other"
    casstore.init_store(str(other))
    store.add_remote("origin", str(other))
    assert store.list_remotes() == {"origin": str(other)}
    assert store.resolve_remote() == store.resolve_remote("origin") == str(other)
    assert store.bucket_remote(str(other)) is None  # a path remote is no bucket
    _commit(store, tmp_path, "v1")
    st = store.remote_status("origin")
    assert st["domains"]["d"]["here_only"] == ["v1"] and not st["up_to_date"]
    store.push("origin")
    assert store.remote_status()["up_to_date"]
    assert store.remote_refs("origin").models == {"d": {"v1": store.model_commit("d", "v1")}}
    store.rename_remote("origin", "o2")
    store.set_remote_url("o2", str(tmp_path / "elsewhere"))
    assert store.list_remotes() == {"o2": str(tmp_path / "elsewhere")}
    store.remove_remote("o2")
    assert store.list_remotes() == {}
