"""numpy <-> gradzoo.v1.Tensor (shape + dtype + little-endian row-major bytes).

Decoding is zero-copy: the array is an ``np.frombuffer`` view over the message's ``bytes`` and is
therefore read-only (``arr.copy()`` gives a writable one). Encoding copies once (``tobytes``),
which protobuf requires.
"""

import numpy as np

from . import _stubs
from .errors import make_error

__all__ = ["decode_tensor", "encode_tensor", "is_empty_tensor"]

_tensor_pb2 = _stubs.module("tensor_pb2")
_DTYPES = {
    _tensor_pb2.D_TYPE_FLOAT32: np.dtype("<f4"),
    _tensor_pb2.D_TYPE_FLOAT64: np.dtype("<f8"),
    _tensor_pb2.D_TYPE_INT64: np.dtype("<i8"),
    _tensor_pb2.D_TYPE_INT32: np.dtype("<i4"),
}
_WIRE = {np.dtype(v).newbyteorder("="): k for k, v in _DTYPES.items()}


def is_empty_tensor(t):
    """True for an unset Tensor field (no shape, no bytes)."""
    return len(t.shape) == 0 and not t.data


def decode_tensor(t):
    """A read-only numpy view of a wire Tensor, checking that its byte count matches its shape.

    Raises DataLossError for an unknown dtype, a negative extent or a wrong byte count.
    """
    dtype = _DTYPES.get(t.dtype)
    if dtype is None:
        raise make_error("DATA_LOSS", f"tensor dtype {t.dtype} is not one this client knows")
    shape = tuple(int(d) for d in t.shape)
    if any(d < 0 for d in shape):
        raise make_error("DATA_LOSS", f"tensor with a negative extent {shape}")
    data = t.data
    count = int(np.prod(shape, dtype=np.int64))
    if len(data) != count * dtype.itemsize:
        raise make_error("DATA_LOSS", f"tensor of shape {shape} and {dtype} has {len(data)} bytes, "
                         f"expected {count * dtype.itemsize}")
    return np.frombuffer(data, dtype=dtype, count=count).reshape(shape)


def encode_tensor(array, dtype=None, out=None):
    """A wire Tensor holding ``array`` (anything np.asarray accepts).

    ``dtype``: numpy dtype to send (float32, float64, int32 or int64); default: the array's own
    if it is one of those, else float64 for floats and int64 for integers. ``out``: an existing
    Tensor message to fill (e.g. ``request.points.explicit_points``); returns it.
    """
    a = np.asarray(array)
    if a.dtype.kind not in "biuf":
        raise ValueError(f"cannot send an array of {a.dtype}; use real numbers")
    if dtype is None:
        dtype = a.dtype
        if dtype.newbyteorder("=") not in _WIRE:
            dtype = np.dtype(np.float64) if dtype.kind == "f" else np.dtype(np.int64)
    dtype = np.dtype(dtype).newbyteorder("=")
    if dtype not in _WIRE:
        raise ValueError(f"cannot send dtype {dtype}; use float32, float64, int32 or int64")
    a = np.asarray(a, dtype=dtype.newbyteorder("<"))
    if not a.flags.c_contiguous:
        a = a.copy(order="C")
    t = out if out is not None else _tensor_pb2.Tensor()
    del t.shape[:]
    t.shape.extend(a.shape)
    t.dtype = _WIRE[dtype]
    t.data = a.tobytes()
    return t
