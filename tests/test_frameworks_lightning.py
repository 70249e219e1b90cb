"""pytorch-lightning: module state + hparams and trainer checkpoints, as safetensors and JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as L
import pytest
import pytorch_lightning
import torch

import casstore
from casstore.errors import FrameworkError
from casstore.frameworks import resolve


class Regressor(L.LightningModule):
    def __init__(self, hidden: int = 8, lr: float = 0.1, name: str = "reg", sizes: tuple[int, ...] = (1, 2)) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))

    def forward(self, x: Any) -> Any:
        return self.net(x)

    def training_step(self, batch: Any, i: int) -> Any:
        x, y = batch
        return torch.nn.functional.mse_loss(self(x), y)

    def configure_optimizers(self) -> Any:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def _data() -> tuple[Any, Any]:
    torch.manual_seed(0)
    X = torch.randn(32, 4)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, X.sum(1, keepdim=True)), batch_size=8)
    return X, loader


def _trainer(root: Path, epochs: int) -> Any:
    return L.Trainer(max_epochs=epochs, default_root_dir=str(root), logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Any]:
    X, loader = _data()
    module = Regressor(hidden=6, sizes=(3, 4))
    trainer = _trainer(tmp_path_factory.mktemp("lightning"), 2)
    trainer.fit(module, loader)
    return trainer, module.eval(), X


def test_trainer_and_module_round_trip_without_pickles(store: casstore.Store, fitted: tuple[Any, Any, Any],
                                                       tmp_path: Path) -> None:
    """The module comes back as state + hparams, built from its class or loaded into
    an instance with the same predictions; the trainer as its checkpoint, which resumes."""
    trainer, module, X = fitted
    assert resolve("model", module).name == "lightning"  # not pytorch
    meta = store.commit_models("pl", trainer=trainer, model=module, model_id="v1")
    assert sorted(f["path"] for f in meta["files"]) == [
        "model.hparams.json", "model.safetensors", "model.structure.json",
        "trainer.safetensors", "trainer.structure.json"]
    assert {k: (v["framework"], v["format"], v["executes_code"]) for k, v in meta["frameworks"].items()} == {
        "model": ("lightning", "lightning-module", False), "trainer": ("lightning", "lightning-checkpoint", False)}

    out = store.load("pl", "v1", allow_pickle=False)
    assert out["model"]["hyper_parameters"] == {"hidden": 6, "lr": 0.1, "name": "reg", "sizes": [3, 4]}
    for k, v in module.state_dict().items():
        assert torch.equal(out["model"]["state_dict"][k], v)
    ckpt = out["trainer"]
    assert (ckpt["epoch"], ckpt["global_step"]) == (2, 8)
    assert ckpt["optimizer_states"][0]["state"][0]["step"] == torch.tensor(8.0)

    built = store.load("pl", "v1", model=Regressor)["model"]
    assert type(built) is Regressor and built.hparams.hidden == 6 and not built.training
    filled = Regressor(hidden=6).eval()
    assert store.load("pl", "v1", model=filled)["model"] is filled
    with torch.no_grad():
        torch.testing.assert_close(built(X), module(X), rtol=0, atol=0)
        torch.testing.assert_close(filled(X), module(X), rtol=0, atol=0)

    # the restored checkpoint resumes training where it stopped (epoch 2, step 8)
    path = tmp_path / "restored.ckpt"
    torch.save(ckpt, path)
    resumed = _trainer(tmp_path, 3)
    resumed.fit(Regressor(hidden=6, sizes=(3, 4)), _data()[1], ckpt_path=str(path))
    assert resumed.global_step == 12


def test_next_to_a_pytorch_optimizer_in_one_commit(store: casstore.Store, fitted: tuple[Any, Any, Any]) -> None:
    _, module, X = fitted
    opt = torch.optim.SGD(module.parameters(), lr=0.5)
    store.commit_models("pl", model=module, optimizer=opt, model_id="m")
    out = store.load("pl", "m", allow_pickle=False)
    assert set(out) == {"lightning", "pytorch"}
    assert out["pytorch"]["param_groups"][0]["lr"] == 0.5
    fresh = Regressor(hidden=6).eval()
    fresh.load_state_dict(out["lightning"]["state_dict"])
    with torch.no_grad():
        torch.testing.assert_close(fresh(X), module(X), rtol=0, atol=0)


def test_hparams_that_are_not_data_are_refused(store: casstore.Store) -> None:
    class Odd(L.LightningModule):
        def __init__(self, when: Any) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.lin = torch.nn.Linear(2, 2)

    with pytest.raises(FrameworkError, match=r"model: hyper-parameter 'when.0' is a builtins.object"):
        store.commit_models("pl", model=Odd([object()]), model_id="odd")
    assert not store.model_exists("pl", "odd")


def test_an_unfitted_trainer_and_a_wrong_target_are_refused(store: casstore.Store, tmp_path: Path,
                                                           fitted: tuple[Any, Any, Any]) -> None:
    with pytest.raises(FrameworkError, match="trainer: the trainer's checkpoint cannot be stored"):
        store.commit_models("pl", trainer=_trainer(tmp_path, 1), model_id="t")
    _, module, _ = fitted
    store.commit_models("pl", model=module, model_id="m")
    with pytest.raises(FrameworkError, match="not a LightningModule class"):
        store.load("pl", "m", model=torch.nn.Linear)


def test_the_older_pytorch_lightning_package_goes_to_lightning_too(store: casstore.Store) -> None:
    class Old(pytorch_lightning.LightningModule):
        def __init__(self, width: int = 3) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.lin = torch.nn.Linear(width, 1)

    old = Old()
    assert resolve("model", old).name == "lightning"
    meta = store.commit_models("pl", model=old, model_id="old")
    assert meta["frameworks"]["model"]["library"] == {"name": "pytorch_lightning",
                                                      "version": pytorch_lightning.__version__}
    built = store.load("pl", "old", model=Old)
    assert torch.equal(built.lin.weight, old.lin.weight)


def test_importing_casstore_imports_none_of_these_libraries() -> None:
    import subprocess
    import sys

    libs = ("transformers", "lightning", "pytorch_lightning", "skorch", "torch")
    code = f"import sys, casstore, casstore.cli; print(sorted(m for m in {libs!r} if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"


def test_damaged_entries_are_corrupt_not_loaded(tmp_path: Path) -> None:
    import io

    from casstore.errors import CorruptObjectError
    from casstore.frameworks.lightning import CHECKPOINT_FORMAT, MODULE_FORMAT, LightningFramework

    fw = LightningFramework()
    saved = fw.save(Regressor(), "model", str(tmp_path))

    def paths(hparams: bytes) -> dict[str, Any]:
        files = {n: io.BytesIO(Path(p).read_bytes()) for n, p in saved.files.items()}
        files["model.hparams.json"] = io.BytesIO(hparams)
        return files

    assert fw.load(paths(b'{"hyper_parameters": {"hidden": 8}}'), "", MODULE_FORMAT)["hyper_parameters"] == {
        "hidden": 8}
    for bad in (b"[]", b'{"hyper_parameters": [1]}', b"not json"):
        with pytest.raises(CorruptObjectError, match="bad hyper-parameters"):
            fw.load(paths(bad), "", MODULE_FORMAT)
    with pytest.raises(CorruptObjectError, match="not a lightning format"):
        fw.load(paths(b"{}"), "", "pickle")
    with pytest.raises(FrameworkError, match="loads as a checkpoint dict"):
        fw.load_into(paths(b"{}"), "", CHECKPOINT_FORMAT, Regressor())
