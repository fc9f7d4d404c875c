"""Plain Python results of the gradzoo client: dataclasses with numpy arrays, built from the wire
messages. Each keeps the message it came from in ``raw`` (excluded from repr and comparisons) for
fields this client does not surface yet.

Names: zoos are ``"zoos/{zoo}"``, models ``"zoos/{zoo}/models/{model}"``, jobs
``"trainingJobs/{job}"``; every method that takes a name also accepts the short forms ``"zoo"``,
``"zoo/model"`` and ``"job"`` (see :func:`zoo_name`, :func:`model_name`, :func:`job_name`).
"""

import dataclasses
import datetime
from typing import Any, List, Optional, Tuple

import numpy as np

from . import _stubs
from .errors import make_error
from .tensors import decode_tensor, is_empty_tensor

__all__ = [
    "ServerInfo", "Zoo", "Layer", "Model", "JobProgress", "GradientField", "zoo_name",
    "model_name", "job_name", "enum_name", "to_dict",
]


def zoo_name(name):
    """"zoos/x" for "x" or "zoos/x"; also accepts a :class:`Zoo`."""
    name = getattr(name, "name", name)
    return name if name.startswith("zoos/") else "zoos/" + name


def model_name(name):
    """"zoos/z/models/m" for "z/m" or the full name; also accepts a :class:`Model`. A string
    without '/' goes to the server unchanged so its INVALID_ARGUMENT explains the form."""
    name = getattr(name, "name", name)
    if name.startswith("zoos/") or "/" not in name:
        return name
    zoo, model = name.split("/", 1)
    return f"zoos/{zoo}/models/{model}"


def job_name(name):
    """"trainingJobs/j" for "j" or the full name; also accepts a :class:`gradzoo.Job`."""
    name = getattr(name, "name", name)
    return name if name.startswith("trainingJobs/") else "trainingJobs/" + name


def enum_name(enum_type, value, prefix):
    """The enum value's name without its prefix, lower-cased for settings ("relu") and kept
    upper-case for states ("RUNNING") by the callers; "" for *_UNSPECIFIED."""
    try:
        name = enum_type.Name(value)
    except ValueError:
        return str(value)
    name = name[len(prefix):] if name.startswith(prefix) else name
    return "" if name == "UNSPECIFIED" else name


def to_dict(message):
    """A message as plain Python: dicts keyed by the .proto field names, lists, ints (int64 too,
    unlike JSON), floats, strings, bytes, and enum values by name. Unset fields are left out."""
    out = {}
    for field, value in message.ListFields():
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            vfield = field.message_type.fields_by_name["value"]
            out[field.name] = {k: _plain(vfield, v) for k, v in value.items()}
        elif field.label == field.LABEL_REPEATED:
            out[field.name] = [_plain(field, v) for v in value]
        else:
            out[field.name] = _plain(field, value)
    return out


def _plain(field, value):
    if field.type == field.TYPE_MESSAGE:
        return to_dict(value)
    if field.type == field.TYPE_ENUM:
        desc = field.enum_type.values_by_number.get(value)
        return desc.name if desc is not None else value
    return value


def _time(ts):
    """A Timestamp as an aware UTC datetime, None when unset."""
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return ts.ToDatetime(tzinfo=datetime.timezone.utc)


@dataclasses.dataclass
class ServerInfo:
    """Facts about the running server (InfoService.GetServerInfo)."""
    version: str
    device: str
    blas: str
    torch_threads: int
    torch_version: str
    max_points_per_query: int
    max_receive_message_bytes: int
    data_dir: str
    uptime_seconds: float
    raw: Any = dataclasses.field(default=None, repr=False, compare=False)

    @classmethod
    def from_proto(cls, m):
        return cls(m.version, m.device, m.blas, m.torch_threads, m.torch_version,
                   m.max_points_per_query, m.max_receive_message_bytes, m.data_dir,
                   m.uptime_seconds, raw=m)


