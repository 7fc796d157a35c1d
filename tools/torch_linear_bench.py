#!/usr/bin/env python3
"""PyTorch's f32 Linear layers on the GPU for the MLP shapes of benches/cuda_mlp.rs: time per call and
TFLOP/s of y = x @ W.T + b at 1 and 1001 rows, H = 1024 and 4096 (D = 64 input). Compare with
cuda_mlp's TFLOP/s in the same run: `python3 tools/torch_linear_bench.py`."""
import time

import torch


def bench(rows, k, n, reps=50):
    x = torch.randn(rows, k, device="cuda")
    w = torch.randn(n, k, device="cuda")
    b = torch.randn(n, device="cuda")
    for _ in range(5):
        torch.nn.functional.linear(x, w, b)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        torch.nn.functional.linear(x, w, b)
    torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / reps
    return dt, 2 * rows * k * n / dt / 1e12


def main():
    print("torch", torch.__version__, torch.cuda.get_device_name(), "allow_tf32:", torch.backends.cuda.matmul.allow_tf32)
    for h in (1024, 4096):
        for rows in (1, 1001):
            dt, tf = bench(rows, h, h)
            print(f"linear {rows}x{h} @ {h}x{h}: {dt * 1e6:.1f} us, {tf:.2f} TFLOP/s")


if __name__ == "__main__":
    main()
