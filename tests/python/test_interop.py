"""Interoperability: a client no one here wrote drives gradzoo-server.

Uses only generic grpcio + protobuf, no gradzoo code and no generated gradzoo stubs:
  * server reflection (grpc.reflection.v1alpha) lists the services and serves their file
    descriptors; message classes are built from them at run time (descriptor_pool +
    message_factory); calls then go through plain channel.unary_unary / unary_stream;
  * health through the standard grpc.health.v1 protocol (Check and Watch).
Debian's python3-grpcio ships neither grpc_reflection nor grpc_health, so the few messages of
those two public protocols are declared here from their published .proto definitions.

Environment: GRADZOO_SERVER_BIN (set by tests/python/CMakeLists.txt).
"""

import struct
import sys
import unittest

import grpc
import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from server_process import ServerProcess

SERVER = None


def setUpModule():
    global SERVER
    SERVER = ServerProcess(name="gradzoo-interop")


def tearDownModule():
    if SERVER is not None:
        assert SERVER.stop() == 0
    # Nothing of gradzoo's own Python code took part.
    used = [m for m in sys.modules if m == "gradzoo" or m.startswith("gradzoo.")]
    assert not used, used


def message_class(pool, full_name):
    desc = pool.FindMessageTypeByName(full_name)
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(desc)
    return message_factory.MessageFactory(pool).GetPrototype(desc)


def _field(msg, name, number, ftype, label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
           type_name=None, oneof=None):
    f = msg.field.add(name=name, number=number, type=ftype, label=label)
    if type_name:
        f.type_name = type_name
    if oneof is not None:
        f.oneof_index = oneof
    return f


def protocol_pool():
    """A pool with grpc.reflection.v1alpha (the parts used here) and grpc.health.v1, as declared
    in grpc/reflection/v1alpha/reflection.proto and grpc/health/v1/health.proto."""
    F = descriptor_pb2.FieldDescriptorProto
    STRING, BYTES, INT32, MSG, ENUM = (F.TYPE_STRING, F.TYPE_BYTES, F.TYPE_INT32, F.TYPE_MESSAGE,
                                       F.TYPE_ENUM)
    REPEATED = F.LABEL_REPEATED
    pool = descriptor_pool.DescriptorPool()

    r = descriptor_pb2.FileDescriptorProto(name="grpc/reflection/v1alpha/reflection.proto",
                                           package="grpc.reflection.v1alpha", syntax="proto3")
    req = r.message_type.add(name="ServerReflectionRequest")
    req.oneof_decl.add(name="message_request")
    _field(req, "host", 1, STRING)
    _field(req, "file_by_filename", 3, STRING, oneof=0)
    _field(req, "file_containing_symbol", 4, STRING, oneof=0)
    _field(req, "list_services", 7, STRING, oneof=0)
    fdr = r.message_type.add(name="FileDescriptorResponse")
    _field(fdr, "file_descriptor_proto", 1, BYTES, REPEATED)
    sr = r.message_type.add(name="ServiceResponse")
    _field(sr, "name", 1, STRING)
    lsr = r.message_type.add(name="ListServiceResponse")
    _field(lsr, "service", 1, MSG, REPEATED, ".grpc.reflection.v1alpha.ServiceResponse")
    er = r.message_type.add(name="ErrorResponse")
    _field(er, "error_code", 1, INT32)
    _field(er, "error_message", 2, STRING)
    resp = r.message_type.add(name="ServerReflectionResponse")
    resp.oneof_decl.add(name="message_response")
    _field(resp, "valid_host", 1, STRING)
    _field(resp, "original_request", 2, MSG, type_name=".grpc.reflection.v1alpha."
           "ServerReflectionRequest")
    _field(resp, "file_descriptor_response", 4, MSG,
           type_name=".grpc.reflection.v1alpha.FileDescriptorResponse", oneof=0)
    _field(resp, "list_services_response", 6, MSG,
           type_name=".grpc.reflection.v1alpha.ListServiceResponse", oneof=0)
    _field(resp, "error_response", 7, MSG, type_name=".grpc.reflection.v1alpha.ErrorResponse",
           oneof=0)
    pool.Add(r)

    h = descriptor_pb2.FileDescriptorProto(name="grpc/health/v1/health.proto",
                                           package="grpc.health.v1", syntax="proto3")
    hreq = h.message_type.add(name="HealthCheckRequest")
    _field(hreq, "service", 1, STRING)
    hresp = h.message_type.add(name="HealthCheckResponse")
    status = hresp.enum_type.add(name="ServingStatus")
    for i, n in enumerate(["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"]):
        status.value.add(name=n, number=i)
    _field(hresp, "status", 1, ENUM, type_name=".grpc.health.v1.HealthCheckResponse."
           "ServingStatus")
    pool.Add(h)
    return pool