@dataclasses.dataclass
class Zoo:
    """A population of trained models. ``spec`` is the ZooSpec it was trained from, as a dict."""
    name: str
    state: str  # "READY", "CREATING", "CORRUPT"
    model_count: int
    input_dim: int
    output_dim: int
    stored_bytes: int
    create_time: Optional[datetime.datetime]
    owner: str
    spec: dict
    readers: List[str] = dataclasses.field(default_factory=list)  # see Client.share_zoo
    raw: Any = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def id(self):
        """The zoo id ("lambda" for "zoos/lambda")."""
        return self.name.split("/", 1)[-1]

    @classmethod
    def from_proto(cls, m):
        zoo_pb2 = _stubs.module("zoo_pb2")
        return cls(m.name, enum_name(zoo_pb2.ZooState, m.state, "ZOO_STATE_"), m.model_count,
                   m.input_dim, m.output_dim, m.stored_bytes, _time(m.create_time), m.owner,
                   to_dict(m.spec), readers=list(m.readers), raw=m)


@dataclasses.dataclass
class Layer:
    """One dense layer y = W x + b: ``weight`` [out, in] and ``bias`` [out], float32."""
    weight: np.ndarray
    bias: np.ndarray

    def __eq__(self, other):
        return (isinstance(other, Layer) and np.array_equal(self.weight, other.weight)
                and np.array_equal(self.bias, other.bias))


@dataclasses.dataclass(eq=False)
class Model:
    """One trained network. ``layers`` (input side first) are filled only when weights were asked
    for (``Client.model`` always, ``Client.models(..., weights=True)``); their arrays are
    read-only zero-copy views of the reply."""
    name: str
    task: str
    lambda_: float
    seed: int
    split: str  # "train" or "validation"
    train_loss: float
    validation_loss: float
    steps: int
    activation: str  # "relu", "gelu", "tanh"
    hidden_widths: Tuple[int, ...]
    label: str
    layers: List[Layer]
    raw: Any = dataclasses.field(default=None, repr=False)

    @property
    def zoo(self):
        """Its zoo's name, "zoos/{zoo}"."""
        return self.name.split("/models/", 1)[0]

    @property
    def id(self):
        """The model id within its zoo ("m0003")."""
        return self.name.rsplit("/", 1)[-1]

    @property
    def input_dim(self):
        """Input size (needs the layers), else None."""
        return int(self.layers[0].weight.shape[1]) if self.layers else None

    @property
    def output_dim(self):
        """Output size (needs the layers), else None."""
        return int(self.layers[-1].weight.shape[0]) if self.layers else None

    @classmethod
    def from_proto(cls, m):
        zoo_pb2 = _stubs.module("zoo_pb2")
        layers = [Layer(decode_tensor(l.weight), decode_tensor(l.bias)) for l in m.layers]
        activation = enum_name(zoo_pb2.Activation, m.architecture.activation, "ACTIVATION_")
        return cls(m.name, m.task, getattr(m, "lambda"), m.seed,
                   enum_name(zoo_pb2.Split, m.split, "SPLIT_").lower(), m.train_loss,
                   m.validation_loss, m.steps, activation.lower() or "relu",
                   tuple(m.architecture.hidden_widths), m.label, layers, raw=m)


@dataclasses.dataclass
class JobProgress:
    """Progress of a running job (see job.proto JobProgress)."""
    done: int = 0
    total: int = 0
    step: int = 0
    total_steps: int = 0
    mean_train_loss: float = 0.0
    mean_validation_loss: float = 0.0
    max_validation_loss: float = 0.0
    eta_seconds: float = 0.0

    @property
    def fraction(self):
        """Fraction done in [0, 1]: optimiser steps when known, else finished models."""
        if self.total_steps > 0:
            return min(1.0, self.step / self.total_steps)
        if self.total > 0:
            return min(1.0, self.done / self.total)
        return 0.0

    @classmethod
    def from_proto(cls, m):
        return cls(m.done, m.total, m.step, m.total_steps, m.mean_train_loss,
                   m.mean_validation_loss, m.max_validation_loss, m.eta_seconds)


