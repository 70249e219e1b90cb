"""``parse_refs``: a remote's model refs are checked all at once, with every refusal of a ref at a time."""

from __future__ import annotations

import os

import pytest
from dulwich.objects import ObjectID
from dulwich.refs import Ref
from hypothesis import given, settings
from hypothesis import strategies as st

from casstore import CorruptObjectError
from casstore.remote.report import RemoteRefs, _parse_one_by_one, parse_refs

SHA = b"0123456789abcdef0123456789abcdef01234567"


def one_by_one(refs: dict[bytes, bytes]) -> RemoteRefs | str:
    """What checking one ref at a time gives: the parse, or the message of its refusal."""
    try:
        return _parse_one_by_one([(Ref(n), ObjectID(s)) for n, s in refs.items() if n.startswith(b"refs/cas/")], "r",
                                 RemoteRefs())
    except CorruptObjectError as e:
        return str(e)


def together(refs: dict[bytes, bytes]) -> RemoteRefs | str:
    try:
        return parse_refs(refs, "r")  # type: ignore[arg-type]
    except CorruptObjectError as e:
        return str(e)


#: pieces of names that break (or nearly break) each rule of check_name, and of the ref framing
PIECES = ["a", "b", "Z9", "-", "_", ".", "..", ".lock", "lock", "/", "\n", " ", "+", "%", "é", "\u202e", "x" * 127]
NAMES = st.lists(st.sampled_from(PIECES), min_size=0, max_size=5).map("".join)
VALUES = st.one_of(st.just(SHA), st.sampled_from([SHA.upper(), SHA[:39], SHA + b"0", SHA[:20] + b"\n" + SHA[21:],
                                                  b"", b"g" * 40]))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["refs/cas/models/", "refs/cas/domains/", "refs/cas/", "refs/heads/"]),
                          NAMES, NAMES, VALUES), max_size=6))
def test_the_check_of_all_refs_at_once_gives_what_the_check_of_one_at_a_time_gives(
        refs: list[tuple[str, str, str, bytes]]) -> None:
    advert = {(prefix + domain + ("/" + mid if prefix == "refs/cas/models/" else "")).encode(): value
              for prefix, domain, mid, value in refs}
    assert together(advert) == one_by_one(advert)


@pytest.mark.parametrize("bad", [b"refs/cas/models/d/a+b", b"refs/cas/models/d/x/y", b"refs/cas/models/bad%dom/x",
                                 b"refs/cas/models/d/.hidden", b"refs/cas/models/d/x.lock", b"refs/cas/models/d/x.",
                                 b"refs/cas/models/d/a..b", b"refs/cas/models/d/" + b"x" * 129,
                                 b"refs/cas/models/d/\xc3\xa9", b"refs/cas/models//x", b"refs/cas/models/d/",
                                 b"refs/cas/models/d/a\n" + SHA + b" refs/cas/models/d/b"])
def test_one_hostile_name_among_many_is_refused_by_name(bad: bytes) -> None:
    advert = {b"refs/cas/models/d/m%05d" % i: os.urandom(20).hex().encode() for i in range(5000)}
    advert[bad] = SHA
    advert[b"refs/cas/models/e/m00001"] = SHA
    with pytest.raises(CorruptObjectError, match="bad ref name") as e:
        parse_refs(advert, "r")  # type: ignore[arg-type]
    assert repr(bad)[2:-1] in str(e.value)


def test_one_bad_value_among_many_is_refused() -> None:
    advert = {b"refs/cas/models/d/m%05d" % i: os.urandom(20).hex().encode() for i in range(5000)}
    advert[b"refs/cas/models/d/m00042"] = SHA[:39] + b"\n"
    with pytest.raises(CorruptObjectError, match="bad object id"):
        parse_refs(advert, "r")  # type: ignore[arg-type]


def test_a_big_advert_is_parsed_whole() -> None:
    advert = {b"refs/cas/models/d%d/m%05d" % (i % 3, i): os.urandom(20).hex().encode() for i in range(30000)}
    advert[b"refs/cas/domains/d0"] = SHA
    advert[b"refs/cas/states"] = SHA
    advert[b"refs/heads/main"] = SHA
    advert[b"HEAD"] = SHA
    got = parse_refs(advert, "r")  # type: ignore[arg-type]
    assert got == one_by_one(advert)
    assert sum(len(t) for t in got.models.values()) == 30000
    assert got.histories == {"d0": SHA} and got.states == SHA
