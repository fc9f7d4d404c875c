"""PyTorch <-> gradzoo weights, as data only (no pickle, no TorchScript).

:func:`import_torch` turns an ``nn.Sequential`` MLP into :class:`ModelWeights` (numpy float32
layers, input side first, plus the activation), which ``Client.import_model`` sends; the server
sees tensors, never code. :func:`to_torch` goes the other way, e.g. to check a stored model with
autograd. torch is imported only when these are called.

Accepted modules: ``Linear`` layers separated by one activation each, all the same kind:
``ReLU``, ``GELU`` (exact erf form, ``approximate="none"``) or ``Tanh``; no activation after the
last Linear (gradzoo networks end linear). ``Identity`` and ``Dropout`` (a no-op at inference)
are skipped; nested ``Sequential``s are flattened. Anything else raises ValueError naming the
layer.
"""

import dataclasses
from typing import List

import numpy as np

from .types import Layer

__all__ = ["ModelWeights", "import_torch", "to_torch"]


@dataclasses.dataclass
class ModelWeights:
    """An MLP as data: ``layers`` (weight [out, in] and bias [out], float32, input side first)
    and the hidden ``activation`` ("relu", "gelu" or "tanh")."""
    layers: List[Layer]
    activation: str

    @property
    def input_dim(self):
        return int(self.layers[0].weight.shape[1])

    @property
    def output_dim(self):
        return int(self.layers[-1].weight.shape[0])

    @property
    def hidden_widths(self):
        return tuple(int(l.weight.shape[0]) for l in self.layers[:-1])


def _flatten(module, nn):
    for child in module.children() if isinstance(module, nn.Sequential) else [module]:
        if isinstance(child, nn.Sequential):
            yield from _flatten(child, nn)
        else:
            yield child


def _activation_name(m, nn):
    if isinstance(m, nn.ReLU):
        return "relu"
    if isinstance(m, nn.Tanh):
        return "tanh"
    if isinstance(m, nn.GELU):
        if getattr(m, "approximate", "none") != "none":
            raise ValueError("GELU(approximate='tanh') differs from gradzoo's exact erf GELU; "
                             "use nn.GELU()")
        return "gelu"
    return None


def _array(t):
    """A float32 C-contiguous numpy copy of a torch tensor's data (detached, on the CPU)."""
    import torch
    return np.array(t.detach().to(device="cpu", dtype=torch.float32).numpy(), dtype=np.float32,
                    order="C", copy=True)


def import_torch(model):
    """Converts a torch ``nn.Sequential`` MLP (see the module doc) into :class:`ModelWeights`.

    The arrays are copies: later training of ``model`` does not change them.
    Raises ValueError for unsupported layers, mixed activations, mismatched widths, an
    activation after the last Linear, or no Linear at all.
    """
    import torch.nn as nn

    if not isinstance(model, nn.Sequential):
        raise ValueError(f"expected an nn.Sequential, got {type(model).__name__}")
    layers, activation, expect_linear = [], None, True
    for i, m in enumerate(_flatten(model, nn)):
        if isinstance(m, (nn.Identity, nn.Dropout)):
            continue
        if isinstance(m, nn.Linear):
            if not expect_linear:
                raise ValueError(f"layer {i} (Linear) follows a Linear without an activation: "
                                 "gradzoo MLPs alternate Linear and activation")
            weight = _array(m.weight)
            bias = (_array(m.bias) if m.bias is not None
                    else np.zeros(weight.shape[0], dtype=np.float32))
            if layers and layers[-1].weight.shape[0] != weight.shape[1]:
                raise ValueError(f"layer {i} (Linear) takes {weight.shape[1]} inputs but the "
                                 f"previous Linear gives {layers[-1].weight.shape[0]}")
            layers.append(Layer(weight, bias))
            expect_linear = False
            continue
        name = _activation_name(m, nn)
        if name is None:
            raise ValueError(f"layer {i} ({type(m).__name__}) is not supported: use Linear "
                             "with ReLU, GELU or Tanh")
        if expect_linear:
            raise ValueError(f"layer {i} ({type(m).__name__}) must follow a Linear")
        if activation is not None and activation != name:
            raise ValueError(f"layer {i} mixes activations ({activation} and {name}); a gradzoo "
                             "model uses one activation")
        activation = name
        expect_linear = True
    if not layers:
        raise ValueError("the model has no Linear layer")
    if expect_linear:
        raise ValueError("the model ends with an activation; gradzoo networks end with a Linear")
    return ModelWeights(layers, activation or "relu")


def to_torch(weights):
    """An ``nn.Sequential`` (float32, eval mode) computing the same function as ``weights`` (a
    :class:`ModelWeights` or a :class:`gradzoo.Model` fetched with its weights)."""
    import torch
    import torch.nn as nn

    if not weights.layers:
        raise ValueError("no layers: fetch the model with weights (Client.model)")
    act = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}[weights.activation or "relu"]
    mods = []
    for k, layer in enumerate(weights.layers):
        w = np.asarray(layer.weight, dtype=np.float32)
        lin = nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.array(w)))
            lin.bias.copy_(torch.from_numpy(np.array(layer.bias, dtype=np.float32)))
        mods.append(lin)
        if k + 1 < len(weights.layers):
            mods.append(act())
    return nn.Sequential(*mods).eval()