class ReflectionClient:
    """Fetches the server's descriptors through reflection into a fresh pool."""

    def __init__(self, channel):
        self.protocol = protocol_pool()
        self.Req = message_class(self.protocol, "grpc.reflection.v1alpha.ServerReflectionRequest")
        self.Resp = message_class(self.protocol,
                                  "grpc.reflection.v1alpha.ServerReflectionResponse")
        self.call = channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            request_serializer=self.Req.SerializeToString,
            response_deserializer=self.Resp.FromString)
        self.pool = descriptor_pool.DescriptorPool()
        self.files = {}

    def ask(self, **kw):
        (resp,) = list(self.call(iter([self.Req(**kw)]), timeout=30))
        if resp.WhichOneof("message_response") == "error_response":
            raise LookupError(resp.error_response.error_message)
        return resp

    def services(self):
        return [s.name for s in self.ask(list_services="").list_services_response.service]

    def load_symbol(self, symbol):
        """Adds the file defining ``symbol`` and its dependencies (in dependency order)."""
        resp = self.ask(file_containing_symbol=symbol)
        for raw in resp.file_descriptor_response.file_descriptor_proto:
            fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
            self.files.setdefault(fd.name, fd)
        self._add_all()

    def _add(self, name, added):
        if name in added:
            return
        if name not in self.files:
            resp = self.ask(file_by_filename=name)
            for raw in resp.file_descriptor_response.file_descriptor_proto:
                fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
                self.files.setdefault(fd.name, fd)
        for dep in self.files[name].dependency:
            self._add(dep, added)
        try:
            self.pool.FindFileByName(name)
        except KeyError:
            self.pool.Add(self.files[name])
        added.add(name)

    def _add_all(self):
        added = set()
        for name in list(self.files):
            self._add(name, added)

    def cls(self, full_name):
        return message_class(self.pool, full_name)

    def method(self, channel, service, name):
        """A callable for service.name with dynamic request/response classes."""
        svc = self.pool.FindServiceByName(service)
        m = svc.methods_by_name[name]
        req, resp = self.cls(m.input_type.full_name), self.cls(m.output_type.full_name)
        make = channel.unary_stream if m.server_streaming else channel.unary_unary
        return req, make(f"/{service}/{name}", request_serializer=req.SerializeToString,
                         response_deserializer=resp.FromString)


def decode(tensor, dtypes):
    """A numpy array from a gradzoo Tensor, following its documented wire format."""
    dt = {"D_TYPE_FLOAT32": "<f4", "D_TYPE_FLOAT64": "<f8"}[dtypes.values_by_number[
        tensor.dtype].name]
    return np.frombuffer(tensor.data, dtype=dt).reshape(tuple(tensor.shape))


class InteropTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.channel = grpc.insecure_channel(SERVER.address)
        cls.refl = ReflectionClient(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()

    def test_reflection_lists_every_service(self):
        services = set(self.refl.services())
        for s in ("ZooService", "TrainingJobService", "GradientService", "AnalysisService",
                  "EmbeddingService", "InfoService"):
            self.assertIn("gradzoo.v1." + s, services)
        self.assertIn("grpc.health.v1.Health", services)

    def test_standard_health_check_and_watch(self):
        pool = protocol_pool()
        Req = message_class(pool, "grpc.health.v1.HealthCheckRequest")
        Resp = message_class(pool, "grpc.health.v1.HealthCheckResponse")
        serving = pool.FindEnumTypeByName(
            "grpc.health.v1.HealthCheckResponse.ServingStatus").values_by_name["SERVING"].number
        check = self.channel.unary_unary("/grpc.health.v1.Health/Check",
                                         request_serializer=Req.SerializeToString,
                                         response_deserializer=Resp.FromString)
        self.assertEqual(check(Req(service=""), timeout=10).status, serving)
        with self.assertRaises(grpc.RpcError) as cm:
            check(Req(service="no.such.Service"), timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        watch = self.channel.unary_stream("/grpc.health.v1.Health/Watch",
                                          request_serializer=Req.SerializeToString,
                                          response_deserializer=Resp.FromString)
        stream = watch(Req(service=""), timeout=10)
        self.assertEqual(next(stream).status, serving)
        stream.cancel()

    def test_server_info_through_reflection(self):
        self.refl.load_symbol("gradzoo.v1.InfoService")
        Req, call = self.refl.method(self.channel, "gradzoo.v1.InfoService", "GetServerInfo")
        info = call(Req(), timeout=30)
        self.assertTrue(info.version)
        self.assertEqual(info.device, "cpu")
        self.assertGreater(info.max_points_per_query, 0)

    def test_train_list_and_query_through_reflection(self):
        for s in ("ZooService", "TrainingJobService", "GradientService"):
            self.refl.load_symbol("gradzoo.v1." + s)
        # Submit a small training job, built field by field from the reflected descriptors.
        CreateReq, create = self.refl.method(self.channel, "gradzoo.v1.TrainingJobService",
                                             "CreateTrainingJob")
        req = CreateReq()
        req.job.zoo_training.zoo_id = "interop"
        spec = req.job.zoo_training.spec
        spec.task.name = "mul2"
        spec.architecture.hidden_widths.extend([8, 8])
        spec.training.steps = 50
        job = create(req, timeout=30).job
        self.assertTrue(job.name.startswith("trainingJobs/"))
        WatchReq, watch = self.refl.method(self.channel, "gradzoo.v1.TrainingJobService",
                                           "WatchTrainingJob")
        states = self.refl.pool.FindEnumTypeByName("gradzoo.v1.JobState")
        final = [u.job for u in watch(WatchReq(name=job.name), timeout=120)][-1]
        self.assertEqual(states.values_by_number[final.state].name, "JOB_STATE_SUCCEEDED")

        ListReq, list_zoos = self.refl.method(self.channel, "gradzoo.v1.ZooService", "ListZoos")
        zoos = list_zoos(ListReq(), timeout=30).zoos
        self.assertIn("zoos/interop", [z.name for z in zoos])
        GetReq, get_zoo = self.refl.method(self.channel, "gradzoo.v1.ZooService", "GetZoo")
        with self.assertRaises(grpc.RpcError) as cm:
            get_zoo(GetReq(name="zoos/missing"), timeout=30)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)

        # Weights as documented tensors, then the gradient field checked against W2 D W1 at
        # one point, computed here with numpy from those weights.
        ModelsReq, list_models = self.refl.method(self.channel, "gradzoo.v1.ZooService",
                                                  "ListModels")
        (model,) = list_models(ModelsReq(parent="zoos/interop", include_weights=True),
                               timeout=30).models
        dtypes = self.refl.pool.FindEnumTypeByName("gradzoo.v1.DType")
        layers = [(decode(l.weight, dtypes), decode(l.bias, dtypes)) for l in model.layers]
        self.assertEqual([w.shape for w, _ in layers], [(8, 4), (8, 8), (2, 8)])
        x = np.array([0.3, 0.6, 0.2, 0.9], dtype=np.float32)
        FieldReq, field = self.refl.method(self.channel, "gradzoo.v1.GradientService",
                                           "ComputeGradientField")
        freq = FieldReq()
        freq.selection.models.append(model.name)
        pts = freq.points.explicit_points
        pts.shape.extend([1, 4])
        pts.dtype = dtypes.values_by_name["D_TYPE_FLOAT32"].number
        pts.data = struct.pack("<4f", *x)
        chunks = list(field(freq, timeout=60))
        self.assertTrue(chunks[-1].last)
        g = decode(chunks[0].gradients, dtypes)
        self.assertEqual(g.shape, (1, 2, 4))
        h, jac = x.astype(np.float64), np.eye(4)
        for k, (w, b) in enumerate(layers):
            z = w.astype(np.float64) @ h + b
            jac = w.astype(np.float64) @ jac
            if k + 1 < len(layers):
                mask = (z > 0).astype(np.float64)
                h, jac = z * mask, jac * mask[:, None]
        np.testing.assert_allclose(g[0], jac, rtol=1e-5, atol=1e-6)


if __name__ == "__main__":
    unittest.main()
