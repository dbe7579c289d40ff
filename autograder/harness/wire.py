"""Learner outputs as plain data: the only encoding that crosses back from the grading sandbox.

The sandboxed process is untrusted, so what it sends must decode into inert values and
nothing else: no pickles, no learner classes (an object whose ``__eq__`` always says
True never reaches the judge). A message is

    8-byte little-endian header length | header (JSON) | buffers (raw bytes)

and the header's tree holds JSON scalars (None, bool, int, float, str) and one-key
objects for everything else: ``{"list": [...]}``, ``{"tuple": [...]}``, ``{"set": [...]}``,
``{"dict": [[key, value], ...]}``, ``{"tensor": {dtype, shape, device, buffer}}``,
``{"ndarray": {dtype, shape, buffer}}``, ``{"bytes": buffer}``, ``{"complex": [re, im]}``,
``{"dtype": name}``, ``{"device": name}``, ``{"size": [...]}`` and ``{"opaque": type name}``
for a value of any other type, which decodes to :class:`Opaque`.

Frames (a message with its length in front) carry messages over a pipe.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

HEADER = struct.Struct("<Q")
MAX_DEPTH = 64
MAX_HEADER_BYTES = 4 << 20  # the JSON part; tensors and arrays travel in the buffers
MAX_OBJECTS = 1 << 16  # values in one message
MAX_ELEMENTS = 1 << 28  # elements of one tensor or array
TAGS = ("list", "tuple", "set", "dict", "complex", "bytes", "dtype", "device", "size", "opaque", "tensor", "ndarray")
TENSOR_DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64, torch.complex128,
    torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool)}
NUMPY_DTYPE = re.compile(r"^[<>|=]?[biufc][0-9]{1,2}$")
DEVICE = re.compile(r"^(cpu|cuda(:[0-9]{1,2})?)$")


class WireError(ValueError):
    """A message that does not decode into plain data."""


@dataclass(frozen=True)
class Opaque:
    """Stands for a value the sandbox could not send as data; ``type_name`` is its type's name."""

    type_name: str


# --- encoding (runs in the sandbox) ---------------------------------------------------------------

def dumps(value: Any) -> bytes:
    """``value`` as a message; parts that are not plain data become :class:`Opaque`."""
    buffers: list[bytes] = []
    tree = _encode(value, buffers, 0)
    header = json.dumps({"tree": tree, "buffers": [len(b) for b in buffers]}).encode()
    return HEADER.pack(len(header)) + header + b"".join(buffers)


def _encode(value: Any, buffers: list[bytes], depth: int) -> Any:
    if depth > MAX_DEPTH:
        return {"opaque": "a structure nested too deeply"}
    kind = type(value)
    if value is None or kind in (bool, int, float, str):
        return value
    if kind in (list, tuple, set, frozenset):
        tag = "set" if kind in (set, frozenset) else kind.__name__
        return {tag: [_encode(v, buffers, depth + 1) for v in value]}
    if kind is dict:
        return {"dict": [[_encode(k, buffers, depth + 1), _encode(v, buffers, depth + 1)] for k, v in value.items()]}
    try:
        if isinstance(value, torch.Tensor):
            return _encode_tensor(value, buffers)
        if isinstance(value, (np.ndarray, np.generic)) and NUMPY_DTYPE.match(value.dtype.str):
            return _encode_array(value, buffers)
    except Exception:  # a tensor subclass, say, that refuses to give its data
        return {"opaque": kind.__name__}
    return _encode_special(value, buffers)


def _encode_special(value: Any, buffers: list[bytes]) -> Any:
    kind = type(value)
    if kind is complex:
        return {"complex": [value.real, value.imag]}
    if kind is bytes:
        buffers.append(value)
        return {"bytes": len(buffers) - 1}
    if kind is torch.dtype:
        return {"dtype": str(value).removeprefix("torch.")}
    if kind is torch.device:
        return {"device": str(value)}
    if kind is torch.Size:
        return {"size": [int(n) for n in value]}
    return {"opaque": kind.__name__}


