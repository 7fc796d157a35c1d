#!/usr/bin/env python3
"""The PyTorch twin of picardiff's MLP score network (src/model/mlp), and the writer of its test data.

The module mirrors the Rust forward operation for operation (see the docs of src/model/mlp/mod.rs):

    emb(t) = [cos(s t f_k), sin(s t f_k)], f_k = exp(-ln(max_period) k / (E/2))   (float64, rounded to f32)
    tau(t) = time_fc2(silu(time_fc1(emb))) [+ cond_proj(cond)]
    h      = input(x) + tau(t)
    layer: u = norm(h) if layernorm else h;  h = h + fc2(act(fc1(u))) if residual else act(fc1(u))
    out    = output(norm_out(h)) if residual and layernorm else output(h)

Tensor names are the module's state_dict names; the configuration goes into the safetensors
`__metadata__` under "picardiff_mlp" as a JSON string.

Run from the repository root with a PyTorch venv (outside the repo):

    /work/.venv-torch/bin/python tools/mlp_reference.py [mix64d_flow]

writes tests/data/mlp_variant_{a,b}.safetensors (small random networks covering the options the
trained models do not use) and tests/data/mlp_forward_{moons2d,mix64d,variant_a,variant_b,
mix64d_flow}.json (with the argument `mix64d_flow`, that record alone):
fixed inputs x, t (and cond) with the PyTorch outputs in float32 ("out") and float64 ("out_f64",
the same float32 weights evaluated in double precision). The trained models
(examples/models/*.safetensors) come from tools/train_mlp.py and must exist first.
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

METADATA_KEY = "picardiff_mlp"
FORMAT_VERSION = 1
ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


class Block(nn.Module):
    def __init__(self, hidden, residual, layernorm, eps):
        super().__init__()
        self.norm = nn.LayerNorm(hidden, eps=eps) if layernorm else None
        self.fc1 = nn.Linear(hidden, hidden)
        self.fc2 = nn.Linear(hidden, hidden) if residual else None


class PicardiffMLP(nn.Module):
    """The network of src/model/mlp; `config` is the metadata dictionary (see `make_config`)."""

    def __init__(self, config):
        super().__init__()
        c = dict(config)
        self.config = c
        d, h, e, k = c["dim"], c["hidden"], c["time_embed_dim"], c.get("cond_dim", 0)
        assert e % 2 == 0
        eps = c.get("layernorm_eps", 1e-5)
        self.time_fc1 = nn.Linear(e, h)
        self.time_fc2 = nn.Linear(h, h)
        self.cond_proj = nn.Linear(k, h) if k > 0 else None
        self.input = nn.Linear(d, h)
        self.layers = nn.ModuleList(
            [Block(h, c["residual"], c["layernorm"], eps) for _ in range(c["layers"])]
        )
        self.norm_out = nn.LayerNorm(h, eps=eps) if c["residual"] and c["layernorm"] else None
        self.output = nn.Linear(h, d)

    def act(self, v):
        if self.config["activation"] == "silu":
            return F.silu(v)
        return F.gelu(v, approximate="tanh")

    def time_embedding(self, t):
        """emb(t) in float64, rounded to float32 (then cast to the module's dtype)."""
        c = self.config
        half = c["time_embed_dim"] // 2
        k = torch.arange(half, dtype=torch.float64, device=t.device)
        f = torch.exp(-math.log(c.get("max_period", 10000.0)) * k / half)
        a = t.to(torch.float64)[:, None] * c.get("time_scale", 1.0) * f[None, :]
        emb = torch.cat([torch.cos(a), torch.sin(a)], dim=1).to(torch.float32)
        return emb.to(self.input.weight.dtype)

    def forward(self, x, t, cond=None):
        tau = self.time_fc2(F.silu(self.time_fc1(self.time_embedding(t))))
        if self.cond_proj is not None:
            assert cond is not None, "this model needs cond"
            tau = tau + self.cond_proj(cond.to(tau.dtype).reshape(1, -1))
        h = self.input(x) + tau
        for blk in self.layers:
            u = blk.norm(h) if blk.norm is not None else h
            if blk.fc2 is not None:
                h = h + blk.fc2(self.act(blk.fc1(u)))
            else:
                h = self.act(blk.fc1(u))
        if self.norm_out is not None:
            h = self.norm_out(h)
        return self.output(h)


def make_config(dim, hidden, layers, time_embed_dim=64, activation="silu", residual=True,
                layernorm=True, cond_dim=0, prediction="epsilon", schedule="ddpm-linear",
                train_steps=1000, time_scale=1.0, max_period=10000.0, layernorm_eps=1e-5,
                description=None, training=None):
    c = {
        "format_version": FORMAT_VERSION,
        "dim": dim,
        "hidden": hidden,
        "layers": layers,
        "time_embed_dim": time_embed_dim,
        "activation": activation,
        "residual": residual,
        "layernorm": layernorm,
        "layernorm_eps": layernorm_eps,
        "cond_dim": cond_dim,
        "prediction": prediction,
        "schedule": schedule,
        "train_steps": train_steps,
        "time_scale": time_scale,
        "max_period": max_period,
    }
    if description is not None:
        c["description"] = description
    if training is not None:
        c["training"] = training
    return c


def save(model, path, dtype=torch.float32):
    """Writes the module's weights in `dtype` and its config to one safetensors file."""
    tensors = {k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, path, metadata={METADATA_KEY: json.dumps(model.config)})


def load(path, dtype=torch.float32):
    """Reads a picardiff MLP file into a PicardiffMLP with weights in `dtype` (upcast from the file)."""
    with safe_open(path, framework="pt") as f:
        config = json.loads(f.metadata()[METADATA_KEY])
        state = {k: f.get_tensor(k).to(dtype) for k in f.keys()}
    m = PicardiffMLP(config).to(dtype)
    m.load_state_dict(state, strict=True)
    return m.eval()


def forward_record(path, x, t, cond=None, extra_paths=()):
    """Fixed inputs and the PyTorch outputs for the model at `path` (and `extra_paths`, e.g. a bf16
    copy: "out_<dtype-tag>")."""
    rec = {
        "model": os.path.relpath(path, ROOT),
        "x": x.tolist(),
        "t": t.tolist(),
        "cond": None if cond is None else cond.tolist(),
    }
    with torch.no_grad():
        xt, tt = torch.tensor(x, dtype=torch.float32), torch.tensor(t, dtype=torch.float32)
        ct = None if cond is None else torch.tensor(cond, dtype=torch.float32)
        m32 = load(path, torch.float32)
        rec["out"] = m32(xt, tt, ct).numpy().astype(np.float32).astype(np.float64).tolist()
        m64 = load(path, torch.float64)
        rec["out_f64"] = m64(xt.double(), tt, ct).numpy().tolist()
        for tag, p in extra_paths:
            rec[f"model_{tag}"] = os.path.relpath(p, ROOT)
            m = load(p, torch.float32)
            rec[f"out_{tag}"] = m(xt, tt, ct).numpy().astype(np.float64).tolist()
    return rec


def fixed_times(n, rng, discrete=True, t_max=999):
    """Times covering both ends, repeats (consecutive equal times) and, for discrete schedules, a
    non-integer time."""
    if discrete:
        t = rng.integers(0, t_max + 1, size=n).astype(np.float32)
        t[:4] = [0, t_max, 500, 1.5]
        t[4:12] = 37  # a run of equal times (the lookup cache)
    else:
        t = rng.uniform(1e-3, 1.0, size=n).astype(np.float32)
        t[:3] = [1e-3, 1.0, 0.5]
        t[3:9] = 0.25
    return t


def write_variants():
    """Two small random networks for the options the trained models leave out."""
    out = []
    torch.manual_seed(1234)
    a = PicardiffMLP(make_config(
        3, 32, 2, time_embed_dim=16, activation="gelu_tanh", residual=False, layernorm=True,
        cond_dim=5, prediction="v", description="test variant a: plain layers, LayerNorm, GELU, cond"))
    pa = os.path.join(ROOT, "tests/data/mlp_variant_a.safetensors")
    save(a, pa)
    out.append(("variant_a", pa, 3, True, True))
    torch.manual_seed(5678)
    b = PicardiffMLP(make_config(
        5, 24, 3, time_embed_dim=8, activation="silu", residual=True, layernorm=False,
        prediction="sample", schedule="vp-linear", time_scale=1000.0,
        description="test variant b: residual without LayerNorm, f16 weights, continuous time"))
    pb = os.path.join(ROOT, "tests/data/mlp_variant_b.safetensors")
    save(b, pb, torch.float16)
    out.append(("variant_b", pb, 5, False, False))
    return out


def write_json(name, rec):
    path = os.path.join(ROOT, "tests/data", f"mlp_forward_{name}.json")
    with open(path, "w") as f:
        json.dump(rec, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {os.path.relpath(path, ROOT)}", file=sys.stderr)


def write_flow():
    """tests/data/mlp_forward_mix64d_flow.json: the rectified-flow model at model times σ·1000
    (σ from 1e-3 to 1, with repeats)."""
    rng = np.random.default_rng(20261207)
    path = os.path.join(ROOT, "examples/models/mix64d_flow.safetensors")
    n = 24
    x = (rng.standard_normal((n, 64)) * 1.2).astype(np.float32)
    t = (fixed_times(n, rng, discrete=False) * 1000).astype(np.float32)
    write_json("mix64d_flow", forward_record(path, x, t))


def main():
    torch.set_num_threads(1)  # 2 threads were 5x slower on the shared 2-core machine
    if sys.argv[1:] == ["mix64d_flow"]:  # that record alone (the others stay as they are)
        return write_flow()
    rng = np.random.default_rng(20261126)
    moons = os.path.join(ROOT, "examples/models/moons2d.safetensors")
    moons_bf16 = os.path.join(ROOT, "examples/models/moons2d_bf16.safetensors")
    mix = os.path.join(ROOT, "examples/models/mix64d.safetensors")
    n = 100  # crosses the CPU forward's 64-row chunk boundary
    x = (rng.standard_normal((n, 2)) * 1.5).astype(np.float32)
    write_json("moons2d", forward_record(moons, x, fixed_times(n, rng), None,
                                         [("bf16", moons_bf16)]))
    n = 24
    x = (rng.standard_normal((n, 64)) * 1.2).astype(np.float32)
    write_json("mix64d", forward_record(mix, x, fixed_times(n, rng)))
    for name, path, d, discrete, has_cond in write_variants():
        n = 70
        x = rng.standard_normal((n, d)).astype(np.float32)
        cond = rng.standard_normal(5).astype(np.float32) if has_cond else None
        write_json(name, forward_record(path, x, fixed_times(n, rng, discrete), cond))
    write_flow()


if __name__ == "__main__":
    main()
