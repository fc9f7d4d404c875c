"""The generated gradzoo.v1 modules (protoc --python_out + grpc_python_plugin, made by the build).

Every ``*_pb2`` / ``*_pb2_grpc`` module present in ``gradzoo/v1`` is loaded, so a new .proto needs
no edit here. :class:`Rpcs` binds every method of every service on one channel, with its kind
(unary or server-streaming) and request class read from the descriptors: that is what makes
``Client.call("AnyRpc", ...)`` work for RPCs the typed API does not wrap yet.
"""

import importlib
import pkgutil

_HINT = ("the generated gradzoo.v1 stubs were not found: build the project (target "
         "gradzoo_python, part of `ninja -C BUILD`) and put BUILD/python before client/python "
         "on PYTHONPATH, e.g. PYTHONPATH=$PWD/build/python:$PWD/client/python "
         "(see client/python/README.md)")

try:
    _v1 = importlib.import_module("gradzoo.v1")
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(_HINT) from e

_MODULES = {}
for _info in pkgutil.iter_modules(_v1.__path__):
    if _info.name.endswith("_pb2") or _info.name.endswith("_pb2_grpc"):
        _MODULES[_info.name] = importlib.import_module("gradzoo.v1." + _info.name)
if "tensor_pb2" not in _MODULES:  # pragma: no cover
    raise ImportError(_HINT)


def module(name):
    """The generated module ``gradzoo.v1.<name>`` (e.g. "zoo_pb2")."""
    return _MODULES[name]


def message_class(full_name):
    """The generated class of message ``full_name`` (e.g. "gradzoo.v1.Tensor")."""
    short = full_name.rsplit(".", 1)[-1]
    for name, mod in _MODULES.items():
        if name.endswith("_pb2") and short in mod.DESCRIPTOR.message_types_by_name:
            if mod.DESCRIPTOR.message_types_by_name[short].full_name == full_name:
                return getattr(mod, short)
    raise KeyError(full_name)


class Rpc:
    """One bound RPC: ``callable`` (from the generated stub), its descriptor and request class."""

    def __init__(self, service, method, stub):
        self.service = service.name
        self.name = method.name
        self.full_name = f"/{service.full_name}/{method.name}"
        self.server_streaming = method.server_streaming
        self.client_streaming = method.client_streaming
        self.request_class = message_class(method.input_type.full_name)
        self.response_class = message_class(method.output_type.full_name)
        self.callable = getattr(stub, method.name)


class Rpcs:
    """Every RPC of every gradzoo.v1 service, bound to one channel. Look up by method name
    ("GetZoo") or "Service.Method" ("ZooService.GetZoo")."""

    def __init__(self, channel):
        self.stubs = {}
        self._by_name = {}
        for name, mod in sorted(_MODULES.items()):
            if not name.endswith("_pb2"):
                continue
            grpc_mod = _MODULES.get(name + "_grpc")
            for service in mod.DESCRIPTOR.services_by_name.values():
                stub = getattr(grpc_mod, service.name + "Stub")(channel)
                self.stubs[service.name] = stub
                for method in service.methods:
                    rpc = Rpc(service, method, stub)
                    self._by_name[f"{service.name}.{method.name}"] = rpc
                    self._by_name.setdefault(method.name, rpc)

    def __getitem__(self, name):
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no RPC named {name!r} in gradzoo.v1") from None

    def names(self):
        """Every "Service.Method" name."""
        return sorted(n for n in self._by_name if "." in n)