@dataclasses.dataclass(eq=False)
class GradientField:
    """One model's input-gradient field, assembled from the ComputeGradientField stream.

    Arrays (float32): ``points`` [n, in]; ``gradients`` [n, out, in] = d y_o / d x_i;
    ``outputs`` [n, out] (when asked for); ``theory`` [n, out, in], the task's exact gradient
    (``theory=True``); ``relative_errors`` [n, out] (``error_field=True``). ``summary`` (with
    ``theory=True``) holds mean/median/aggregate_relative_error and
    per_output_mean_relative_error, defined in gradient.proto (GradientErrorSummary).

    For a grid query ``grid_shape`` is the steps per axis (first axis outermost), so
    ``f.on_grid(f.gradients)`` has shape grid_shape + (out, in).
    A field that came in one chunk holds read-only views of the message (zero copy); a
    multi-chunk field was copied once into writable arrays.
    """
    model: str
    points: np.ndarray
    gradients: np.ndarray
    outputs: Optional[np.ndarray] = None
    theory: Optional[np.ndarray] = None
    relative_errors: Optional[np.ndarray] = None
    summary: Optional[dict] = None
    grid_shape: Optional[Tuple[int, ...]] = None

    @property
    def n(self):
        """Number of points."""
        return int(self.points.shape[0])

    @property
    def input_dim(self):
        return int(self.gradients.shape[2])

    @property
    def output_dim(self):
        return int(self.gradients.shape[1])

    def on_grid(self, array):
        """``array`` (one row per point) reshaped to the grid: grid_shape + array.shape[1:]."""
        if self.grid_shape is None:
            raise ValueError("this field was not computed on a grid")
        array = np.asarray(array)
        return array.reshape(tuple(self.grid_shape) + array.shape[1:])


class _FieldAssembler:
    """Builds GradientFields from ComputeGradientFieldResponse chunks, checking that each model's
    chunks arrive in point order without gaps (DATA_LOSS otherwise)."""

    _ARRAYS = (("points", "points"), ("gradients", "gradients"), ("outputs", "outputs"),
               ("theory", "theory_gradients"), ("relative_errors", "relative_errors"))

    def __init__(self, grid_shape):
        self.grid_shape = grid_shape
        self.fields = []
        self._current = None  # [name, total, filled, {attr: array}, summary, views_ok, last]

    def add(self, msg):
        cur = self._current
        if cur is None or cur["model"] != msg.model or msg.offset == 0:
            self._finish()
            cur = self._current = {"model": msg.model, "total": msg.total_points, "filled": 0,
                                   "arrays": {}, "summary": None, "last": False}
        if cur["last"] or msg.offset != cur["filled"]:
            raise make_error("DATA_LOSS", f"chunk of {msg.model} at offset {msg.offset} arrived "
                             f"out of order (expected {cur['filled']})")
        n = None
        for attr, field in self._ARRAYS:
            t = getattr(msg, field)
            if is_empty_tensor(t):
                continue
            a = decode_tensor(t)
            n = a.shape[0] if n is None else n
            if a.shape[0] != n:
                raise make_error("DATA_LOSS", f"chunk of {msg.model}: {field} has {a.shape[0]} "
                                 f"rows, points has {n}")
            arrays = cur["arrays"]
            if msg.offset == 0 and msg.last and n == cur["total"]:
                arrays[attr] = a  # the whole field in one chunk: keep the zero-copy view
                continue
            if attr not in arrays:
                arrays[attr] = np.empty((cur["total"],) + a.shape[1:], dtype=a.dtype)
            if msg.offset + n > cur["total"]:
                raise make_error("DATA_LOSS", f"chunk of {msg.model} overruns its "
                                 f"{cur['total']} points")
            arrays[attr][msg.offset:msg.offset + n] = a
        cur["filled"] += n or 0
        if msg.HasField("summary"):
            s = msg.summary
            cur["summary"] = {
                "mean_relative_error": s.mean_relative_error,
                "median_relative_error": s.median_relative_error,
                "aggregate_relative_error": s.aggregate_relative_error,
                "per_output_mean_relative_error": list(s.per_output_mean_relative_error),
            }
        if msg.last:
            cur["last"] = True

    def _finish(self):
        cur = self._current
        if cur is None:
            return
        self._current = None
        if not cur["last"] or cur["filled"] != cur["total"]:
            raise make_error("DATA_LOSS", f"field of {cur['model']} arrived incomplete "
                             f"({cur['filled']} of {cur['total']} points)")
        a = cur["arrays"]
        if "gradients" not in a or "points" not in a:
            if cur["total"] == 0:
                a.setdefault("points", np.zeros((0, 0), np.float32))
                a.setdefault("gradients", np.zeros((0, 0, 0), np.float32))
            else:
                raise make_error("DATA_LOSS", f"field of {cur['model']} has no gradients")
        self.fields.append(GradientField(
            cur["model"], a["points"], a["gradients"], a.get("outputs"), a.get("theory"),
            a.get("relative_errors"), cur["summary"], self.grid_shape))

    def result(self):
        self._finish()
        return self.fields
