"""What a ``cas`` process imports: start-up decides the cost of one small commit per process.

A small commit, ``cas log``, ``cas ls`` and ``cas --version`` never call numpy, the
remote code, ``cas serve`` or the modelstore layer, so they do not import them
(issue 26, target 5: numpy alone was a third of a process's start-up).  The numpy-free
paths that make this true (a binary search of the chunk index for a few keys, a pack
roll-up without numpy) must agree with the numpy ones they stand in for.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from casstore.cli import COMMANDS, _named_command
from casstore.objects import chunkindex
from casstore.objects.chunkindex import ChunkIndex, IndexEntry, write_cidx
from casstore.objects.packidx import PackIdx, pack_order
from casstore.objects.packs import check_bounds
from casstore.objects.packwriter import PackWriter, encode_entry
from casstore.util.config import get_setting, write_value

#: what no small commit, log, ls or --version needs
NOT_NEEDED = ("numpy", "casstore.remote", "casstore.serve", "casstore.compat.modelstore",
              "casstore.compat.importer", "hypothesis", "importlib.metadata", "dulwich.client", "tarfile",
              "sklearn", "tqdm", "socket", "casstore.cli.cmd_serve", "casstore.cli.cmd_gc")
#: what a small commit does not need either: the Store's methods that use these import them
#: (issue 23 item 2; ``cas log`` shows signatures, so it needs the signing modules)
COMMIT_NOT_NEEDED = (*NOT_NEEDED, "casstore.actions.loading", "casstore.actions.remotes",
                     "casstore.actions.restoring", "casstore.actions.signing", "casstore.actions.synclog",
                     "casstore.model.deletion", "casstore.model.openfile", "casstore.model.signatures",
                     "casstore.model.stateops", "casstore.modelinfo", "casstore.ops.fsck", "casstore.ops.gc",
                     "casstore.ops.loadcache", "casstore.ops.stats")

#: runs ``cas ARGS...`` in this process, then prints the modules it imported that it should not have
RUN = """
import json, sys
import casstore.cli
sys.argv[0] = "cas"
try:
    rc = casstore.cli.main(sys.argv[1:])
finally:  # also after argparse's SystemExit (--version)
    sys.stdout.flush()
    print(json.dumps([m for m in sys.modules if m.startswith({not_needed!r})]), file=sys.stderr)
