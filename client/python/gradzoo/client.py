"""The gradzoo client: typed calls returning numpy arrays and plain objects.

Deadlines: every unary call gets ``timeout`` seconds (default 30), streamed queries (gradient
fields) ``stream_timeout`` (default 600); each method also takes its own ``timeout=``. Errors raise
:class:`gradzoo.GradzooError` subclasses carrying the gRPC code name and the server's message.

Not covered by a typed method yet? ``client.call("ComputeLayerPca", model=..., layer={...})``
reaches every RPC of every gradzoo.v1 service (request from a message, a dict or keywords). A
typed method is a few lines on top of :meth:`Client._unary` / :meth:`Client._stream`.
"""

import os
import time

import grpc
import numpy as np
from google.protobuf import json_format

from . import _stubs
from .errors import GradzooError, error_from_rpc, make_error
from ._points import fill_point_set
from .analysis import AnalysisCalls
from .jobs import Job
from .tensors import encode_tensor
from .types import Model, ServerInfo, Zoo, _FieldAssembler, job_name, model_name, zoo_name

__all__ = ["Client", "DEFAULT_ADDRESS"]

DEFAULT_ADDRESS = "127.0.0.1:50551"

_ACTIVATIONS = {"relu": "ACTIVATION_RELU", "gelu": "ACTIVATION_GELU", "tanh": "ACTIVATION_TANH"}
_SCHEDULES = {"cosine": "LEARNING_RATE_SCHEDULE_COSINE",
              "constant": "LEARNING_RATE_SCHEDULE_CONSTANT"}


def _health_request(service):
    """grpc.health.v1.HealthCheckRequest{service} encoded by hand (field 1, string): Debian's
    python3-grpcio ships no grpc_health package."""
    data = service.encode()
    if len(data) > 127:
        raise ValueError("service name too long")
    return (b"\x0a" + bytes([len(data)]) + data) if data else b""


def _health_status(data):
    """The ServingStatus (field 1, varint) of an encoded HealthCheckResponse; 0 when absent."""
    i = 0
    while i < len(data):
        key = data[i]
        i += 1
        if key == 0x08:
            value, shift = 0, 0
            while True:
                b = data[i]
                i += 1
                value |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    return value
        raise make_error("DATA_LOSS", f"unexpected field tag {key} in a health response")
    return 0


