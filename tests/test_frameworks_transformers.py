"""transformers: save_pretrained directories per keyword, loaded with from_pretrained, no remote code."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # no hub here: everything is built locally, nothing is fetched

import torch  # noqa: E402
import transformers  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers, trainers  # noqa: E402

import casstore  # noqa: E402
from casstore.errors import CorruptObjectError, FrameworkError  # noqa: E402
from casstore.frameworks import resolve  # noqa: E402
from casstore.frameworks.transformers import FORMAT, TransformersFramework  # noqa: E402

WORDS = ["the cat sat on the mat", "a dog ate the bone", "the bird sang a song"]


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))


@pytest.fixture(scope="module")
def bert() -> tuple[Any, Any, Any]:
    """A 2-layer BERT with a WordPiece vocabulary of a few dozen tokens, built here."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(WORDS, trainers.WordPieceTrainer(
        vocab_size=60, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]")
    config = transformers.BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=32, max_position_embeddings=32)
    torch.manual_seed(0)
    model = transformers.BertForMaskedLM(config).eval()
    return model, tokenizer, config


def _logits(model: Any, tokenizer: Any) -> Any:
    with torch.no_grad():
        return model(**tokenizer(WORDS, return_tensors="pt", padding=True)).logits


def test_model_tokenizer_config_round_trip_as_data(store: casstore.Store, bert: tuple[Any, Any, Any]) -> None:
    """The three come back from their own directories; the model gives the same logits,
    the tokenizer the same ids, the config the same values, under allow_pickle=False."""
    model, tokenizer, config = bert
    assert resolve("model", model).name == "transformers"  # not pytorch: it is a Module too
    meta = store.commit_models("hf", model=model, tokenizer=tokenizer, config=config, model_id="v1")
    paths = sorted(f["path"] for f in meta["files"])
    assert {p.split("/")[0] for p in paths} == {"model", "tokenizer", "config"}
    assert "model/model.safetensors" in paths and "config/config.json" in paths
    assert not [p for p in paths if p.endswith((".bin", ".pt", ".pkl"))]
    assert {k: (v["framework"], v["format"], v["executes_code"]) for k, v in meta["frameworks"].items()} == {
        k: ("transformers", FORMAT, False) for k in ("model", "tokenizer", "config")}
    assert meta["frameworks"]["model"]["library"]["version"] == transformers.__version__

    out = store.load("hf", "v1", allow_pickle=False)
    assert set(out) == {"model", "tokenizer", "config"}
    assert type(out["model"]) is transformers.BertForMaskedLM
    assert not out["model"].training
    assert out["tokenizer"](WORDS)["input_ids"] == tokenizer(WORDS)["input_ids"]
    assert out["config"].to_dict() == config.to_dict()
    torch.testing.assert_close(_logits(out["model"], out["tokenizer"]), _logits(model, tokenizer), rtol=0, atol=0)


def test_loads_with_a_class_the_caller_passes(store: casstore.Store, bert: tuple[Any, Any, Any]) -> None:
    model, tokenizer, _ = bert
    store.commit_models("hf", model=model, tokenizer=tokenizer, model_id="v1")
    out = store.load("hf", "v1", model=transformers.AutoModelForMaskedLM, tokenizer=transformers.AutoTokenizer)
    assert type(out["model"]) is transformers.BertForMaskedLM
    torch.testing.assert_close(_logits(out["model"], out["tokenizer"]), _logits(model, tokenizer), rtol=0, atol=0)
    encoder = store.load("hf", "v1", model=transformers.BertModel)["model"]  # the head is dropped
    assert type(encoder) is transformers.BertModel
    torch.testing.assert_close(encoder.embeddings.word_embeddings.weight, model.bert.embeddings.word_embeddings.weight)
    with pytest.raises(FrameworkError, match="loads with a class"):
        store.load("hf", "v1", model=model)


def test_next_to_a_pytorch_optimizer_in_one_commit(store: casstore.Store, bert: tuple[Any, Any, Any]) -> None:
    model, tokenizer, _ = bert
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    store.commit_models("hf", model=model, tokenizer=tokenizer, optimizer=opt, model_id="m")
    out = store.load("hf", "m", allow_pickle=False)
    assert set(out) == {"transformers", "pytorch"}
    assert set(out["transformers"]) == {"model", "tokenizer"}
    assert out["pytorch"]["param_groups"][0]["lr"] == 1e-3
    torch.testing.assert_close(_logits(out["transformers"]["model"], tokenizer), _logits(model, tokenizer))


