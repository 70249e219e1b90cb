"""gensim models (kwarg ``model``: ``Word2Vec``, ``KeyedVectors``, any ``gensim.utils.SaveLoad``).

Two formats:

- ``word2vec-binary`` (``model.w2v.bin``), for a plain ``KeyedVectors`` whose keys
  are strings without whitespace and whose vectors are float32: the binary format of
  the original C word2vec tool (a ``"<count> <size>"`` header line, then each key, a
  space and its vector as little-endian float32), keys in index order.  casstore
  parses it itself, with bounds checks, so loading runs no code;
  ``KeyedVectors.load_word2vec_format(path, binary=True)`` reads the same file.
  Only the keys and vectors are kept (per-key attributes such as ``count`` are not).
- ``gensim-pickle`` (``model.gensim`` plus one ``model.gensim.<attr>.npy`` per large
  array), for everything else: gensim's own ``save``, which is a pickle.  Loading it
  executes code from the store; ``load(..., allow_pickle=False)`` refuses it.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from typing import Any, BinaryIO

from ..errors import CorruptObjectError
from .base import Framework, Saved, class_name, instance_of, library_version, read_bytes, require, spool

PICKLE = "gensim-pickle"
W2V = "word2vec-binary"
# what gensim's save names the pickle and its separately stored arrays
_PICKLE_NAME = "model.gensim"
_ARRAY_NAME = re.compile(r"model\.gensim\.[A-Za-z0-9_.]+\.npy\Z")
_HEADER = re.compile(rb"(\d{1,12}) (\d{1,9})\s*\n")
_WHITESPACE = re.compile(r"\s")


def _is_plain_vectors(obj: Any) -> bool:
    """Whether the word2vec format holds all of ``obj``'s keys and vectors exactly."""
    if class_name(obj) != "gensim.models.keyedvectors.KeyedVectors" or str(obj.vectors.dtype) != "float32":
        return False
    if len(obj.index_to_key) == 0:
        return False
    return all(isinstance(k, str) and k and not _WHITESPACE.search(k) for k in obj.index_to_key)


def _write_w2v(obj: Any, path: str) -> None:
    vectors = obj.vectors.astype("<f4", copy=False)
    with open(path, "wb") as f:
        f.write(b"%d %d\n" % vectors.shape)
        for i, key in enumerate(obj.index_to_key):
            f.write(key.encode("utf-8") + b" ")
            f.write(vectors[i].tobytes())


def _read_w2v(data: bytes, name: str, gensim: Any) -> Any:
    """Parse a word2vec binary file, refusing anything that does not add up (the store may be hostile)."""
    import numpy as np

    head = _HEADER.match(data)
    if not head:
        raise CorruptObjectError(name, "no word2vec header line '<count> <size>'")
    count, size = int(head.group(1)), int(head.group(2))
    width = 4 * size
    # each entry is at least one key byte, a space and the vector: a header cannot claim more than the file holds
    if size == 0 or count * (width + 2) > len(data):
        raise CorruptObjectError(name, f"header says {count} vectors of size {size}: more than the file holds")
    keys: list[str] = []
    vectors = np.empty((count, size), dtype=np.float32)
    pos = head.end()
    for i in range(count):
        while data[pos:pos + 1] == b"\n":  # the C tool writes a newline after each vector
            pos += 1
        space = data.find(b" ", pos)
        if space <= pos or space + 1 + width > len(data):
            raise CorruptObjectError(name, f"entry {i} is truncated")
        try:
            keys.append(data[pos:space].decode("utf-8"))
        except UnicodeDecodeError:
            raise CorruptObjectError(name, f"key {i} is not UTF-8") from None
        vectors[i] = np.frombuffer(data, dtype="<f4", count=size, offset=space + 1)
        pos = space + 1 + width
    if data[pos:].strip(b"\n"):
        raise CorruptObjectError(name, "bytes after the last vector")
    if len(set(keys)) != count:
        raise CorruptObjectError(name, "a key appears twice")
    kv = gensim.models.KeyedVectors(size, count=0, dtype=np.float32)
    kv.add_vectors(keys, vectors)
    return kv


class GensimFramework(Framework):
    name = "gensim"
    kwargs = ("model",)
    extra = "gensim"
    data_formats = (W2V,)
    safe_alternative = ("download() the files instead of loading them, or commit the model's KeyedVectors "
                        "(model=w2v.wv), which are stored as data")
    w2v_name = "model.w2v.bin"

    def matches(self, obj: Any) -> bool:
        return instance_of(obj, "gensim.utils", "SaveLoad")

    def save(self, obj: Any, kwarg: str, directory: str) -> Saved:
        if _is_plain_vectors(obj):
            path = os.path.join(directory, self.w2v_name)
            _write_w2v(obj, path)
            return Saved(W2V, {self.w2v_name: path}, library_version("gensim"), class_name(obj))
        obj.save(os.path.join(directory, _PICKLE_NAME))
        names = sorted(os.listdir(directory))
        return Saved(PICKLE, {n: os.path.join(directory, n) for n in names}, library_version("gensim"),
                     class_name(obj))

    def load(self, paths: dict[str, str | BinaryIO], cls: str, format: str) -> Any:
        require("gensim.models", self.extra)
        gensim = sys.modules["gensim"]
        if format == W2V:
            return _read_w2v(read_bytes(paths[self.w2v_name]), self.w2v_name, gensim)
        if format != PICKLE:
            raise CorruptObjectError(format, "not a gensim format this casstore loads")
        for n in paths:
            if n != _PICKLE_NAME and not _ARRAY_NAME.match(n):
                raise CorruptObjectError(n, "not a file name gensim's save writes")
        # gensim reads the pickle and its arrays by path, side by side: spool them to a private directory
        with tempfile.TemporaryDirectory(prefix="casstore-gensim-") as d:
            for n, src in paths.items():
                spool(src, os.path.join(d, n))
            return gensim.utils.SaveLoad.load(os.path.join(d, _PICKLE_NAME))
