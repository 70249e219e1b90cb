"""Dedup of a fine-tuned PyTorch model's second version: `make bench` (or run directly).

A transformer-ish torch model (embedding, 6 encoder layers of width 384, an untied output
head: about 17 M float32 parameters, ~68 MB) is committed as v1.  Then only its last
encoder layer and its head are trained for a few steps (everything else frozen) and the
result is committed as v2.  Reported for v2:

* casstore: what the commit added (its manifest's stats: ``chunks_new`` of
  ``chunks_total``, ``bytes_stored``) and the store's growth on disk;
* ``torch.save(v2.state_dict())``: the size of the file a plain checkpoint would take;
* modelstore 0.0.82 (``upload(domain, model=v2)`` into a file-system store, which stores
  ``torch.save`` of the state dict and of the whole module in a tar.gz): its growth on
  disk, if modelstore is importable here;
* the lower bound: the bytes of the tensors that changed.

    python benchmarks/bench_torch_dedup.py [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import casstore
from casstore.ops.stats import disk_bytes

VOCAB, WIDTH, LAYERS, FF = 8000, 384, 6, 1536


class TinyLM(torch.nn.Module):
    """Embedding -> transformer encoder -> vocabulary head (untied)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, WIDTH)
        layer = torch.nn.TransformerEncoderLayer(WIDTH, 6, FF, dropout=0.0, batch_first=True)
        self.encoder = torch.nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False)
        self.head = torch.nn.Linear(WIDTH, VOCAB)
        # TransformerEncoder deep-copies one layer: re-draw every tensor, or v1's six layers
        # would be identical and dedup against each other, which no trained model does
        with torch.no_grad():
            for p in self.parameters():
                p.normal_(0.0, 0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.encoder(self.embed(ids)))
        return out


def fine_tune_last_layers(model: TinyLM, steps: int = 3) -> None:
    """Train the last encoder layer and the head only, as a fine-tune of a frozen base does."""
    for p in model.parameters():
        p.requires_grad_(False)
    trainable = [*model.encoder.layers[-1].parameters(), *model.head.parameters()]
    for p in trainable:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(trainable, lr=1e-3)
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        ids = torch.randint(0, VOCAB, (4, 32), generator=gen)
        loss = torch.nn.functional.cross_entropy(model(ids).flatten(0, 1), ids.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()


def modelstore_growth(root: Path, domain: str, model: Any) -> int | None:
    """Bytes modelstore's file-system store grows by for ``upload(domain, model=model)``."""
    try:
        from modelstore import ModelStore
    except ImportError:
        return None
    ms = ModelStore.from_file_system(root_directory=str(root), create_directory=True)
    before = disk_bytes(str(root))
    ms.upload(domain, model=model)
    return disk_bytes(str(root)) - before


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", help="write the results here as JSON too")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    model = TinyLM()
    v1 = {k: v.clone() for k, v in model.state_dict().items()}
    params = sum(p.numel() for p in model.parameters())

    with tempfile.TemporaryDirectory(prefix="bench-torch-dedup-") as tmp:
        work = Path(tmp)
        os.environ.setdefault("CAS_AUTHOR", "bench <bench@example.invalid>")
        with casstore.open(work / "store") as store:
            t = time.perf_counter()
            m1 = store.commit_models("lm", model=model, model_id="v1")
            t1 = time.perf_counter() - t
            size_v1 = disk_bytes(str(work / "store"))
            fine_tune_last_layers(model)
            changed = [k for k, v in model.state_dict().items() if not torch.equal(v, v1[k])]
            changed_bytes = sum(model.state_dict()[k].numel() * model.state_dict()[k].element_size()
                                for k in changed)
            t = time.perf_counter()
            m2 = store.commit_models("lm", model=model, model_id="v2")
            t2 = time.perf_counter() - t
            size_v2 = disk_bytes(str(work / "store"))
            got = store.load("lm", "v2", model=TinyLM())
            assert all(torch.equal(a, b) for a, b in zip(got.state_dict().values(), model.state_dict().values(),
                                                         strict=True))
        torch.save(model.state_dict(), work / "v2.pt")
        torch_save = (work / "v2.pt").stat().st_size
        ms_v1 = modelstore_growth(work / "modelstore", "lm", TinyLM())
        ms_v2 = modelstore_growth(work / "modelstore", "lm", model)

    s1, s2 = m1["stats"], m2["stats"]
    res = {
        "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(), "torch": torch.__version__,
        "parameters": params, "tensors": len(v1), "changed_tensors": len(changed), "changed_bytes": changed_bytes,
        "v1": {"bytes_given": s1["bytes_given"], "bytes_stored": s1["bytes_stored"],
               "chunks_total": s1["chunks_total"], "chunks_new": s1["chunks_new"], "store_bytes": size_v1,
               "seconds": round(t1, 2)},
        "v2": {"bytes_given": s2["bytes_given"], "bytes_stored": s2["bytes_stored"],
               "chunks_total": s2["chunks_total"], "chunks_new": s2["chunks_new"],
               "store_growth": size_v2 - size_v1, "seconds": round(t2, 2)},
        "torch_save_v2": torch_save, "modelstore_v1_growth": ms_v1, "modelstore_v2_growth": ms_v2,
    }
    MB = 1e6
    print(f"model: {params / 1e6:.1f} M parameters in {len(v1)} tensors; v2 changes {len(changed)} tensors, "
          f"{changed_bytes / MB:.1f} MB")
    print(f"casstore v1: {s1['bytes_given'] / MB:.1f} MB given, {s1['bytes_stored'] / MB:.1f} MB stored, "
          f"{s1['chunks_new']}/{s1['chunks_total']} chunks new, {t1:.1f} s")
    print(f"casstore v2: {s2['bytes_stored'] / MB:.1f} MB stored, {s2['chunks_new']}/{s2['chunks_total']} chunks "
          f"new, store grew {(size_v2 - size_v1) / MB:.1f} MB, {t2:.1f} s")
    print(f"torch.save(v2.state_dict()): {torch_save / MB:.1f} MB "
          f"({torch_save / max(s2['bytes_stored'], 1):.1f}x casstore's v2)")
    if ms_v2 is not None:
        print(f"modelstore upload v2: store grew {ms_v2 / MB:.1f} MB ({ms_v2 / max(s2['bytes_stored'], 1):.1f}x)")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    json.dump(res, sys.stderr)
    print(file=sys.stderr)


if __name__ == "__main__":
    main()