def _saved(obj: Any, kwarg: str, tmp_path: Path) -> dict[str, Any]:
    """An entry's files as load receives them (verified streams), keyed by name in the store."""
    d = tmp_path / "saved"
    d.mkdir()
    saved = TransformersFramework().save(obj, kwarg, str(d))
    return {name: io.BytesIO(Path(p).read_bytes()) for name, p in saved.files.items()}


def test_a_hostile_manifest_cannot_choose_the_class_or_the_paths(bert: tuple[Any, Any, Any], tmp_path: Path) -> None:
    """Only transformers' own classes are used; names that leave the directory are corrupt."""
    model, _, config = bert
    fw = TransformersFramework()
    paths = _saved(config, "config", tmp_path)
    with pytest.raises(FrameworkError, match="os.system is not a transformers class"):
        fw.load(paths, "os.system", FORMAT)
    with pytest.raises(CorruptObjectError, match="not a transformers model, tokenizer"):
        fw.load(paths, "transformers.utils.logging.get_logger", FORMAT)
    with pytest.raises(CorruptObjectError, match="not a transformers format"):
        fw.load(paths, "transformers.models.bert.configuration_bert.BertConfig", "pickle")
    escape = {"config/../../x.json": io.BytesIO(b"{}")}
    with pytest.raises(CorruptObjectError, match="leaves its directory"):
        fw.load(escape, "transformers.models.bert.configuration_bert.BertConfig", FORMAT)
    with pytest.raises(CorruptObjectError, match="one save_pretrained directory"):
        fw.load({"config.json": io.BytesIO(b"{}")}, "transformers.models.bert.configuration_bert.BertConfig",
                FORMAT)


def test_custom_code_next_to_the_weights_never_runs(bert: tuple[Any, Any, Any], tmp_path: Path) -> None:
    """A model directory whose config points at its own Python file (auto_map) loads
    with transformers' class; the file is not imported, even through AutoModel."""
    model, _, _ = bert
    paths = _saved(model, "model", tmp_path)
    marker = tmp_path / "ran"
    cfg = json.loads(paths["model/config.json"].getvalue())
    cfg["auto_map"] = {"AutoModel": "evil.EvilModel", "AutoModelForMaskedLM": "evil.EvilModel"}
    paths["model/config.json"] = io.BytesIO(json.dumps(cfg).encode())
    paths["model/evil.py"] = io.BytesIO(f"open({str(marker)!r}, 'w').write('x')\n".encode())
    fw = TransformersFramework()
    loaded = fw.load(paths, "transformers.models.bert.modeling_bert.BertForMaskedLM", FORMAT)
    assert type(loaded) is transformers.BertForMaskedLM
    for p in paths.values():
        p.seek(0)
    auto = fw.load_into(paths, "", FORMAT, transformers.AutoModelForMaskedLM)
    assert type(auto) is transformers.BertForMaskedLM
    assert not marker.exists()


def test_an_image_processor_round_trips(store: casstore.Store) -> None:
    import numpy as np

    processor = transformers.ViTImageProcessorPil(size={"height": 8, "width": 8}, image_mean=[0.2, 0.3, 0.4])
    meta = store.commit_models("hf", processor=processor, model_id="p")
    assert [f["path"] for f in meta["files"]] == ["processor/preprocessor_config.json"]
    loaded = store.load("hf", "p", allow_pickle=False)
    assert type(loaded) is type(processor)
    image = (np.random.default_rng(0).random((3, 16, 16)) * 255).astype("uint8")
    np.testing.assert_array_equal(loaded(image, return_tensors="np")["pixel_values"],
                                  processor(image, return_tensors="np")["pixel_values"])


def test_without_transformers_loading_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers now raises ImportError
    with pytest.raises(FrameworkError, match=r"pip install -e '[^']*\[transformers\]'"):
        TransformersFramework().load({}, "transformers.models.bert.modeling_bert.BertModel", FORMAT)


_LOAD_WITH_AUTO_CLASSES = """
import os, sys
if sys.argv[2] == "closed":
    sys.stdin.close()
    os.close(0)
import casstore, transformers
s = casstore.open(sys.argv[1])
for auto in (transformers.AutoProcessor, transformers.AutoImageProcessor):
    try:
        p = s.load("hf", "p", allow_pickle=False, processor=auto)
        print("loaded", type(p).__module__, type(p).__name__)
    except casstore.FrameworkError as e:
        print("refused", str(e)[:200])
"""