def _encode_tensor(value: torch.Tensor, buffers: list[bytes]) -> Any:
    dtype = str(value.dtype).removeprefix("torch.")
    if dtype not in TENSOR_DTYPES or value.layout != torch.strided or value.device.type not in ("cpu", "cuda"):
        return {"opaque": f"tensor ({value.dtype}, {value.layout}, {value.device.type})"}
    plain = torch.Tensor.detach(value).resolve_conj().resolve_neg().cpu().contiguous()
    buffers.append(plain.reshape(-1).view(torch.uint8).numpy().tobytes())
    return {"tensor": {"dtype": dtype, "shape": list(plain.shape), "device": str(value.device),
                       "buffer": len(buffers) - 1}}


def _encode_array(value: np.ndarray | np.generic, buffers: list[bytes]) -> Any:
    array = np.asarray(value)
    buffers.append(array.tobytes(order="C"))
    return {"ndarray": {"dtype": array.dtype.str, "shape": list(array.shape), "buffer": len(buffers) - 1,
                        "scalar": isinstance(value, np.generic)}}


# --- decoding (runs on the trusted side) ----------------------------------------------------------

def loads(message: bytes) -> Any:
    """The plain data a message holds; :class:`WireError` (and nothing else) when it is malformed or
    would decode into more than :data:`MAX_OBJECTS` objects, :data:`MAX_ELEMENTS` elements of one
    tensor or array, or more data than it carries (each buffer decodes once)."""
    try:
        return _loads(message)
    except WireError:
        raise
    except Exception as error:  # anything else the bytes provoke is their fault too
        raise WireError(f"malformed message: {type(error).__name__}: {str(error)[:200]}") from None


def _loads(message: bytes) -> Any:
    if len(message) < HEADER.size:
        raise WireError("a message shorter than its header")
    (length,) = HEADER.unpack_from(message)
    if length > min(MAX_HEADER_BYTES, len(message) - HEADER.size):
        raise WireError("bad header length")
    header = json.loads(message[HEADER.size:HEADER.size + length])
    if type(header) is not dict or set(header) != {"tree", "buffers"}:
        raise WireError("bad header")
    sizes = header["buffers"]
    if type(sizes) is not list or not all(type(n) is int and 0 <= n <= len(message) for n in sizes):
        raise WireError("bad buffer table")
    offsets = list(itertools.accumulate(sizes, initial=HEADER.size + length))
    if offsets[-1] != len(message):
        raise WireError("the buffers do not add up to the message")
    whole = memoryview(message)  # buffers are views, not copies: each is copied once, into what it decodes to
    buffers = [whole[start:end] for start, end in zip(offsets[:-1], offsets[1:])]
    return _Decoder(buffers).decode(header["tree"], 0)