class Client(AnalysisCalls):
    """A connection to gradzoo-server.

    ``address``: "host:port" (default $GRADZOO_SERVER, else 127.0.0.1:50551). ``token``: sent as
    ``authorization: Bearer <token>`` on every call (for servers that require one).
    ``timeout``: seconds per unary call. ``credentials``: grpc.ChannelCredentials for TLS
    (default: plaintext). Creating a Client does not contact the server.

    Thread-safe for calls (gRPC channels are); a :class:`Job` handle is not.
    """

    def __init__(self, address=None, token=None, timeout=30.0, *, stream_timeout=600.0,
                 max_message_bytes=64 << 20, credentials=None):
        self.address = address or os.environ.get("GRADZOO_SERVER") or DEFAULT_ADDRESS
        self.timeout = timeout
        self.stream_timeout = stream_timeout
        options = [("grpc.max_receive_message_length", max_message_bytes),
                   ("grpc.max_send_message_length", max_message_bytes)]
        if credentials is not None:
            self.channel = grpc.secure_channel(self.address, credentials, options=options)
        else:
            self.channel = grpc.insecure_channel(self.address, options=options)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.rpcs = _stubs.Rpcs(self.channel)
        self._health = self.channel.unary_unary("/grpc.health.v1.Health/Check")

    # -- plumbing ---------------------------------------------------------------------------

    def close(self):
        """Closes the channel; the client cannot be used afterwards."""
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<gradzoo.Client {self.address}>"

    @staticmethod
    def _request(rpc, request, fields):
        if request is None:
            request = rpc.request_class()
        elif isinstance(request, dict):
            request = json_format.ParseDict(request, rpc.request_class())
        if fields:
            json_format.ParseDict(fields, request)
        return request

    def _unary(self, rpc, request=None, /, *, timeout=None, **fields):
        """Calls unary RPC ``rpc`` (a name) and returns its response message."""
        rpc = self.rpcs[rpc]
        req = self._request(rpc, request, fields)
        try:
            return rpc.callable(req, timeout=timeout or self.timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise error_from_rpc(e) from None

    def _stream(self, rpc, request=None, /, *, timeout=None, **fields):
        """Calls server-streaming RPC ``rpc`` (a name); yields its messages. Closing the
        generator early cancels the call."""
        rpc = self.rpcs[rpc]
        req = self._request(rpc, request, fields)
        call = rpc.callable(req, timeout=timeout or self.stream_timeout, metadata=self._metadata)
        try:
            for msg in call:
                yield msg
        except grpc.RpcError as e:
            raise error_from_rpc(e) from None
        finally:
            call.cancel()  # no-op once the call has finished

    def call(self, rpc, request=None, /, *, timeout=None, **fields):
        """Calls any gradzoo.v1 RPC by name ("GetZoo" or "ZooService.GetZoo").

        The request is ``request`` (a message or a dict in .proto field names) updated with
        ``fields``. Returns the response message, or for server-streaming RPCs a list of them.
        """
        r = self.rpcs[rpc]
        if r.client_streaming:
            raise NotImplementedError(f"{r.full_name} streams requests; use client.rpcs")
        if r.server_streaming:
            return list(self._stream(rpc, request, timeout=timeout, **fields))
        return self._unary(rpc, request, timeout=timeout, **fields)

    # -- server -----------------------------------------------------------------------------

    def server_info(self, timeout=None):
        """Version, device, BLAS, threads and limits of the server (:class:`ServerInfo`)."""
        return ServerInfo.from_proto(self._unary("GetServerInfo", timeout=timeout))

    def health(self, service="", timeout=None):
        """Standard gRPC health check (grpc.health.v1.Health/Check): True when SERVING, False
        when NOT_SERVING (e.g. shutting down). Unknown ``service``: NotFoundError."""
        try:
            resp = self._health(_health_request(service), timeout=timeout or self.timeout,
                                metadata=self._metadata)
        except grpc.RpcError as e:
            raise error_from_rpc(e) from None
        return _health_status(resp) == 1

    def wait_for_server(self, timeout=30.0):
        """Polls the health check until the server is SERVING; UnavailableError after
        ``timeout`` seconds. Returns self."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                if self.health(timeout=max(0.1, min(2.0, deadline - time.monotonic()))):
                    return self
            except GradzooError as e:
                last = e
            time.sleep(0.1)
        raise make_error("UNAVAILABLE", f"server {self.address} not serving after {timeout}s"
                         + (f" (last: {last})" if last else ""))

    # -- zoos and models --------------------------------------------------------------------

    def zoos(self, timeout=None):
        """Every zoo, newest first (follows page tokens)."""
        out, token = [], ""
        while True:
            resp = self._unary("ListZoos", timeout=timeout, page_size=1000, page_token=token)
            out.extend(Zoo.from_proto(z) for z in resp.zoos)
            token = resp.next_page_token
            if not token:
                return out

    def zoo(self, name, timeout=None):
        """One zoo ("lambda" or "zoos/lambda")."""
        return Zoo.from_proto(self._unary("GetZoo", timeout=timeout, name=zoo_name(name)).zoo)

    def delete_zoo(self, name, timeout=None):
        """Deletes a zoo and its stored models (FailedPreconditionError while a job uses it)."""
        self._unary("DeleteZoo", timeout=timeout, name=zoo_name(name))

    def share_zoo(self, name, readers, timeout=None):
        """Lets ``readers`` (user names of the server's tokens file) read zoo ``name``, replacing
        the list (``[]`` = private again). Owner or admin only (PermissionDeniedError for a
        reader; FailedPreconditionError on a server without authentication). Returns the Zoo."""
        if isinstance(readers, str):
            readers = [readers]
        return Zoo.from_proto(self._unary("ShareZoo", timeout=timeout, name=zoo_name(name),
                                          readers=list(readers)).zoo)

    def models(self, zoo, weights=False, timeout=None):
        """Every model of ``zoo`` in zoo order; with ``weights`` their layers as numpy arrays."""
        out, token = [], ""
        while True:
            resp = self._unary("ListModels", timeout=timeout, parent=zoo_name(zoo),
                               page_size=1000, page_token=token, include_weights=bool(weights))
            out.extend(Model.from_proto(m) for m in resp.models)
            token = resp.next_page_token
            if not token:
                return out

    def model(self, name, timeout=None):
        """One model with its weights ("zoo/m0000" or "zoos/zoo/models/m0000")."""
        return Model.from_proto(
            self._unary("GetModel", timeout=timeout, name=model_name(name)).model)

    def import_model(self, zoo, weights, *, task="", lambda_=0.0, seed=0, label="",
                     timeout=None):
        """Adds a network trained elsewhere to ``zoo`` (created if missing) via ImportModel.

        ``weights``: a :class:`gradzoo.ModelWeights` (from :func:`gradzoo.import_torch`) or a
        :class:`Model`. Weights travel as float32 tensors, data only. Returns the stored Model.
        """
        zoo_pb2 = _stubs.module("zoo_pb2")
        req = zoo_pb2.ImportModelRequest(parent=zoo_name(zoo))
        m = req.model
        m.task = task
        setattr(m, "lambda", float(lambda_))
        m.seed = int(seed)
        m.label = label
        activation = weights.activation or "relu"
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation {activation!r} is not relu, gelu or tanh")
        m.architecture.activation = zoo_pb2.Activation.Value(_ACTIVATIONS[activation])
        m.architecture.hidden_widths.extend(int(l.weight.shape[0]) for l in weights.layers[:-1])
        for layer in weights.layers:
            pl = m.layers.add()
            encode_tensor(layer.weight, np.float32, out=pl.weight)
            encode_tensor(layer.bias, np.float32, out=pl.bias)
        return Model.from_proto(self._unary("ImportModel", req, timeout=timeout).model)

    def import_torch(self, zoo, module, *, task="", lambda_=0.0, seed=0, label="torch",
                     timeout=None):
        """Converts a torch ``nn.Sequential`` of Linear + ReLU/GELU/Tanh layers
        (:func:`gradzoo.import_torch`) and imports it into ``zoo``. Returns the stored Model."""
        from .torch_bridge import import_torch
        return self.import_model(zoo, import_torch(module), task=task, lambda_=lambda_,
                                 seed=seed, label=label, timeout=timeout)

    # -- training jobs ----------------------------------------------------------------------

    def train(self, zoo_id, task="mul2", lambdas=(0.0,), seeds=(0,), *, validation_seeds=(),
              hidden=(32, 32), activation="relu", steps=None, batch_size=None,
              learning_rate=None, eval_every=None, patience=None, schedule=None, device=None,
              train_examples=None, validation_examples=None, task_options=None,
              request_id=None, timeout=None):
        """Submits a job training one model per (lambda, seed) into new zoo ``zoo_id``; returns
        its :class:`Job` at once (QUEUED). ``job.wait()`` blocks with a progress bar.

        Defaults of unset (None) settings are the server's (zoo.proto: 2000 steps, full batch,
        lr 0.01, cosine schedule, 2048 train / 512 validation examples). ``task_options``: other
        TaskSpec fields as a dict (e.g. {"families": 4}). ``request_id`` makes the submission
        idempotent: the same id returns the same job. Errors: InvalidArgumentError (bad spec,
        naming the field), AlreadyExistsError (zoo exists), ResourceExhaustedError (too many
        models, or the job queue is full: retry later).
        """
        zoo_pb2 = _stubs.module("zoo_pb2")
        spec = zoo_pb2.ZooSpec()
        spec.task.name = task
        spec.task.lambdas.extend(float(l) for l in lambdas)
        if train_examples is not None:
            spec.task.train_examples = train_examples
        if validation_examples is not None:
            spec.task.validation_examples = validation_examples
        if task_options:
            json_format.ParseDict(task_options, spec.task)
        spec.seeds.extend(int(s) for s in seeds)
        spec.validation_seeds.extend(int(s) for s in validation_seeds)
        spec.architecture.hidden_widths.extend(int(h) for h in hidden)
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation {activation!r} is not relu, gelu or tanh")
        spec.architecture.activation = zoo_pb2.Activation.Value(_ACTIVATIONS[activation])
        t = spec.training
        for field, value in (("steps", steps), ("batch_size", batch_size),
                             ("learning_rate", learning_rate), ("eval_every", eval_every),
                             ("early_stopping_patience", patience), ("device", device)):
            if value is not None:
                setattr(t, field, value)
        if schedule is not None:
            if schedule not in _SCHEDULES:
                raise ValueError(f"schedule {schedule!r} is not cosine or constant")
            t.schedule = zoo_pb2.LearningRateSchedule.Value(_SCHEDULES[schedule])
        job_pb2 = _stubs.module("job_pb2")
        req = job_pb2.CreateTrainingJobRequest(request_id=request_id or "")
        req.job.zoo_training.zoo_id = zoo_name(zoo_id)[len("zoos/"):]
        req.job.zoo_training.spec.CopyFrom(spec)
        return Job(self, self._unary("CreateTrainingJob", req, timeout=timeout).job)

    def job(self, name, timeout=None):
        """A handle on an existing job ("trainingJobs/x" or "x")."""
        return Job(self, self._unary("GetTrainingJob", timeout=timeout, name=job_name(name)).job)

    def jobs(self, timeout=None):
        """Every job, newest first (follows page tokens)."""
        out, token = [], ""
        while True:
            resp = self._unary("ListTrainingJobs", timeout=timeout, page_size=1000,
                               page_token=token)
            out.extend(Job(self, j) for j in resp.jobs)
            token = resp.next_page_token
            if not token:
                return out

    def cancel_job(self, name, timeout=None):
        """Asks a job to stop; returns its handle (CANCELLING or already final)."""
        return Job(self, self._unary("CancelTrainingJob", timeout=timeout,
                                     name=job_name(name)).job)

    # -- gradient queries -------------------------------------------------------------------

    def gradient_field(self, models=None, *, zoo=None, grid=None, fixed=None, points=None,
                       theory=False, outputs=False, error_field=False, chunk_points=0,
                       timeout=None):
        """Input gradients d y_o / d x_i of every output, for ``models`` (a name, a Model or a
        list of them) and/or every model of ``zoo``; returns a list of :class:`GradientField`
        in server order.

        Where: ``grid=[(input_index, lo, hi, steps), ...]`` (first axis outermost; inputs no axis
        varies are held at ``fixed`` values, default 0.5 each) or ``points``, an array
        [N, input_dim] (float32 or float64 are sent as they are). ``theory``: also the task's
        exact gradient and the error summary; ``outputs``: the network's outputs;
        ``error_field``: per-point relative errors. The result streams in chunks and is
        assembled here. Errors: NotFoundError (unknown model/zoo), InvalidArgumentError (axis
        out of range, NaN bounds, wrong point shape), ResourceExhaustedError (points x models
        over the server's max_points_per_query).
        """
        gradient_pb2 = _stubs.module("gradient_pb2")
        req = gradient_pb2.ComputeGradientFieldRequest(
            compare_with_theory=bool(theory), include_outputs=bool(outputs),
            include_error_field=bool(error_field), chunk_points=int(chunk_points))
        if models is not None:
            if isinstance(models, (str, Model)):
                models = [models]
            req.selection.models.extend(model_name(m) for m in models)
        if zoo is not None:
            req.selection.zoo = zoo_name(zoo)
        grid_shape = fill_point_set(req.points, grid, fixed, points)
        assembler = _FieldAssembler(grid_shape)
        for msg in self._stream("ComputeGradientField", req, timeout=timeout):
            assembler.add(msg)
        return assembler.result()
