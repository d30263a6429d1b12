"""The train_mlp model and training step in PyTorch, for bench_train_mlp.

Reads the initial weights from the safetensors file Tyr wrote (--init), the
same Fashion-MNIST images in the same order (the first steps * batch of the
training set, unshuffled, normalised as train_mlp does), and trains the same
784-hidden-10 MLP with AdamW (weight decay on the weights only, constant
learning rate).  Prints 'init_loss <v>', one 'grad <name> <l2 norm>' line per
parameter after the first backward, one 'loss <step> <v>' line per step, and
'torch ms/step <v> img/s <v>' (timed over the steps after the first)."""
import argparse
import gzip
import json
import struct
import time

import numpy as np
import torch
import torch.nn.functional as F


def load_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", info
        a, b = info["data_offsets"]
        buf = raw[8 + n + a : 8 + n + b]
        out[name] = torch.from_numpy(np.frombuffer(buf, dtype="<f4").copy()).view(info["shape"])
    return out


def load_idx(path, offset):
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--init", required=True)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    n = a.steps * a.batch
    x = load_idx(f"{a.data}/train-images-idx3-ubyte.gz", 16)[: n * 784]
    y = load_idx(f"{a.data}/train-labels-idx1-ubyte.gz", 8)[:n]
    x = torch.from_numpy(x.astype(np.float32)).view(n, 784)
    x = (x / 255.0 - 0.2860) / 0.3530
    y = torch.from_numpy(y.astype(np.int64))
    w = load_safetensors(a.init)
    params = {k: torch.nn.Parameter(v) for k, v in w.items()}
    groups = [
        {"params": [p for k, p in params.items() if k.endswith("weight")], "weight_decay": a.weight_decay},
        {"params": [p for k, p in params.items() if k.endswith("bias")], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.999), eps=1e-8)

    def loss_of(xb, yb):
        h = F.relu(F.linear(xb, params["fc1.weight"], params["fc1.bias"]))
        return F.cross_entropy(F.linear(h, params["fc2.weight"], params["fc2.bias"]), yb)

    t0 = None
    for s in range(a.steps):
        if s == 1:
            t0 = time.perf_counter()
        xb, yb = x[s * a.batch : (s + 1) * a.batch], y[s * a.batch : (s + 1) * a.batch]
        loss = loss_of(xb, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if s == 0:
            print(f"init_loss {loss.item():.9g}")
            for k in sorted(params):
                print(f"grad {k} {params[k].grad.norm().item():.9g}")
        opt.step()
        print(f"loss {s + 1} {loss.item():.9g}")
    dt = (time.perf_counter() - t0) / max(a.steps - 1, 1)
    print(f"torch ms/step {dt * 1e3:.4f} img/s {a.batch / dt:.1f}")


if __name__ == "__main__":
    main()
