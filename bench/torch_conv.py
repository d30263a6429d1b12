"""conv2d forward and forward+backward times in PyTorch for bench_conv.

Reads shapes from the command line as N,C,H,W,K,R,S,stride,pad,groups
(one argument each) and prints, per shape, 'torch conv <i> fwd_ms <v>
fwdbwd_ms <v>' (the best of several rounds; backward of y.sum(), gradients
of x and w)."""
import argparse
import time

import torch

# f32 convolutions in f32 on both sides: Tyr runs f32 with FMA math unless
# tyr_cuda_set_matmul_mode allows TF32, while PyTorch allows TF32 in cuDNN
# by default
torch.backends.cudnn.allow_tf32 = False
import torch.nn.functional as F


def best_ms(fn, reps, cuda):
    fn()
    if cuda:
        torch.cuda.synchronize()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        if cuda:
            torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - t0) / reps)
    return best * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("shapes", nargs="+")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--cuda", action="store_true")
    ap.add_argument("--bf16", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dev = "cuda" if a.cuda else "cpu"
    dt = torch.bfloat16 if a.bf16 else torch.float32
    for i, s in enumerate(a.shapes):
        N, C, H, W, K, R, S, st, pad, g = (int(v) for v in s.split(","))
        x = torch.randn(N, C, H, W, device=dev, dtype=dt, requires_grad=True)
        w = torch.randn(K, C // g, R, S, device=dev, dtype=dt, requires_grad=True)

        def fwd():
            with torch.no_grad():
                F.conv2d(x, w, None, st, pad, 1, g)

        def fwdbwd():
            x.grad = None
            w.grad = None
            F.conv2d(x, w, None, st, pad, 1, g).sum().backward()

        print("torch conv %d fwd_ms %.4f fwdbwd_ms %.4f" % (i, best_ms(fwd, a.reps, a.cuda),
                                                            best_ms(fwdbwd, a.reps, a.cuda)),
              flush=True)


if __name__ == "__main__":
    main()
