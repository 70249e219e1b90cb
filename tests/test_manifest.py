"""Manifest schema: round trips, and strict rejection of hostile input."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from casstore import CorruptObjectError
from casstore.model.manifest import FileEntry, FrameworkEntry, Manifest, decode

KEY = b"k" * 32


def make(files: list[FileEntry] | None = None, meta: object = None) -> Manifest:
    files = files if files is not None else [FileEntry("model.joblib", "model", 10, b"b" * 32, b"x" * 16, [KEY], [10])]
    return Manifest("d", "v1", "2026-01-01T00:00:00+00:00", "A <a@b>",
                    [FrameworkEntry("model", "sklearn", "C", "joblib", [files[0].path], {"name": "sklearn"})]
                    if files else [], files, meta, {"python": "3"}, {"bytes_given": 10})


def test_round_trip() -> None:
    m = make(meta={"a": [1, 2.5, "x"], 3: None})
    assert decode(m.encode()) == m


json_like = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(json_like)
@settings(max_examples=100, deadline=None)
def test_metadata_round_trip(meta: object) -> None:
    m = make(meta={"v": meta})
    assert decode(m.encode()).extra_metadata == {"v": meta}


def tamper(**changes: object) -> bytes:
    doc = msgpack.unpackb(make().encode(), raw=False)
    for path, value in changes.items():
        target = doc
        keys = path.split("__")
        for k in keys[:-1]:
            target = target[int(k)] if k.isdigit() else target[k]
        target[keys[-1]] = value
    return msgpack.packb(doc, use_bin_type=True)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"version": 2}, "version 2 is not supported"),
        ({"schema": "other"}, "unknown schema"),
        ({"files__0__path": "../../etc/passwd"}, "unsafe file name"),
        ({"files__0__path": "/etc/passwd"}, "unsafe file name"),
        ({"files__0__path": "a/./b"}, "unsafe file name"),
        ({"files__0__path": "a\\b"}, "unsafe file name"),
        ({"files__0__path": "a\x00b"}, "unsafe file name"),
        ({"files__0__size": 11}, "add up"),
        ({"files__0__chunk_sizes": [5, 5]}, "chunk sizes but"),
        ({"files__0__chunk_sizes": [1 << 30]}, "bad chunk size"),
        ({"files__0__kind": "script"}, "unknown kind"),
        ({"files__0__blake3": b"short"}, "digest length"),
        ({"model_id": "../x"}, "invalid model ID"),
        ({"domain": "a/b"}, "invalid domain"),
        ({"frameworks__0__files": ["other"]}, "not a model file"),
        ({"files__0__size": "10"}, "type str"),
    ],
)
def test_hostile_manifests_rejected(changes: dict[str, object], message: str) -> None:
    with pytest.raises(CorruptObjectError, match=message):
        decode(tamper(**changes), "abc123")


def test_garbage_rejected() -> None:
    for data in (b"", b"\xc1", msgpack.packb([1, 2]), b"\x92" * 10000):
        with pytest.raises(CorruptObjectError):
            decode(data)


def test_duplicate_paths_rejected() -> None:
    f = FileEntry("a", "extra", 10, b"b" * 32, b"x" * 16, [KEY], [10])
    with pytest.raises(CorruptObjectError, match="duplicate path"):
        decode(make([make().files[0], f, f]).encode())


def test_a_key_twice_is_rejected() -> None:
    """issue 20 item 3: a manifest whose map repeats ``domain`` (the last would win) is refused,
    so the server hook may judge the names by the manifest's first bytes."""
    from casstore.remote.hook import MANIFEST_HEAD, MANIFEST_MID

    good = make().encode()
    # the hook's idea of how a manifest starts is what encode writes
    assert good.hex().startswith(MANIFEST_HEAD + msgpack.packb("d").hex() + MANIFEST_MID + msgpack.packb("v1").hex())
    doc = msgpack.unpackb(good, raw=False, strict_map_key=False)
    del doc["extra_metadata"]  # room for a second domain in an 11-entry map
    body = msgpack.packb(doc, use_bin_type=True)[1:]
    forged = bytes([0x8b]) + body + msgpack.packb("domain") + msgpack.packb("other")
    assert msgpack.unpackb(forged, raw=False, strict_map_key=False)["domain"] == "other"
    with pytest.raises(CorruptObjectError, match="a map has a key twice"):
        decode(forged)
