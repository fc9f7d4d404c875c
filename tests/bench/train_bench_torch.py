#!/usr/bin/python3
"""PyTorch side of the training benchmark (tests/bench/run_train_bench.sh).

Trains the very models train_bench trains (same data, same initial weights, same minibatch
order, read from the directory `train_bench --dump DIR` wrote) with Adam (PyTorch's defaults:
betas 0.9/0.999, eps 1e-8, no weight decay) and gradzoo's cosine schedule
lr_t = lr * (0.05 + 0.95 * (1 + cos(pi (t-1) / S)) / 2), t = 1..S, in these forms:

  loop           a Python loop over nn.Sequential models, one torch.optim.Adam each (timed on
                 the first --loop-models models: the loop's cost is linear in the models)
  bmm_foreach    stacked [K, out, in] parameters, baddbmm forward, autograd backward of the
                 summed per-model losses, one Adam(foreach=True) over the stacked tensors
  bmm_single     the same with Adam(foreach=False)
  vmap_grad      functorch: vmap(grad(loss)) over combine_state_for_ensemble's functional model
  vmap_autograd  functorch: vmap of the functional model forward, autograd backward

Summing the per-model mean losses gives every model exactly its own gradient, and Adam is
elementwise, so the stacked forms are K independent trainings. Every form ends with the full
training- and validation-set MSE of every model (what TrainEnsemble reports); the timed span
is the training loop plus that evaluation (reading the files and building the models is not).

Prints one JSON object per line: {"impl", "time_s", "cpu_s" (process CPU time, every thread),
"model_steps_per_s", "model_steps_per_cpu_s", "models",
"mean_train_mse", "mean_val_mse", "val_mse"}.
"""
import argparse
import json
import math
import os
import time

import numpy as np
import torch


def load(d):
    meta = json.load(open(os.path.join(d, "meta.json")))
    k, n, v = meta["models"], meta["train_examples"], meta["validation_examples"]
    w = meta["widths"]

    def f32(name, shape):
        return torch.from_numpy(np.fromfile(os.path.join(d, name), dtype=np.float32).reshape(shape))

    data = {
        "xt": f32("x_train.f32", (k, n, w[0])),
        "yt": f32("y_train.f32", (k, n, w[-1])),
        "xv": f32("x_val.f32", (k, v, w[0])),
        "yv": f32("y_val.f32", (k, v, w[-1])),
        "order": torch.from_numpy(
            np.fromfile(os.path.join(d, "order.i64"), dtype=np.int64).reshape(meta["steps"], meta["batch"])),
    }
    flat = np.fromfile(os.path.join(d, "init.f32"), dtype=np.float32)
    init, off = [], 0
    for l in range(len(w) - 1):
        fan_in, out = w[l], w[l + 1]
        wt = torch.from_numpy(flat[off:off + k * out * fan_in].copy()).reshape(k, out, fan_in)
        off += k * out * fan_in
        bt = torch.from_numpy(flat[off:off + k * out].copy()).reshape(k, out)
        off += k * out
        init.append((wt, bt))
    assert off == flat.size
    return meta, data, init


def lr_at(meta, step):  # step = 1..S, gradzoo's cosine schedule
    s = meta["steps"]
    return meta["lr"] * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * (step - 1) / s)))


def stacked_forward(params, x):
    """params: [(W [K,out,in], b [K,out])...]; x [K, N, in] -> [K, N, out]."""
    h = x
    for l, (w, b) in enumerate(params):
        h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
        if l + 1 < len(params):
            h = torch.relu(h)
    return h


def final_losses(params, data):
    with torch.no_grad():
        tr = ((stacked_forward(params, data["xt"]) - data["yt"]) ** 2).mean(dim=(1, 2))
        va = ((stacked_forward(params, data["xv"]) - data["yv"]) ** 2).mean(dim=(1, 2))
    return tr, va


def result(impl, t, cpu, meta, models, tr, va):
    return {"impl": impl, "time_s": t, "cpu_s": cpu, "models": models,
            "model_steps_per_s": models * meta["steps"] / t,
            "model_steps_per_cpu_s": models * meta["steps"] / cpu,
            "mean_train_mse": float(tr.mean()), "mean_val_mse": float(va.mean()),
            "val_mse": [float(x) for x in va]}


