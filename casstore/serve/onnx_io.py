"""An ONNX model's graph inputs and outputs, read from the protobuf wire format as it streams.

``onnx.load`` would parse the whole file, weights included (gigabytes for a large
model).  This reads only what the preview needs: it walks the fields of
``ModelProto`` and its ``graph`` (``GraphProto``), seeks past every field it does
not show (nodes, initializers, docs), and decodes ``input`` and ``output``
(``ValueInfoProto``: name, element type, shape).  Initializers listed among the
inputs (older exporters do that for weights) are left out by name.  Nothing is run,
nothing is imported from onnx; a malformed file gives an ``error``, never an exception.

Field numbers are those of onnx.proto (ModelProto.graph = 7; GraphProto.initializer
= 5, input = 11, output = 12; ValueInfoProto.name = 1, type = 2; TypeProto.tensor_type
= 1; Tensor.elem_type = 1, shape = 2; TensorShapeProto.dim = 1; Dimension.dim_value = 1,
dim_param = 2; TensorProto.name = 8).
"""

from __future__ import annotations

from typing import Any

#: TensorProto.DataType
ELEM_TYPES = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 8: "string",
              9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 14: "complex64",
              15: "complex128", 16: "bfloat16", 17: "float8e4m3fn", 18: "float8e4m3fnuz", 19: "float8e5m2",
              20: "float8e5m2fnuz", 21: "uint4", 22: "int4", 23: "float4e2m1"}
#: bounds on what one preview decodes (a hostile file cannot make it loop for long)
MAX_FIELDS = 2_000_000
MAX_SHOWN = 1000
MAX_MESSAGE = 1 << 20  # an input/output description larger than this is not decoded


class _Malformed(ValueError):
    pass


def _varint(f: Any) -> int | None:
    """The next varint, or None at the end of the file."""
    shift = 0
    value: int = 0
    while True:
        b = f.read(1)
        if not b:
            if shift:
                raise _Malformed("the file ends inside a varint")
            return None
        value |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            return value
        shift += 7
        if shift > 63:
            raise _Malformed("a varint longer than 10 bytes")


def _fields(f: Any, end: int, budget: list[int]) -> Any:
    """(field number, wire type, value or length) up to offset ``end``; length-delimited
    fields are left at their start for the caller to read or skip."""
    while f.tell() < end:
        budget[0] -= 1
        if budget[0] < 0:
            raise _Malformed(f"more than {MAX_FIELDS} fields")
        key = _varint(f)
        if key is None:
            raise _Malformed("the file ends inside a message")
        number, wire = key >> 3, key & 7
        if wire == 0:
            yield number, wire, _varint(f)
        elif wire == 1:
            f.seek(8, 1)
        elif wire == 5:
            f.seek(4, 1)
        elif wire == 2:
            n = _varint(f)
            if n is None or f.tell() + n > end:
                raise _Malformed("a field runs past the end of its message")
            yield number, wire, n
        else:
            raise _Malformed(f"wire type {wire} (groups or garbage)")


def _skip(f: Any, n: int) -> None:
    f.seek(n, 1)


def _sub(f: Any, n: int) -> memoryview:
    if n > MAX_MESSAGE:
        raise _Malformed(f"an input or output description of {n} bytes")
    data = f.read(n)
    if len(data) != n:
        raise _Malformed("the file ends inside a message")
    return memoryview(data)


class _Buf:
    """A bytes message read as a file (the small messages decoded whole)."""

    def __init__(self, data: memoryview) -> None:
        self.data, self.pos = data, 0

    def read(self, n: int) -> bytes:
        out = bytes(self.data[self.pos:self.pos + n])
        self.pos += len(out)
        return out

    def tell(self) -> int:
        return self.pos

    def seek(self, n: int, whence: int = 0) -> int:
        self.pos = n if whence == 0 else self.pos + n
        return self.pos


def _text(b: _Buf, n: int) -> str:
    return b.read(n).decode("utf-8", "replace")