class _Decoder:
    def __init__(self, buffers: list[memoryview]):
        self.buffers = buffers
        self.used: set[int] = set()
        self.objects = 0

    def decode(self, node: Any, depth: int) -> Any:
        self.objects += 1
        if self.objects > MAX_OBJECTS:
            raise WireError(f"more than {MAX_OBJECTS} objects")
        if depth > MAX_DEPTH:
            raise WireError("nested too deeply")
        if node is None or type(node) in (bool, int, float, str):
            return node
        if type(node) is not dict or len(node) != 1:
            raise WireError(f"unexpected node {type(node).__name__}")
        ((tag, body),) = node.items()
        handler = getattr(self, f"_decode_{tag}", None) if tag in TAGS else None
        if handler is None:
            raise WireError(f"unknown tag {str(tag)[:40]!r}")
        return handler(body, depth + 1)

    def _items(self, body: Any, depth: int) -> list:
        if type(body) is not list:
            raise WireError("a sequence is not a list")
        return [self.decode(item, depth) for item in body]

    def _decode_list(self, body: Any, depth: int) -> list:
        return self._items(body, depth)

    def _decode_tuple(self, body: Any, depth: int) -> tuple:
        return tuple(self._items(body, depth))

    def _decode_set(self, body: Any, depth: int) -> set:
        return set(self._items(body, depth))

    def _decode_dict(self, body: Any, depth: int) -> dict:
        if type(body) is not list or not all(type(pair) is list and len(pair) == 2 for pair in body):
            raise WireError("a dict is not a list of pairs")
        return {self.decode(key, depth): self.decode(value, depth) for key, value in body}

    def _decode_complex(self, body: Any, depth: int) -> complex:
        if type(body) is not list or len(body) != 2 or not all(type(part) in (int, float) for part in body):
            raise WireError("a complex number is not two numbers")
        return complex(float(body[0]), float(body[1]))

    def _decode_bytes(self, body: Any, depth: int) -> bytes:
        return bytes(self._buffer(body))

    def _decode_dtype(self, body: Any, depth: int) -> torch.dtype:
        if type(body) is not str or body not in TENSOR_DTYPES:
            raise WireError(f"unknown dtype {str(body)[:40]!r}")
        return TENSOR_DTYPES[body]

    def _decode_device(self, body: Any, depth: int) -> torch.device:
        return _device(body)

    def _decode_size(self, body: Any, depth: int) -> torch.Size:
        return torch.Size(_shape(body))

    def _decode_opaque(self, body: Any, depth: int) -> Opaque:
        return Opaque(body[:200] if type(body) is str else "an object")

    def _decode_tensor(self, body: Any, depth: int) -> torch.Tensor:
        body = _fields(body, {"dtype", "shape", "device", "buffer"})
        dtype, shape = self._decode_dtype(body["dtype"], depth), _shape(body["shape"])
        device = _device(body["device"])
        data = self._sized_buffer(body["buffer"], shape, torch.empty((), dtype=dtype).element_size())
        flat = torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8)
        return flat.view(dtype).reshape(shape).to(device)

    def _decode_ndarray(self, body: Any, depth: int) -> np.ndarray | np.generic:
        body = _fields(body, {"dtype", "shape", "buffer", "scalar"})
        if type(body["dtype"]) is not str or not NUMPY_DTYPE.match(body["dtype"]):
            raise WireError(f"unsupported array dtype {str(body['dtype'])[:40]!r}")
        dtype, shape = np.dtype(body["dtype"]), _shape(body["shape"])
        data = self._sized_buffer(body["buffer"], shape, dtype.itemsize)
        array = np.frombuffer(data, dtype=dtype).reshape(shape).copy()
        return array[()] if body.get("scalar") is True and not shape else array

    def _sized_buffer(self, index: Any, shape: tuple[int, ...], itemsize: int) -> memoryview:
        """The buffer of a tensor or array, which must hold exactly its elements."""
        elements = math.prod(shape)
        if elements > MAX_ELEMENTS:
            raise WireError(f"more than {MAX_ELEMENTS} elements")
        data = self._buffer(index)
        if len(data) != itemsize * elements:
            raise WireError("a tensor's data does not match its shape")
        return data

    def _buffer(self, index: Any) -> memoryview:
        if type(index) is not int or not 0 <= index < len(self.buffers) or index in self.used:
            raise WireError("bad buffer index")
        self.used.add(index)
        return self.buffers[index]


def _fields(body: Any, allowed: set[str]) -> dict[str, Any]:
    if type(body) is not dict or not set(body) <= allowed or not set(body) >= allowed - {"scalar"}:
        raise WireError("a tensor or array is missing fields")
    return body


def _shape(body: Any) -> tuple[int, ...]:
    if type(body) is not list or len(body) > 32 or not all(type(n) is int and 0 <= n <= MAX_ELEMENTS for n in body):
        raise WireError("bad shape")
    return tuple(body)


def _device(name: Any) -> torch.device:
    if type(name) is not str or not DEVICE.match(name):
        raise WireError(f"unknown device {str(name)[:40]!r}")
    device = torch.device(name)
    if device.type == "cuda" and not (torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()):
        raise WireError(f"device {name} is not available here")
    return device


# --- frames over a pipe ---------------------------------------------------------------------------

def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to the file descriptor ``fd``."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_frame(fd: int, message: bytes) -> None:
    """Write one length-prefixed message to the file descriptor ``fd``."""
    write_all(fd, HEADER.pack(len(message)) + message)


class FrameReader:
    """Cuts a byte stream into messages as it arrives."""

    def __init__(self) -> None:
        self._pending = bytearray()

    def feed(self, chunk: bytes) -> list[bytes]:
        """The messages that ``chunk`` completes."""
        self._pending += chunk
        messages = []
        while len(self._pending) >= HEADER.size:
            end = HEADER.size + HEADER.unpack_from(self._pending)[0]
            if len(self._pending) < end:
                break
            messages.append(bytes(self._pending[HEADER.size:end]))
            del self._pending[:end]
        return messages
