#!/usr/bin/python3
"""PyTorch side of the gradient benchmark (tests/bench/run_grad_bench.sh).

Reads the model and point sets grad_bench wrote (DIR/model.f32, DIR/grid.f32, DIR/random.f32),
times, with the same thread count and best of R runs:
  * the 1M-point input-gradient field of both outputs by batched autograd (one backward per
    output, retain_graph), on the whole batch and in 65536-point chunks;
  * the same by functorch vmap(jacrev(f)), whole batch and chunked;
  * region counting the usual ways: torch.unique(dim=0) on gradients rounded to 1e-5 (time of
    the unique alone, and including the fastest gradient computation), and numpy.unique(axis=0)
    on np.packbits of the ReLU masks (alone, and including the forward pass and packing);
and prints one JSON object.  usage: grad_bench.py DIR THREADS REPEATS
"""
import json
import sys
import time

import numpy as np
import torch
import functorch

DIR, THREADS, REPEATS = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(THREADS)
torch.set_grad_enabled(True)
CHUNK = 65536


def best(fn):
    """Best-of-REPEATS wall time, the process CPU time (all threads) of that run, the result."""
    t, cpu, out = float("inf"), float("inf"), None
    for _ in range(REPEATS):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall = time.perf_counter() - t0
        if wall < t:
            t, cpu = wall, time.process_time() - c0
    return t, cpu, out


flat = np.fromfile(f"{DIR}/model.f32", dtype=np.float32)
widths = [4, 64, 64, 2]
linears, off = [], 0
for i in range(3):
    lin = torch.nn.Linear(widths[i], widths[i + 1])
    n_w = widths[i] * widths[i + 1]
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(flat[off:off + n_w].reshape(widths[i + 1], widths[i])))
        off += n_w
        lin.bias.copy_(torch.from_numpy(flat[off:off + widths[i + 1]]))
        off += widths[i + 1]
    lin.requires_grad_(False)
    linears.append(lin)
model = torch.nn.Sequential(linears[0], torch.nn.ReLU(), linears[1], torch.nn.ReLU(), linears[2])


def autograd_field(x):
    x = x.clone().requires_grad_(True)
    y = model(x)
    rows = [torch.autograd.grad(y[:, o].sum(), x, retain_graph=o + 1 < y.shape[1])[0] for o in range(y.shape[1])]
    return torch.stack(rows, 1)  # [n, out, in]


def autograd_chunked(x):
    return torch.cat([autograd_field(c) for c in torch.split(x, CHUNK)])


single = lambda v: model(v)  # noqa: E731  (one point -> outputs)
vjac = functorch.vmap(functorch.jacrev(single))


def vmap_chunked(x):
    return torch.cat([vjac(c) for c in torch.split(x, CHUNK)])


def masks(x):
    with torch.no_grad():
        z1 = linears[0](x)
        z2 = linears[1](torch.relu(z1))
        m = torch.cat([z1 > 0, z2 > 0], 1).numpy()
    return np.packbits(m, axis=1)


result = {"threads": THREADS, "torch": torch.__version__}
for name in ("grid", "random"):
    x = torch.from_numpy(np.fromfile(f"{DIR}/{name}.f32", dtype=np.float32).reshape(-1, 4))
    r = {}
    forms = {
        "autograd_batched": lambda: autograd_field(x),
        "autograd_chunked": lambda: autograd_chunked(x),
        "vmap_jacrev": lambda: vjac(x),
        "vmap_jacrev_chunked": lambda: vmap_chunked(x),
    }
    grads = None
    for form, fn in forms.items():
        fn()  # warm up
        r[form], r[form + "_cpu"], g = best(fn)
        if grads is None:
            grads = g
    r["best_field_s"] = min(r[f] for f in forms)
    r["best_field_cpu_s"] = min(r[f + "_cpu"] for f in forms)
    flat_g = grads.reshape(grads.shape[0], -1)
    r["torch_unique_s"], r["torch_unique_cpu_s"], u = best(lambda: torch.unique(torch.round(flat_g * 1e5), dim=0))
    r["torch_unique_regions"] = int(u.shape[0])
    r["torch_unique_with_gradients_s"] = r["torch_unique_s"] + r["best_field_s"]
    r["torch_unique_with_gradients_cpu_s"] = r["torch_unique_cpu_s"] + r["best_field_cpu_s"]
    packed = masks(x)
    r["numpy_unique_s"], r["numpy_unique_cpu_s"], nu = best(lambda: np.unique(packed, axis=0))
    r["numpy_unique_regions"] = int(nu.shape[0])
    r["numpy_masks_s"], r["numpy_masks_cpu_s"], _ = best(lambda: masks(x))
    r["numpy_unique_with_masks_s"] = r["numpy_unique_s"] + r["numpy_masks_s"]
    r["numpy_unique_with_masks_cpu_s"] = r["numpy_unique_cpu_s"] + r["numpy_masks_cpu_s"]
    result[name] = r
print(json.dumps(result))
