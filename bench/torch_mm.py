"""torch.mm at one TrainGPT layer's product shapes (bench_gemm_libs's
PyTorch rows): the same nine products, operands and timing rule (best of
--reps, 64 MiB written between repetitions), torch.set_num_threads(--threads).
"""
import argparse
import time

import torch


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--rows", type=int, default=4096)
    ap.add_argument("--width", type=int, default=384)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    T, C = a.rows, a.width
    products = [("qkv x @ W^T", 0, 1, T, 3 * C, C), ("proj x @ W^T", 0, 1, T, C, C),
                ("fc x @ W^T", 0, 1, T, 4 * C, C), ("fc2 x @ W^T", 0, 1, T, C, 4 * C),
                ("fc2 dx g @ W", 0, 0, T, 4 * C, C), ("fc dx g @ W", 0, 0, T, C, 4 * C),
                ("fc dW g^T @ x", 1, 0, 4 * C, C, T), ("fc2 dW g^T @ x", 1, 0, C, 4 * C, T),
                ("qkv dW g^T @ x", 1, 0, 3 * C, C, T)]
    junk = torch.empty(16 << 20)
    total = 0.0
    print(f"torch {torch.__version__}, {a.threads} threads, MKL: {torch.backends.mkl.is_available()}")
    for name, ta, tb, M, N, K in products:
        x = torch.rand(K, M).t() if ta else torch.rand(M, K)
        w = torch.rand(N, K).t() if tb else torch.rand(K, N)
        out = torch.empty(M, N)
        best = float("inf")
        for r in range(a.reps):
            junk.fill_(r)
            t0 = time.perf_counter()
            torch.mm(x, w, out=out)
            best = min(best, time.perf_counter() - t0)
        total += best
        print(f"{name:16s} {M:6d} {N:6d} {K:6d}  torch {2 * M * N * K / best * 1e-9:7.1f}")
    print(f"all nine, ms:  torch {total * 1e3:.2f}")


if __name__ == "__main__":
    main()
