"""PyTorch's rows of bench_attention_cpu: TrainGPT's causal attention as the
PyTorch twin (bench/torch_gpt.py) runs it on the CPU, f32: q, k and v split
from a packed [B, T, 3 C] projection, F.scaled_dot_product_attention with
is_causal (PyTorch 2), or the twin's own masked softmax (PyTorch 1.13, which
has no fused attention), the heads merged back; forward alone and forward + backward, best
of --reps after a warm-up, torch.set_num_threads(--threads).  Flops counted
as bench_attention_cpu counts them.
"""
import argparse
import time

import torch
import torch.nn.functional as F


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--name", default="custom")
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--head-dim", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=20)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    B, T, H, D = a.batch, a.seq, a.heads, a.head_dim
    C = H * D
    qkv = torch.randn(B, T, 3 * C)
    sdpa = getattr(F, "scaled_dot_product_attention", None)
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))

    def attention(x):
        q, k, v = x.split(C, dim=2)
        q, k, v = (t.view(B, T, H, D).transpose(1, 2) for t in (q, k, v))
        if sdpa is not None:
            y = sdpa(q, k, v, is_causal=True)
        else:  # bench/torch_gpt.py's attention
            att = (q @ k.transpose(-2, -1)) * (D ** -0.5)
            y = att.masked_fill(~mask, float("-inf")).softmax(-1) @ v
        return y.transpose(1, 2).contiguous().view(B, T, C)

    def best_ms(backward):
        x = qkv.clone().requires_grad_(backward)
        best = float("inf")
        for r in range(a.reps + 1):
            t0 = time.perf_counter()
            if backward:
                attention(x).sum().backward()
                x.grad = None
            else:
                with torch.no_grad():
                    attention(x)
            t = time.perf_counter() - t0
            if r > 0:
                best = min(best, t)
        return best * 1e3

    fl = 2.0 * B * H * T * T * D
    f, fb = best_ms(False), best_ms(True)
    print(f"{'  torch ' + torch.__version__:24s} {B:4d} {T:5d} {H:3d} {D:4d} "
          f"{f:12.3f} {fl / f * 1e-6:8.1f} {fb:12.3f} {3.5 * fl / fb * 1e-6:8.1f}")


if __name__ == "__main__":
    main()
