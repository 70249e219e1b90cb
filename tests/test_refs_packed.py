"""Ref reads and writes in a store whose refs are in a big ``packed-refs`` (issue 28).

``CheckedRefsContainer`` checks each version of ``packed-refs`` whole in C and
finds one ref by a search of its text instead of dulwich's parse with a Python
ref-name check per line; these tests hold it to dulwich's answers.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from dulwich.objects import ObjectID
from dulwich.refs import DiskRefsContainer, Ref
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import casstore
from casstore.errors import CorruptObjectError
from casstore.objects import refs as refs_module
from casstore.objects.refs import CheckedRefsContainer, Refs, fast_packed_text, model_ref

N = 20_000


def sha(n: int) -> ObjectID:
    return ObjectID(f"{n:040x}".encode())


def _packed(git_dir: str, lines: list[bytes], header: bool = True) -> None:
    with open(os.path.join(git_dir, "packed-refs"), "wb") as f:
        if header:
            f.write(b"# pack-refs with: peeled fully-peeled sorted \n")
        f.writelines(lines)


def _big(git_dir: str, extra: list[bytes] = ()) -> None:  # type: ignore[assignment]
    """``N`` packed model refs of domain d (``m00000``..), sorted as git writes them, and ``extra`` lines."""
    _packed(git_dir, sorted([sha(i + 1) + b" refs/cas/models/d/m%05d\n" % i for i in range(N)] + list(extra)))


@pytest.fixture
def git_dir(tmp_path: Path) -> str:
    return casstore.open(tmp_path / "s").repo.path


def test_ref_writes_over_a_big_packed_refs_do_not_check_every_name(git_dir: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """One claim, one compare-and-swap and one read in a store of 20,000 packed refs check a few names,
    not 20,000 (dulwich's parse checked each: 74 % of a pull's merge at 1,000,000 models)."""
    import dulwich.refs

    _big(git_dir)
    calls = []
    real = dulwich.refs.check_ref_format

    def counting(name: Ref) -> bool:
        calls.append(name)
        return real(name)

    monkeypatch.setattr(dulwich.refs, "check_ref_format", counting)
    refs = Refs(git_dir)
    assert refs.add_if_new(model_ref("d", "new"), sha(10**6))
    assert not refs.add_if_new(model_ref("d", "m00017"), sha(10**6))  # packed: taken
    assert refs.get(model_ref("d", "m19999")) == sha(20_000)
    assert refs.set_if_equals(model_ref("d", "m00005"), sha(6), sha(7))
    assert len(calls) < 50, len(calls)


def test_packed_then_loose_and_deleting_a_packed_ref(git_dir: str) -> None:
    _big(git_dir)
    refs = Refs(git_dir)
    name = model_ref("d", "m00042")
    assert refs.get(name) == sha(43)
    assert not refs.add_if_new(name, sha(1))  # the claim sees the packed ref
    assert not os.path.exists(os.path.join(git_dir, os.fsdecode(name)))
    assert not refs.set_if_equals(name, sha(1), sha(2))  # not what it holds
    # a loose ref over the packed one wins, and a fresh reader (another process) sees it too
    assert refs.set_if_equals(name, sha(43), sha(99))
    assert refs.get(name) == sha(99) == Refs(git_dir).get(name)
    assert DiskRefsContainer(git_dir).get_packed_refs()[name] == sha(43)  # still packed underneath
    assert refs.model_refs("d")["m00042"] == sha(99)
    # deleting removes the loose file and the packed line (dulwich rewrites packed-refs)
    assert not refs.remove_if_equals(name, sha(43))
    assert refs.remove_if_equals(name, sha(99))
    assert refs.get(name) is None and Refs(git_dir).get(name) is None
    assert name not in DiskRefsContainer(git_dir).get_packed_refs()
    assert "m00042" not in refs.model_refs("d") and len(refs.model_refs("d")) == N - 1
    # a packed ref deleted by its value alone; the ID can then be claimed again
    other = model_ref("d", "m00100")
    assert refs.remove_if_equals(other, sha(101))
    assert refs.get(other) is None
    assert refs.add_if_new(other, sha(5)) and Refs(git_dir).get(other) == sha(5)
    assert DiskRefsContainer(git_dir).as_dict() == Refs(git_dir).container.as_dict()


def test_a_packed_ref_where_a_directory_is_needed_is_refused(git_dir: str) -> None:
    _big(git_dir, [sha(7) + b" refs/cas/models/e\n"])
    refs = Refs(git_dir)
    with pytest.raises(NotADirectoryError):
        refs.set_if_equals(model_ref("e", "x"), sha(1), sha(2))


@pytest.mark.parametrize("line", [
    b"%s refs/cas/models/d/../../../../evil\n",
    b"%s refs/cas/models/d/a b\n",
    b"%s refs/cas/models/d/x.lock\n",
    b"%s refs/cas/models/d/.hidden\n",
    b"%s refs/cas/models/d/a@{1}\n",
    b"%s refs/cas/models/d/tab\there\n",
    b"%s refs/cas/models/d/end.\n",
    b"%s refs/cas/models/d/\n",
    b"%s\n",
    b"\n",
    b"nothex%s refs/cas/models/d/z\n",
    b"^%s\n",
])
def test_a_hostile_line_in_packed_refs_is_refused_by_reads_and_writes(git_dir: str, line: bytes) -> None:
    """One bad line among 20,000: every read and write names ``packed-refs`` and writes nothing."""
    bad = line % sha(3) if b"%s" in line else line
    _packed(git_dir, [sha(i + 1) + b" refs/cas/models/d/m%05d\n" % i for i in range(N)] + [bad], header=False)
    refs = Refs(git_dir)
    with pytest.raises(CorruptObjectError, match="packed-refs"):
        refs.get(model_ref("d", "m00001"))
    with pytest.raises(CorruptObjectError, match="packed-refs"):
        refs.add_if_new(model_ref("d", "new"), sha(1))
    with pytest.raises(CorruptObjectError, match="packed-refs"):
        refs.model_refs("d")
    assert not os.path.exists(os.path.join(git_dir, "refs", "cas", "models", "d", "new"))
    assert not os.path.exists(os.path.join(git_dir, "evil"))


def test_a_packed_refs_replaced_underneath_is_read_again(git_dir: str) -> None:
    _big(git_dir)
    refs = Refs(git_dir)
    assert refs.get(model_ref("d", "m00001")) == sha(2)
    other = DiskRefsContainer(git_dir)  # another process packing and deleting refs
    other.add_packed_refs({model_ref("d", "m00001"): sha(77), model_ref("d", "m00002"): None})
    assert refs.get(model_ref("d", "m00001")) == sha(77)
    assert refs.get(model_ref("d", "m00002")) is None
    assert refs.add_if_new(model_ref("d", "m00002"), sha(8))


def test_many_lookups_of_one_version_are_answered_alike(git_dir: str) -> None:
    """Past SEARCHES_BEFORE_PARSE searches the file is parsed whole: the answers do not change."""
    _big(git_dir, [sha(5) + b" refs/cas/models/d/m00003\n"])  # a duplicate: the last line wins, as in dulwich
    truth = DiskRefsContainer(git_dir).get_packed_refs()
    c = CheckedRefsContainer(git_dir)
    names = [Ref(b"refs/cas/models/d/m%05d" % i) for i in range(0, N + 50, 97)] + [Ref(b"refs/cas/models/d/m00003")]
    for _ in range(2):
        for name in names * 2:
            assert c.packed_ref(name) == truth.get(name), name
    assert c.get_packed_refs() == truth


# -- the check of a whole file against dulwich's parse ------------------------------------------------

_CHARS = st.sampled_from([b"a", b"b", b"Z", b"0", b"-", b"_", b".", b"/", b"@", b"{", b"~", b" ", b"\t", b"\\",
                          b"lock", b".lock", b"\x7f", b"\xc3\xa9", b"#", b"^", b":", b"\r"])
_NAMES = st.lists(_CHARS, min_size=1, max_size=12).map(lambda parts: b"refs/" + b"".join(parts))
_VALID_NAMES = st.from_regex(rb"\Arefs/cas/models/[a-z0-9]{1,6}/[A-Za-z0-9_-]{1,8}(\.[a-z]{1,3})?\Z")


def _dulwich_parse(tmp: str, text: bytes) -> dict[Ref, ObjectID] | None:
    with open(os.path.join(tmp, "packed-refs"), "wb") as f:
        f.write(text)
    try:
        return DiskRefsContainer(tmp).get_packed_refs()
    except Exception:  # noqa: BLE001 - any refusal of dulwich's counts as one
        return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.one_of(
    st.tuples(st.integers(0, 2**160 - 1), _NAMES).map(lambda t: b"%040x %s\n" % t),
    st.tuples(st.integers(0, 2**160 - 1), _VALID_NAMES).map(lambda t: b"%040x %s\n" % t),
    st.sampled_from([b"# pack-refs with: peeled fully-peeled sorted \n", b"\n", b"#..\n", b"^" + b"1" * 40 + b"\n",
                     b"A" * 40 + b" refs/x/y\n"]),
), max_size=8), header=st.booleans())
def test_the_quick_check_accepts_only_what_dulwich_accepts_and_reads_the_same(
        tmp_path: Path, lines: list[bytes], header: bool) -> None:
    text = (b"# pack-refs with: peeled fully-peeled sorted \n" if header else b"") + b"".join(lines)
    truth = _dulwich_parse(str(tmp_path), text)
    if fast_packed_text(text):
        assert truth is not None, text
        assert {Ref(n): ObjectID(s) for s, n in refs_module._PACKED_LINE.findall(text)} == truth
    c = CheckedRefsContainer(str(tmp_path))
    if truth is None:
        with pytest.raises(CorruptObjectError):
            c.get_packed_refs()
        return
    for name in list(truth) + [Ref(b"refs/x/y"), Ref(b"refs/cas/models/a/b")]:
        assert c.packed_ref(name) == truth.get(name)
    assert c.get_packed_refs() == truth


@settings(max_examples=100, deadline=None)
@given(names=st.lists(_VALID_NAMES, max_size=20))
def test_the_quick_check_takes_the_files_git_writes(names: list[bytes]) -> None:
    """Ref names as casstore and git write them, sorted, with git's header: never dulwich's slow parse."""
    text = b"# pack-refs with: peeled fully-peeled sorted \n" + b"".join(
        sha(i) + b" " + n + b"\n" for i, n in enumerate(sorted(set(names))))
    assert fast_packed_text(text)


# -- the claim of an ID stays atomic ------------------------------------------------------------------

CLAIM = r"""
import os, sys, time
from dulwich.objects import ObjectID
from casstore.objects.refs import Refs, model_ref
git_dir, go, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
refs = Refs(git_dir)
refs.get(model_ref("d", "m00000"))  # packed-refs read before the start, as a long-lived process has it
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.001)
won = [refs.add_if_new(model_ref("d", m), ObjectID(b"%040x" % n)) for m in ("same", "m00007")]
print(" ".join("WON" if w else "LOST" for w in won), flush=True)
"""


def test_racing_claims_of_one_id_over_a_big_packed_refs_exactly_one_wins(git_dir: str, tmp_path: Path) -> None:
    _big(git_dir)
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", CLAIM, git_dir, str(go), str(i + 1)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(5)]
    for p in procs:
        assert p.stdout is not None
        assert p.stdout.readline() == "ready\n", p.communicate(timeout=120)
    go.touch()
    results = [p.communicate(timeout=120) for p in procs]
    outs = [o.split() for o, _ in results]
    assert [o[0] for o in outs].count("WON") == 1, results  # exactly one process claims a new ID
    assert all(o[1] == "LOST" for o in outs), results  # and none an ID that is packed
    winner = [o[0] for o in outs].index("WON")
    assert Refs(git_dir).get(model_ref("d", "same")) == ObjectID(b"%040x" % (winner + 1))
