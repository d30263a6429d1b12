"""The residual CNN of tyr_cnn (include/tyr/models/cnn.h) in PyTorch, for
bench_cnn.

  torch_cnn.py --check FILE   FILE (written by bench_cnn) holds Tyr's initial
      parameters and BatchNorm buffers under their names, batches x.<i>, y.<i>
      and Tyr's results: logits, loss, grad.<name> of the first batch and
      losses (one per SGD step over the batches).  The same model is loaded
      from the same weights and run on the same batches; prints the largest
      differences ('check <what> maxdiff <value>') and 'check ok' or
      'check FAIL'.
  torch_cnn.py --bench        times training steps (forward, backward, SGD
      with Nesterov momentum) on a random batch; prints
      'torch cnn img/s <value> ms/step <value>'.

The safetensors file is read with the standard library (the format is an
8-byte little-endian header length, a JSON header and the raw data), so the
Python package safetensors is not needed."""
import argparse
import json
import struct
import time

import torch

# f32 convolutions in f32 on both sides: Tyr runs f32 with FMA math unless
# tyr_cuda_set_matmul_mode allows TF32, while PyTorch allows TF32 in cuDNN
# by default
torch.backends.cudnn.allow_tf32 = False
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential()
            self.down.add_module("conv", nn.Conv2d(cin, cout, 1, stride, 0, bias=False))
            self.down.add_module("bn", nn.BatchNorm2d(cout))

    def forward(self, x):
        o = F.relu(self.bn1(self.conv1(x)))
        o = self.bn2(self.conv2(o))
        return F.relu(o + (self.down(x) if self.down is not None else x))


class CNN(nn.Module):
    def __init__(self, cin=1, classes=10, width=16, stages=3, blocks=1):
        super().__init__()
        self.stem = nn.Sequential()
        self.stem.add_module("conv", nn.Conv2d(cin, width, 3, 1, 1, bias=False))
        self.stem.add_module("bn", nn.BatchNorm2d(width))
        self.stages = nn.ModuleList()
        c = width
        for s in range(stages):
            out = width << s
            st = nn.ModuleList()
            for b in range(blocks):
                st.append(Block(c, out, 2 if (s > 0 and b == 0) else 1))
                c = out
            self.stages.append(st)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        h = F.relu(self.stem(x))
        for st in self.stages:
            for b in st:
                h = b(h)
        return self.fc(F.adaptive_avg_pool2d(h, 1).flatten(1))


DTYPES = {"F32": (torch.float32, 4), "F64": (torch.float64, 8), "I64": (torch.int64, 8),
          "I32": (torch.int32, 4), "U8": (torch.uint8, 1)}


def load_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        dt, _ = DTYPES[e["dtype"]]
        a, b = e["data_offsets"]
        t = torch.frombuffer(bytearray(raw[base + a:base + b]), dtype=dt)
        out[name] = t.reshape(e["shape"]).clone()
    return out


def sgd(model, lr, momentum, wd):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.SGD([{"params": decay, "weight_decay": wd},
                            {"params": rest, "weight_decay": 0.0}],
                           lr=lr, momentum=momentum, nesterov=True)


def check(args):
    torch.set_default_dtype(torch.float64)
    d = load_safetensors(args.check)
    meta = {k: int(d[k].item()) for k in ("cfg.width", "cfg.stages", "cfg.blocks", "cfg.steps")}
    model = CNN(width=meta["cfg.width"], stages=meta["cfg.stages"], blocks=meta["cfg.blocks"])
    sd = model.state_dict()
    for k in sd:
        if k.endswith("num_batches_tracked"):
            continue
        sd[k].copy_(d[k])
    model.train()
    x, y = d["x.0"], d["y.0"]
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    worst = {}
    worst["logits"] = (logits - d["logits"]).abs().max().item()
    worst["loss"] = abs(loss.item() - d["loss"].item())
    g = 0.0
    for name, p in model.named_parameters():
        g = max(g, (p.grad - d["grad." + name]).abs().max().item() / (1 + d["grad." + name].abs().max().item()))
    worst["grads"] = g
    # the same SGD steps on the same batches (fresh model from the same weights)
    model2 = CNN(width=meta["cfg.width"], stages=meta["cfg.stages"], blocks=meta["cfg.blocks"])
    sd2 = model2.state_dict()
    for k in sd2:
        if not k.endswith("num_batches_tracked"):
            sd2[k].copy_(d[k])
    opt = sgd(model2, d["cfg.lr"].item(), 0.9, d["cfg.wd"].item())
    losses = []
    for i in range(meta["cfg.steps"]):
        opt.zero_grad()
        l = F.cross_entropy(model2(d["x.%d" % i]), d["y.%d" % i])
        l.backward()
        opt.step()
        losses.append(l.item())
    worst["loss_curve"] = max(abs(a - b) for a, b in zip(losses, d["losses"].tolist()))
    for k, v in worst.items():
        print("check %s maxdiff %.3g" % (k, v))
    print("check torch losses " + " ".join("%.6f" % v for v in losses))
    print("check ok" if max(worst.values()) < 1e-8 else "check FAIL")


def bench(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = "cuda" if args.cuda else "cpu"
    model = CNN(width=args.width, stages=args.stages, blocks=args.blocks).to(dev)
    opt = sgd(model, 0.05, 0.9, 5e-4)
    x = torch.randn(args.batch, 1, 28, 28, device=dev)
    y = torch.randint(0, 10, (args.batch,), device=dev)
    best = float("inf")
    for rep in range(4):
        n = 3 if rep == 0 else args.steps
        t0 = time.perf_counter()
        for _ in range(n):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        if args.cuda:
            torch.cuda.synchronize()
        if rep > 0:
            best = min(best, (time.perf_counter() - t0) / n)
    print("torch cnn img/s %.1f ms/step %.3f" % (args.batch / best, best * 1e3))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--check")
    ap.add_argument("--bench", action="store_true")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--stages", type=int, default=3)
    ap.add_argument("--blocks", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cuda", action="store_true")
    a = ap.parse_args()
    if a.check:
        check(a)
    else:
        bench(a)
