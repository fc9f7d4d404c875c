"""gradzoo: a Python client for gradzoo-server, for lab notebooks and scripts.

    import gradzoo
    client = gradzoo.Client("127.0.0.1:50551")
    job = client.train("lambda", lambdas=[0, 0.1, 0.2, 0.3, 0.4, 0.5], seeds=[0, 1])
    job.wait()                                   # progress bar in Jupyter and terminals
    fields = client.gradient_field("lambda/m0000", grid=[(0, 0, 1, 21), (1, 0, 1, 21)],
                                   theory=True)
    fields[0].gradients                          # numpy [441, 2, 4]

Methods return numpy arrays, dataclasses and plain values; failures raise GradzooError
subclasses carrying the gRPC code name and the server's message. See client/python/README.md.

Layout: this package (client/python/gradzoo) plus the stubs the build generates from the protos
(BUILD/python/gradzoo/v1). ``pkgutil.extend_path`` joins the two, so both roots go on
PYTHONPATH: ``PYTHONPATH=BUILD/python:client/python``.
"""

import pkgutil

__path__ = pkgutil.extend_path(__path__, __name__)  # also BUILD/python/gradzoo (the stubs)

from .errors import *  # noqa: E402,F401,F403  (GradzooError and one class per code)
from .errors import GradzooError, JobFailedError  # noqa: E402
from .client import Client, DEFAULT_ADDRESS  # noqa: E402
from .analysis import (Embedder, Neighbor, ProbeScores, Region, RegionCount,  # noqa: E402
                       RegionPartition, SettingScores, ZooOrthogonality)
from .display import ProgressDisplay, Table  # noqa: E402
from .jobs import FINAL_STATES, Job  # noqa: E402
from .local import LocalServer, find_server_binary  # noqa: E402
from .tensors import decode_tensor, encode_tensor  # noqa: E402
from .torch_bridge import ModelWeights, import_torch, to_torch  # noqa: E402
from .types import (GradientField, JobProgress, Layer, Model, ServerInfo, Zoo,  # noqa: E402
                    job_name, model_name, zoo_name)

__version__ = "0.1.0"
