#!/usr/bin/env python3
"""PyTorch's scaled_dot_product_attention per backend (FlashAttention-2,
cuDNN, memory-efficient, and the default choice) at an attention shape, bf16,
causal: forward and forward + backward time and TFLOP/s, counted as
bench_attention_cuda counts them (forward 4 B H T^2 D / 2, backward 2.5
times that).  The reference for Tyr's attention kernels
(build-gpu/bench/bench_attention_cuda) on the same GPU.

  python3 bench/torch_sdpa.py [--batch 16] [--heads 12] [--seq 1024] [--head-dim 64] [--iters 20]
"""
import argparse
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--iters", type=int, default=20)
    a = ap.parse_args()
    import torch  # after --help: the GPU machine's PyTorch 2.x (torch.nn.attention)
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel
    if not torch.cuda.is_available():
        print("torch_sdpa: no CUDA GPU: nothing measured")
        return
    B, H, T, D = a.batch, a.heads, a.seq, a.head_dim
    print(f"torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}, "
          f"{torch.cuda.get_device_name()}; B {B} H {H} T {T} D {D}, bf16, causal")

    def rand():  # [B, H, T, D] views of [B, T, H, D], as a GPT's heads are
        x = torch.randn(B, T, H, D, device="cuda", dtype=torch.bfloat16)
        return x.transpose(1, 2).requires_grad_()

    q, k, v = rand(), rand(), rand()
    g = torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16)
    flops = 4.0 * B * H * T * T * D / 2
    backends = [("flash", [SDPBackend.FLASH_ATTENTION]), ("cudnn", [SDPBackend.CUDNN_ATTENTION]),
                ("efficient", [SDPBackend.EFFICIENT_ATTENTION]), ("default", None)]
    for name, be in backends:
        try:
            ctx = sdpa_kernel(be) if be is not None else torch.autocast("cuda", enabled=False)
            with ctx:
                for _ in range(3):
                    F.scaled_dot_product_attention(q, k, v, is_causal=True).backward(g)
                torch.cuda.synchronize()
                t = time.perf_counter()
                for _ in range(a.iters):
                    F.scaled_dot_product_attention(q, k, v, is_causal=True)
                torch.cuda.synchronize()
                tf = (time.perf_counter() - t) / a.iters
                t = time.perf_counter()
                for _ in range(a.iters):
                    F.scaled_dot_product_attention(q, k, v, is_causal=True).backward(g)
                torch.cuda.synchronize()
                tb = (time.perf_counter() - t) / a.iters
            print(f"{name:10s} fwd {tf * 1e3:7.3f} ms {flops / tf / 1e12:6.1f} TFLOP/s   "
                  f"fwd+bwd {tb * 1e3:7.3f} ms {3.5 * flops / tb / 1e12:6.1f} TFLOP/s")
        except RuntimeError as e:
            print(f"{name:10s} not available: {str(e).splitlines()[0][:120]}")


if __name__ == "__main__":
    main()
