#!/usr/bin/env python3
"""Random-initialised MLP score networks for latency benchmarks (`picardiff bench --mlp ...` and
benches/peers/torch_peer.py), in picardiff's safetensors format (tools/mlp_reference.py).

    python3 tools/make_bench_models.py OUT_DIR [H ...]      (default H: 256 1024 4096)

writes OUT_DIR/mlp_h{H}.safetensors: D = 64, 3 residual pre-LayerNorm blocks, SiLU, time embedding
64, epsilon prediction, ddpm-linear; PyTorch's default initialisation with a fixed seed. Untrained:
they time the forward and the sampler's work honestly, but their samples mean nothing (the trained
models are examples/models/*.safetensors). Not committed (H = 4096 is ~400 MB); make them where
they are used.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mlp_reference  # noqa: E402


def main():
    out = sys.argv[1]
    hidden = [int(h) for h in sys.argv[2:]] or [256, 1024, 4096]
    os.makedirs(out, exist_ok=True)
    for h in hidden:
        torch.manual_seed(h)
        cfg = mlp_reference.make_config(64, h, 3, description=f"random init, H={h}, for benchmarks")
        model = mlp_reference.PicardiffMLP(cfg)
        path = os.path.join(out, f"mlp_h{h}.safetensors")
        mlp_reference.save(model, path)
        print(path)


if __name__ == "__main__":
    main()
