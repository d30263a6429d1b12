"""Muon against PyTorch: runs bench_muon (Tyr's steps, written to a
safetensors file), repeats the same steps in torch, compares, and times both.

  python3 bench/muon_torch.py [--bin build/bench/bench_muon] [--device cpu|cuda]
                              [--polar-express] [--steps 3]

With torch.optim.Muon (PyTorch 2.9 and later) the Newton-Schulz case is
checked against it; otherwise, and for Polar Express, against the same
formulas written here in torch (float64 on the CPU, bfloat16 iterations on
CUDA, as Tyr does).  Prints the relative difference of the final weights and
one line 'PASS' or 'FAIL'."""
import argparse
import json
import math
import os
import struct
import subprocess
import sys
import tempfile
import time

import torch

NS = (3.4445, -4.7750, 2.0315)
PE = [(8.156554524902461, -22.48329292557795, 15.878769915207462),
      (4.042929935166739, -2.808917465908714, 0.5000178451051316),
      (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
      (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
      (2.3465413258596377, -1.7097828382687081, 0.42323551169305323)]


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", info
        a, b = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[a:b]), dtype=torch.float32).reshape(info["shape"])
        out[name] = t.clone()
    return out, header.get("__metadata__", {})


def orthogonalize(u, pe, dtype, eps=1e-7, safety=0.01):
    x = u.to(dtype)
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    s = 1 + safety if pe else 1.0
    x = x / (x.float().norm() * s + eps).to(dtype)
    coeffs = [(a / s, b / s ** 3, c / s ** 5) for a, b, c in PE] if pe else [NS] * 5
    for a, b, c in coeffs:
        A = x @ x.T
        B = b * A + c * (A @ A)
        x = a * x + B @ x
    return (x.T if tall else x).to(u.dtype)


def reference(ws, grads, steps, pe, device, lr=0.02, wd=0.1, mom=0.95):
    dtype = torch.bfloat16 if device == "cuda" else torch.float64
    ws = [w.to(device, torch.float64 if device == "cpu" else torch.float32).clone() for w in ws]
    bufs = [torch.zeros_like(w) for w in ws]
    for k in range(steps):
        for i, w in enumerate(ws):
            g = grads[i][k].to(w)
            bufs[i].lerp_(g, 1 - mom)
            u = g.lerp(bufs[i], mom)
            o = orthogonalize(u, pe, dtype)
            w.mul_(1 - lr * wd).add_(o, alpha=-lr * math.sqrt(max(1, w.shape[0] / w.shape[1])))
    return [w.float().cpu() for w in ws]


def torch_muon(ws, grads, steps, device):
    params = [torch.nn.Parameter(w.to(device).clone()) for w in ws]
    opt = torch.optim.Muon(params, lr=0.02, weight_decay=0.1, momentum=0.95, nesterov=True,
                           ns_coefficients=NS, ns_steps=5, eps=1e-7, adjust_lr_fn="original")
    t = 0.0
    for k in range(steps):
        for i, p in enumerate(params):
            p.grad = grads[i][k].to(device).clone()
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if k > 0 or steps == 1:
            t += time.perf_counter() - t0
    return [p.detach().float().cpu() for p in params], 1e3 * t / max(1, steps - 1)


def rel(a, b):
    return max((x - y).norm().item() / y.norm().item() for x, y in zip(a, b))


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--bin", default=os.path.join(here, "..", "build", "bench", "bench_muon"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--polar-express", action="store_true")
    ap.add_argument("--steps", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "muon.safetensors")
        cmd = [a.bin, path, "--device", a.device, "--steps", str(a.steps)]
        if a.polar_express:
            cmd.append("--polar-express")
        print(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip())
        t, _ = read_safetensors(path)
    ws = [t["w0.init"], t["w1.init"]]
    grads = [[t[f"w{i}.grad.{k}"] for k in range(a.steps)] for i in range(2)]
    tyr = [t["w0.tyr"], t["w1.tyr"]]
    # Tyr iterates in bf16 on CUDA: tolerances follow the iteration dtype
    tol = 2e-2 if a.device == "cuda" else 1e-4
    ok = True
    ref = reference(ws, grads, a.steps, a.polar_express, a.device)
    d = rel(tyr, ref)
    print(f"muon: tyr vs the formulas in torch ({'bf16' if a.device == 'cuda' else 'f64'}): "
          f"relative difference of the weights {d:.3g}")
    ok &= d <= tol
    if not a.polar_express and hasattr(torch.optim, "Muon"):
        tm, ms = torch_muon(ws, grads, a.steps, a.device)
        d = rel(tyr, tm)
        print(f"muon: tyr vs torch.optim.Muon ({torch.__version__}): relative difference {d:.3g}; "
              f"torch {ms:.3f} ms per step")
        ok &= d <= tol
    elif not a.polar_express:
        print(f"muon: torch {torch.__version__} has no torch.optim.Muon (PyTorch 2.9 and later)")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