def _value_info(data: memoryview, budget: list[int]) -> dict[str, Any]:  # noqa: C901, PLR0912 - one branch per protobuf field of a ValueInfoProto
    b = _Buf(data)
    name, dtype, shape = "", "?", None
    for number, wire, v in _fields(b, len(data), budget):
        if number == 1 and wire == 2:
            name = _text(b, v)
        elif number == 2 and wire == 2:  # TypeProto
            end = b.tell() + v
            for tn, tw, tv in _fields(b, end, budget):
                if tn == 1 and tw == 2:  # tensor_type
                    tend = b.tell() + tv
                    for en, ew, ev in _fields(b, tend, budget):
                        if en == 1 and ew == 0:
                            dtype = ELEM_TYPES.get(ev, f"type {ev}")
                        elif en == 2 and ew == 2:  # shape
                            shape = []
                            send = b.tell() + ev
                            for sn, sw, sv in _fields(b, send, budget):
                                if sn == 1 and sw == 2:  # dim
                                    dim: Any = "?"
                                    dend = b.tell() + sv
                                    for dn, dw, dv in _fields(b, dend, budget):
                                        if dn == 1 and dw == 0:
                                            dim = dv
                                        elif dn == 2 and dw == 2:
                                            dim = _text(b, dv)
                                        elif dw == 2:
                                            _skip(b, dv)
                                    shape.append(dim)
                                elif sw == 2:
                                    _skip(b, sv)
                        elif ew == 2:
                            _skip(b, ev)
                elif tw == 2:
                    dtype = "(not a tensor)"
                    _skip(b, tv)
        elif wire == 2:
            _skip(b, v)
    return {"name": name, "dtype": dtype, "shape": shape}


def _initializer_name(f: Any, n: int, budget: list[int]) -> str | None:
    """TensorProto.name of the initializer at the file's position (which ends up past it)."""
    end = f.tell() + n
    name = None
    for number, wire, v in _fields(f, end, budget):
        if number == 8 and wire == 2 and v <= 4096:
            name = f.read(v).decode("utf-8", "replace")
        elif wire == 2:
            _skip(f, v)
    f.seek(end)
    return name


def graph_io(f: Any, size: int) -> dict[str, Any]:  # noqa: C901, PLR0912 - one branch per protobuf field of ModelProto and GraphProto
    """``{"inputs": [...], "outputs": [...]}`` (name, dtype, shape; a dimension is a number,
    a symbolic name, or "?"), plus ``error`` when the file is not an ONNX model as expected."""
    budget = [MAX_FIELDS]
    inputs: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []
    weights: set[str] = set()
    out: dict[str, Any] = {"inputs": inputs, "outputs": outputs}
    try:
        graph = False
        for number, wire, v in _fields(f, size, budget):
            if number == 1 and wire == 0:
                out["ir_version"] = v
            elif number == 2 and wire == 2 and v <= 4096:
                out["producer"] = f.read(v).decode("utf-8", "replace")
            elif number == 7 and wire == 2:
                graph = True
                gend = f.tell() + v
                for gn, gw, gv in _fields(f, gend, budget):
                    if gn in (11, 12) and gw == 2:
                        target = inputs if gn == 11 else outputs
                        item = _value_info(_sub(f, gv), budget)
                        if len(target) < MAX_SHOWN:
                            target.append(item)
                    elif gn == 5 and gw == 2 and len(weights) < 100_000:
                        name = _initializer_name(f, gv, budget)
                        if name is not None:
                            weights.add(name)
                    elif gw == 2:
                        _skip(f, gv)
            elif wire == 2:
                _skip(f, v)
        if not graph:
            out["error"] = "no graph: not an ONNX model"
    except _Malformed as e:
        out["error"] = f"not a well-formed ONNX model: {e}"
    out["inputs"] = [i for i in inputs if i["name"] not in weights]
    return out
