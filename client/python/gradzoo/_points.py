"""Filling a gradzoo.v1.PointSet (gradient.proto) from the client's Python forms."""

import numpy as np
from google.protobuf import json_format

from .tensors import encode_tensor

__all__ = ["fill_grid", "fill_point_set"]


def fill_grid(grid_msg, grid, fixed=None):
    """Fills a Grid message from ``grid=[(input_index, lo, hi, steps), ...]`` (or dicts in the
    .proto field names) and ``fixed`` (values of every input, for inputs no axis varies).
    Returns the steps per axis."""
    for axis in grid:
        a = grid_msg.axes.add()
        if isinstance(axis, dict):
            json_format.ParseDict(axis, a)
        else:
            if len(axis) != 4:
                raise ValueError(f"grid axis {axis!r} is not (input_index, lo, hi, steps)")
            a.input_index, a.min, a.max, a.steps = (int(axis[0]), float(axis[1]),
                                                    float(axis[2]), int(axis[3]))
    if fixed is not None:
        grid_msg.fixed_values.extend(float(v) for v in fixed)
    return tuple(a.steps for a in grid_msg.axes)


def fill_point_set(point_set, grid=None, fixed=None, points=None):
    """Fills a PointSet from exactly one of ``grid`` (see :func:`fill_grid`) or ``points`` (an
    array [N, input_dim]; float32 and float64 travel as they are, anything else as float64).
    Returns the grid's steps per axis, or None for explicit points."""
    if (grid is None) == (points is None):
        raise ValueError("give exactly one of grid= or points=")
    if grid is not None:
        return fill_grid(point_set.grid, grid, fixed)
    if fixed is not None:
        raise ValueError("fixed= applies to grid= queries only")
    pts = np.asarray(points)
    encode_tensor(pts, np.float32 if pts.dtype == np.float32 else np.float64,
                  out=point_set.explicit_points)
    return None
