"""RetNet chunkwise forward in eager PyTorch, the same math as plugins/retnet
(unnormalised core, torchscale rotation, per-head RMSNorm, swish gate), to
compare with bench_retnet's `chunkwise ms` column at the same sizes.

    python3 bench/python/retnet_eager.py [--max-len 8192] [--d-model 256] [--heads 4]
                                         [--chunk 64] [--batch 1] [--rounds 3] [--threads 1]

Same defaults as bench_retnet; forward only, no grad, float32, CPU.
"""
import argparse
import math
import statistics
import time

import torch


def retnet_chunkwise(x, w, heads, chunk, eps=1e-6):
    b, t, d = x.shape
    dk, dv = d // heads, w["v"].shape[0] // heads
    q = (x @ w["q"].T).view(b, t, heads, dk).transpose(1, 2)
    k = (x @ w["k"].T).view(b, t, heads, dk).transpose(1, 2) * dk ** -0.5
    v = (x @ w["v"].T).view(b, t, heads, dv).transpose(1, 2)
    angle = 10000.0 ** -torch.linspace(0, 1, dk // 2, dtype=torch.float64)
    theta = torch.arange(t, dtype=torch.float64)[:, None] * angle.repeat_interleave(2)
    cos, sin = theta.cos().float(), theta.sin().float()

    def rotate(z):
        return z * cos + torch.stack((-z[..., 1::2], z[..., ::2]), -1).flatten(-2) * sin

    q, k = rotate(q), rotate(k)
    log_decay = torch.log(1 - 2.0 ** (-5 - torch.arange(heads, dtype=torch.float64))).float()
    state = x.new_zeros(b, heads, dk, dv)
    outputs = []
    for start in range(0, t, chunk):
        qc, kc, vc = (z[:, :, start:start + chunk] for z in (q, k, v))
        n = qc.shape[2]
        pos = torch.arange(n, dtype=torch.float32)
        dist = pos[:, None] - pos[None, :]
        mask = torch.exp((log_decay[:, None, None] * dist).masked_fill(dist < 0, -math.inf))
        xi = torch.exp(log_decay[:, None] * (pos + 1))[..., None]
        zeta = torch.exp(log_decay[:, None] * (n - 1 - pos))[..., None]
        outputs.append(((qc @ kc.transpose(-1, -2)) * mask) @ vc + (qc * xi) @ state)
        state = torch.exp(log_decay * n)[:, None, None] * state + kc.transpose(-1, -2) @ (vc * zeta)
    o = torch.cat(outputs, 2)
    o = o * torch.rsqrt(o.square().mean(-1, keepdim=True) + eps)
    g = x @ w["g"].T
    return (torch.nn.functional.silu(g) * o.transpose(1, 2).reshape(b, t, -1)) @ w["o"].T


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--max-len", type=int, default=8192)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--chunk", type=int, default=64)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    d, dv = a.d_model, 2 * a.d_model
    w = {n: torch.randn(shape) * 0.02 for n, shape in
         {"q": (d, d), "k": (d, d), "v": (dv, d), "g": (dv, d), "o": (d, dv)}.items()}
    print(f"retnet chunkwise, eager PyTorch {torch.__version__}, float32, B={a.batch}, d_model={d}, "
          f"heads={a.heads}, chunk={a.chunk}, {a.threads} thread(s), median of {a.rounds}")
    print(f"{'T':>6}  {'ms':>9}  {'us/token':>9}")
    t = 512
    with torch.no_grad():
        while t <= a.max_len:
            x = torch.randn(a.batch, t, d)
            retnet_chunkwise(x, w, a.heads, a.chunk)  # warm-up
            times = []
            for _ in range(a.rounds):
                t0 = time.perf_counter()
                retnet_chunkwise(x, w, a.heads, a.chunk)
                times.append(time.perf_counter() - t0)
            m = statistics.median(times)
            print(f"{t:>6}  {m * 1e3:>9.3g}  {m * 1e6 / (t * a.batch):>9.3g}")
            t *= 2


if __name__ == "__main__":
    main()