def run_bmm(meta, data, init, foreach):
    params = [(w.clone().requires_grad_(), b.clone().requires_grad_()) for w, b in init]
    flat = [p for wb in params for p in wb]
    opt = torch.optim.Adam(flat, lr=meta["lr"], foreach=foreach)
    xt, yt, order = data["xt"], data["yt"], data["order"]
    t0, c0 = time.perf_counter(), time.process_time()
    for step in range(1, meta["steps"] + 1):
        idx = order[step - 1]
        xb, yb = xt.index_select(1, idx), yt.index_select(1, idx)
        loss = ((stacked_forward(params, xb) - yb) ** 2).mean(dim=(1, 2)).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for g in opt.param_groups:
            g["lr"] = lr_at(meta, step)
        opt.step()
    tr, va = final_losses([(w.detach(), b.detach()) for w, b in params], data)
    t, cpu = time.perf_counter() - t0, time.process_time() - c0
    return result("bmm_foreach" if foreach else "bmm_single", t, cpu, meta, meta["models"], tr, va)


def make_models(meta, init, count):
    w = meta["widths"]
    models = []
    for i in range(count):
        layers = []
        for l in range(len(w) - 1):
            lin = torch.nn.Linear(w[l], w[l + 1])
            with torch.no_grad():
                lin.weight.copy_(init[l][0][i])
                lin.bias.copy_(init[l][1][i])
            layers.append(lin)
            if l + 2 < len(w):
                layers.append(torch.nn.ReLU())
        models.append(torch.nn.Sequential(*layers))
    return models


def run_loop(meta, data, init, count):
    models = make_models(meta, init, count)
    opts = [torch.optim.Adam(m.parameters(), lr=meta["lr"]) for m in models]
    xt, yt, order = data["xt"], data["yt"], data["order"]
    t0, c0 = time.perf_counter(), time.process_time()
    for step in range(1, meta["steps"] + 1):
        idx = order[step - 1]
        lr = lr_at(meta, step)
        for i, (m, opt) in enumerate(zip(models, opts)):
            loss = torch.nn.functional.mse_loss(m(xt[i, idx]), yt[i, idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.param_groups[0]["lr"] = lr
            opt.step()
    params = [(torch.stack([m[2 * l].weight.detach() for m in models]),
               torch.stack([m[2 * l].bias.detach() for m in models]))
              for l in range(len(meta["widths"]) - 1)]
    sub = {k: v[:count] for k, v in data.items() if k != "order"}
    tr, va = final_losses(params, sub)
    t, cpu = time.perf_counter() - t0, time.process_time() - c0
    return result("loop", t, cpu, meta, count, tr, va)


def run_vmap(meta, data, init, use_grad):
    import functorch
    proto = make_models(meta, init, 1)
    fmodel, _, buffers = functorch.combine_state_for_ensemble(proto)
    # Leaf stacked parameters in nn.Sequential order (W1, b1, W2, b2, ...).
    flat = [t.clone().requires_grad_() for wb in init for t in wb]
    buffers = tuple(b.expand(meta["models"], *b.shape[1:]) for b in buffers)
    opt = torch.optim.Adam(flat, lr=meta["lr"], foreach=True)
    xt, yt, order = data["xt"], data["yt"], data["order"]

    def loss_one(p, b, x, y):
        return ((fmodel(p, b, x) - y) ** 2).mean()

    per_model_grad = functorch.vmap(functorch.grad(loss_one))
    batched_forward = functorch.vmap(fmodel)
    t0, c0 = time.perf_counter(), time.process_time()
    for step in range(1, meta["steps"] + 1):
        idx = order[step - 1]
        xb, yb = xt.index_select(1, idx), yt.index_select(1, idx)
        if use_grad:
            grads = per_model_grad(tuple(p.detach() for p in flat), buffers, xb, yb)
            for p, g in zip(flat, grads):
                p.grad = g
        else:
            loss = ((batched_forward(tuple(flat), buffers, xb) - yb) ** 2).mean(dim=(1, 2)).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
        for g in opt.param_groups:
            g["lr"] = lr_at(meta, step)
        opt.step()
    params = [(flat[2 * l].detach(), flat[2 * l + 1].detach()) for l in range(len(flat) // 2)]
    tr, va = final_losses(params, data)
    t, cpu = time.perf_counter() - t0, time.process_time() - c0
    return result("vmap_grad" if use_grad else "vmap_autograd", t, cpu, meta, meta["models"], tr, va)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--forms", default="bmm_foreach,bmm_single,vmap_grad,vmap_autograd,loop")
    ap.add_argument("--loop-models", type=int, default=50)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    meta, data, init = load(a.dir)
    for form in a.forms.split(","):
        if form == "loop":
            r = run_loop(meta, data, init, min(a.loop_models, meta["models"]))
        elif form in ("bmm_foreach", "bmm_single"):
            r = run_bmm(meta, data, init, form == "bmm_foreach")
        elif form in ("vmap_grad", "vmap_autograd"):
            r = run_vmap(meta, data, init, form == "vmap_grad")
        else:
            raise SystemExit(f"unknown form {form}")
        r["threads"] = a.threads
        r["torch"] = torch.__version__
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