sys.exit(rc)
"""


def _cas(*args: str, not_needed: tuple[str, ...] = NOT_NEEDED) -> list[str]:
    """Run ``cas ARGS`` in a fresh process; the modules in ``not_needed`` it imported."""
    p = subprocess.run([sys.executable, "-c", RUN.format(not_needed=not_needed), *args],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    imported: list[str] = json.loads(p.stderr.strip().splitlines()[-1])
    return imported


def test_small_commits_log_and_ls_import_no_numpy_remote_or_serve(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    assert _cas("init", store) == []
    # one process per commit, as a script committing many small models does: the later
    # commits look their chunks up in the earlier packs and roll the small packs up
    for i in range(5):
        model = tmp_path / f"model{i}.bin"
        model.write_bytes(os.urandom(10_000 + 20_000 * i))
        assert _cas("--store", store, "commit", "d", str(model), "--id", f"m{i}",
                    not_needed=COMMIT_NOT_NEEDED) == [], f"commit {i}"
    assert _cas("--store", store, "commit", "d", str(tmp_path / "model0.bin"), "--id", "again",
                not_needed=COMMIT_NOT_NEEDED) == []
    assert len(os.listdir(os.path.join(store, "objects", "pack"))) < 2 * 6, "the small packs were rolled up"
    assert _cas("--store", store, "log", "d") == []
    assert _cas("--store", store, "ls", "d") == []
    # --version (like --help) builds every command's parser, still without numpy and the rest
    assert [m for m in _cas("--version") if not m.startswith(("casstore.cli.", "socket"))] == []  # cmd_serve: socket
    _cas("--store", store, "fsck")  # exits 0: the store is clean (fsck itself may use numpy)


def _sidecar_store(tmp_path: Path, packs: int, per_pack: int) -> tuple[ChunkIndex, list[IndexEntry]]:
    (tmp_path / "pack").mkdir()
    (tmp_path / "cidx").mkdir()
    rng = np.random.default_rng(7)
    entries = []
    for p in range(packs):
        mine = [IndexEntry(rng.bytes(32), rng.bytes(20), 12 + 10 * i, 10, 5) for i in range(per_pack)]
        if p == 1:  # a key sharing an 8-byte prefix with one of pack 0's, and a key also in pack 0
            mine[0] = IndexEntry(entries[0].key[:8] + b"\x00" * 24, b"\x07" * 20, 12, 10, 5)
            mine[1] = IndexEntry(entries[1].key, b"\x08" * 20, 22, 10, 5)
        (tmp_path / "pack" / f"pack-{p}.idx").write_bytes(b"")
        (tmp_path / "pack" / f"pack-{p}.pack").write_bytes(bytes(12 + 10 * per_pack + 20))
        write_cidx(str(tmp_path / "cidx" / f"pack-{p}.cidx"), b"\x00" * 20, mine)
        entries += mine
    idx = ChunkIndex(str(tmp_path / "cidx"), str(tmp_path / "pack"))
    idx.refresh()
    return idx, entries


def test_few_key_lookups_find_what_the_vectorised_lookup_finds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    idx, entries = _sidecar_store(tmp_path, 3, 40)
    keys = [e.key for e in entries] + [b"\x00" * 32, b"\xff" * 32, entries[0].key[:8] + b"\x01" * 24]
    first = idx.lookup([entries[1].key])[0]  # a key in two packs
    assert first is not None
    idx.distrust(first, entries[1].key)
    monkeypatch.setattr(chunkindex, "NUMPY_BATCH", 10 ** 9)
    few = [idx.lookup([k])[0] for k in keys]
    assert idx.lookup(keys) == few
    monkeypatch.setattr(chunkindex, "NUMPY_BATCH", 0)
    assert idx.lookup(keys) == few
    found = [loc is not None for loc in few]
    assert found == [True] * len(entries) + [False] * 3
    assert few[1] is not None and few[1].pack != first.pack, "a distrusted copy is passed over for the other"
    # the end of a sidecar's last entry, computed with and without numpy
    for sc in idx.sidecars:
        assert sc.end == int((sc.entries["offset"] + sc.entries["length"]).max()) + 20


def test_pack_bounds_without_numpy_equal_entry_bounds(tmp_path: Path) -> None:
    pack_dir = tmp_path / "pack"
    pack_dir.mkdir()
    blobs = [os.urandom(n) for n in (0, 1, 50, 3000, 7, 123)]
    with PackWriter(str(pack_dir), str(tmp_path), len(blobs)) as w:
        for b in blobs:
            w.add(encode_entry(b, level=1))
        name = w.finish()
    size = os.path.getsize(pack_dir / (name + ".pack"))
    idx = PackIdx(str(pack_dir / (name + ".idx")))
    try:
        starts, ends = idx.bounds(size)
        np_starts, np_ends = idx.entry_bounds(size)
    finally:
        idx.close()
    assert starts == np_starts.tolist() and ends == np_ends.tolist()
    assert pack_order(starts) == np_starts.argsort(kind="stable").tolist()
    assert check_bounds(starts, ends, size) and check_bounds(np_starts, np_ends, size)
    assert not check_bounds([12, 12], [12, 80], 100) and not check_bounds([4], [80], 100)
    assert not check_bounds([12], [90], 100)


@pytest.mark.parametrize(("argv", "command"), [
    (["commit", "d", "f"], "commit"),
    (["--store", "commit", "ls", "d"], "ls"),  # --store's value is not the command
    (["--store=s", "-vv", "import-modelstore", "x"], "import_modelstore"),
    (["-v", "convert-layout"], "convert_layout"),
    (["comit", "d", "f"], None),  # mistyped: every parser, for "did you mean"
    (["--version"], None),
    (["-h", "commit"], None),
    ([], None),
])
def test_only_the_command_run_gets_its_parser_built(argv: list[str], command: str | None) -> None:
    assert _named_command(argv) == command
    assert command is None or command in COMMANDS


def test_a_setting_changed_on_disk_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings are parsed once per file version (a commit asks for about eight): a change by
    ``cas config``, git, or an editor writing in place is seen at the next read."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-user-config"))
    cfg = str(tmp_path / "config")
    write_value(cfg, "cas.sklearnFormat", "joblib")
    assert get_setting(cfg, "cas.sklearnFormat") == "joblib"
    assert get_setting(cfg, "cas.sklearnFormat") == "joblib"  # the parse shared
    write_value(cfg, "cas.sklearnFormat", "skops")  # temp file and rename
    assert get_setting(cfg, "cas.sklearnFormat") == "skops"
    with open(cfg, "r+") as f:  # rewritten in place, same size
        text = f.read()
        f.seek(0)
        f.write(text.replace("skops", "SKOPS"))
    assert get_setting(cfg, "cas.sklearnFormat") == "SKOPS"
    os.unlink(cfg)
    assert get_setting(cfg, "cas.sklearnFormat") is None