@pytest.mark.parametrize("stdin", ["y", "closed"])
def test_a_processor_with_custom_code_never_runs_it_nor_asks(store: casstore.Store, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch, stdin: str) -> None:
    """issue 20 item 1: a real image processor registered for AutoImageProcessor, whose
    save_pretrained directory carries ``auto_map`` and its module's ``.py`` file: loading it
    through AutoProcessor / AutoImageProcessor (a fresh process, stdin answering "y" or closed)
    never imports that file and never asks; the file is stored and downloaded all the same."""
    marker = tmp_path / "ran"
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    (code_dir / "evilproc.py").write_text(
        f"with open({str(marker)!r}, 'a') as f:\n    f.write('ran\\n')\n"
        "from transformers import ViTImageProcessorPil\n\n\n"
        "class EvilImageProcessor(ViTImageProcessorPil):\n    pass\n")
    monkeypatch.syspath_prepend(str(code_dir))
    import evilproc  # the committer's own code: imported here, once

    evilproc.EvilImageProcessor.register_for_auto_class("AutoImageProcessor")
    meta = store.commit_models("hf", processor=evilproc.EvilImageProcessor(size={"height": 8, "width": 8}),
                               model_id="p")
    paths = {f["path"] for f in meta["files"]}
    assert "processor/evilproc.py" in paths
    config = json.loads((Path(store.download(str(tmp_path / "out"), "hf", "p")) / "processor"
                         / "preprocessor_config.json").read_text())
    assert config["auto_map"] == {"AutoImageProcessor": "evilproc.EvilImageProcessor"}
    assert marker.read_text() == "ran\n"
    del sys.modules["evilproc"]

    r = subprocess.run([sys.executable, "-c", _LOAD_WITH_AUTO_CLASSES, str(store.path), stdin],
                       input="y\n" if stdin == "y" else None, capture_output=True, text=True, timeout=300,
                       cwd=tmp_path, env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Do you wish to run the custom code" not in r.stdout + r.stderr
    assert marker.read_text() == "ran\n", "evilproc.py ran at load"
    lines = r.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith(("loaded transformers.", "refused")) for line in lines), lines


@pytest.mark.parametrize("auto", ["transformers.models.auto.processing_auto.AutoProcessor",
                                  "transformers.models.auto.image_processing_auto.AutoImageProcessor",
                                  "transformers.models.auto.feature_extraction_auto.AutoFeatureExtractor"])
def test_a_hostile_manifest_naming_an_auto_processor_runs_no_code(tmp_path: Path, auto: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The class recorded in a hostile manifest is an Auto factory and the config's
    ``auto_map`` names a file of the entry for every Auto class: nothing is imported, nothing asked."""
    processor = transformers.ViTImageProcessorPil(size={"height": 8, "width": 8})
    paths = _saved(processor, "processor", tmp_path)
    marker = tmp_path / "ran"
    cfg = json.loads(paths["processor/preprocessor_config.json"].getvalue())
    cfg["auto_map"] = {k: "evil.EvilProcessor" for k in ("AutoProcessor", "AutoImageProcessor",
                                                         "AutoFeatureExtractor")}
    paths["processor/preprocessor_config.json"] = io.BytesIO(json.dumps(cfg).encode())
    paths["processor/evil.py"] = io.BytesIO(
        f"open({str(marker)!r}, 'w').write('x')\nfrom transformers import ViTImageProcessorPil as EvilProcessor\n"
        .encode())
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    try:
        loaded = TransformersFramework().load(paths, auto, FORMAT)
        assert type(loaded).__module__.startswith("transformers.")
    except (FrameworkError, ValueError, OSError):
        pass  # refusing is fine too; running evil.py is not
    assert not marker.exists()


def test_a_config_naming_a_hub_kernel_is_refused(bert: tuple[Any, Any, Any], tmp_path: Path) -> None:
    """``attn_implementation: "org/kernel"`` makes transformers fetch and run a hub kernel: refused."""
    model, _, _ = bert
    paths = _saved(model, "model", tmp_path)
    cfg = json.loads(paths["model/config.json"].getvalue())
    cfg["attn_implementation"] = "kernels-community/evil"
    paths["model/config.json"] = io.BytesIO(json.dumps(cfg).encode())
    with pytest.raises(CorruptObjectError, match="hub kernel 'kernels-community/evil'"):
        TransformersFramework().load(paths, "transformers.models.bert.modeling_bert.BertForMaskedLM", FORMAT)
