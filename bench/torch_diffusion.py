"""The masked diffusion LM of tyr/models/diffusion_lm.h in PyTorch: the twin
of Tyr's model for parity and speed (bench/bench_diffusion.c runs both).

Same architecture: ASCII vocabulary with 0 = MASK, token embedding / sqrt(E)
plus a learned time embedding, pre-RMSNorm blocks (no weight) with
bidirectional attention, rotary embeddings (rotate-half) and QK-RMSNorm, a
ReLU² MLP, no biases, final RMSNorm and an untied head.  Parameter names are
Tyr's, so the weights come from the safetensors files Tyr writes (read here
without the safetensors package, which Debian's PyTorch lacks).

  torch_diffusion.py check DIR     parity with what `bench_diffusion --dump DIR`
                                   wrote: the losses of K AdamW steps from
                                   Tyr's initial weights on Tyr's batches, then
                                   logits, loss and every gradient at Tyr's
                                   trained weights.  Exit 1 past tolerance.
  torch_diffusion.py bench ...     training tok/s on random batches; prints
                                   'torch <config> tok/s <v> ms/step <v>'.
"""
import argparse
import json
import math
import sys
import time

import torch
import torch.nn.functional as F
from safetensors_io import load_safetensors

CONFIGS = {  # seq, layers, heads, embd, steps, context
    "tiny": (64, 2, 2, 64, 16, 0),
    "small": (128, 4, 4, 256, 64, 0),
    "full": (256, 6, 6, 384, 128, 16),
}
V = 128


def rms(x, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def rotary_tables(S, D, base, dtype, device):
    inv = base ** (-torch.arange(0, D // 2, dtype=torch.float64) * 2.0 / D)
    ang = torch.arange(S, dtype=torch.float64)[:, None] * inv[None, :]
    return ang.cos().to(dtype).to(device), ang.sin().to(dtype).to(device)


def rotate(x, cos, sin):  # x [B, H, S, D], rotate-half
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class DiffusionLM(torch.nn.Module):
    """The parameters (Tyr's initialisation) and rotary tables; run_forward is the model."""

    def __init__(self, S, L, H, E, T, eps=1e-6, base=10000.0):
        super().__init__()
        self.S, self.L, self.H, self.E, self.T, self.eps = S, L, H, E, T, eps
        p = torch.nn.Parameter
        self.params = {}
        self.params["tok_emb"] = p(torch.randn(V, E))
        self.params["time_emb"] = p(torch.randn(T, E) / math.sqrt(E))
        for l in range(L):
            self.params[f"blocks.{l}.attn.qkv"] = p(torch.randn(3 * E, E) / math.sqrt(E))
            self.params[f"blocks.{l}.attn.proj"] = p(torch.zeros(E, E))
            self.params[f"blocks.{l}.mlp.fc"] = p(torch.randn(4 * E, E) / math.sqrt(E))
            self.params[f"blocks.{l}.mlp.proj"] = p(torch.zeros(E, 4 * E))
        self.params["head"] = p(torch.zeros(V, E))
        cos, sin = rotary_tables(S, E // H, base, torch.float32, "cpu")
        self.register_buffer("cos", cos)
        self.register_buffer("sin", sin)


def dlm_loss(logits, x0, w):
    logp = logits.log_softmax(-1).gather(2, x0[:, :, None])[:, :, 0]
    return -(logp * w).sum()


# ParameterDict keys may not contain '.': Tyr's names are stored with '__'
def make_model(cfg):
    S, L, H, E, T, _ = CONFIGS[cfg] if isinstance(cfg, str) else cfg
    m = DiffusionLM(S, L, H, E, T)
    m.params = torch.nn.ParameterDict({k.replace(".", "__"): v for k, v in m.params.items()})
    return m


def run_forward(m, ids, t):
    # the forward reads params by Tyr's names (a plain function of the name,
    # so that torch.compile traces it once instead of a class made per call)
    def P(k):
        return m.params[k.replace(".", "__")]
    eps, H, E = m.eps, m.H, m.E
    B, S = ids.shape
    D = E // H
    cos, sin = m.cos[:S], m.sin[:S]
    x = F.embedding(ids, P("tok_emb")) / math.sqrt(E) + F.embedding(t, P("time_emb"))[:, None, :]
    for l in range(m.L):
        qkv = rms(x, eps) @ P(f"blocks.{l}.attn.qkv").t()
        q, k, v = qkv.split(E, dim=2)
        q = rotate(rms(q.reshape(B, S, H, D), eps).transpose(1, 2), cos, sin)
        k = rotate(rms(k.reshape(B, S, H, D), eps).transpose(1, 2), cos, sin)
        v = v.reshape(B, S, H, D).transpose(1, 2)
        if hasattr(F, "scaled_dot_product_attention"):
            y = F.scaled_dot_product_attention(q, k, v, is_causal=False)
        else:
            y = ((q @ k.transpose(-2, -1)) / math.sqrt(D)).softmax(-1) @ v
        x = x + y.transpose(1, 2).reshape(B, S, E) @ P(f"blocks.{l}.attn.proj").t()
        h = F.relu(rms(x, eps) @ P(f"blocks.{l}.mlp.fc").t()).square()
        x = x + h @ P(f"blocks.{l}.mlp.proj").t()
    return rms(x, eps) @ P("head").t()


class Twin(torch.nn.Module):
    """make_model with a forward that reads Tyr's names."""

    def __init__(self, cfg):
        super().__init__()
        self.m = make_model(cfg)

    def forward(self, ids, t):
        return run_forward(self.m, ids, t)

    def named(self):
        return {k.replace("__", "."): v for k, v in self.m.params.items()}


def load_into(twin, tensors):
    with torch.no_grad():
        for name, prm in twin.named().items():
            prm.copy_(tensors[name])


def check(a):
    meta_t, meta = load_safetensors(f"{a.dir}/batches.safetensors")
    cfg = json.loads(meta["config"])
    shape = (cfg["seq_len"], cfg["n_layer"], cfg["n_head"], cfg["n_embd"], cfg["steps"], cfg["context_len"])
    K, lr, wd, b1, b2, clip = (int(meta["steps"]), float(meta["lr"]), float(meta["weight_decay"]),
                               float(meta["beta1"]), float(meta["beta2"]), float(meta["clip"]))
    twin = Twin(shape)
    init, _ = load_safetensors(f"{a.dir}/init.safetensors")
    load_into(twin, init)
    params = list(twin.named().values())
    opt = torch.optim.AdamW(params, lr=lr, betas=(b1, b2), eps=1e-8, weight_decay=wd)
    tyr_out, _ = load_safetensors(f"{a.dir}/tyr.safetensors")
    losses = []
    for k in range(K):
        ids, t, x0, w = (meta_t[f"{n}.{k}"] for n in ("ids", "t", "x0", "w"))
        loss = dlm_loss(twin(ids, t), x0, w)
        opt.zero_grad()
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        losses.append(loss.item())
    tl = tyr_out["losses"].tolist()
    curve = max(abs(x - y) / max(abs(y), 1e-6) for x, y in zip(losses, tl))
    # forward and gradients at Tyr's trained weights
    final, _ = load_safetensors(f"{a.dir}/final.safetensors")
    load_into(twin, final)
    for p_ in params:
        p_.grad = None
    ids, t, x0, w = (meta_t[f"{n}.0"] for n in ("ids", "t", "x0", "w"))
    logits = twin(ids, t)
    loss = dlm_loss(logits, x0, w)
    loss.backward()
    lerr = (logits.detach() - tyr_out["logits"]).abs().max().item() / max(tyr_out["logits"].abs().max().item(), 1e-6)
    gerr, gname = 0.0, ""
    for name, p_ in twin.named().items():
        g, tg = p_.grad, tyr_out[f"grad.{name}"]
        e = (g - tg).abs().max().item() / max(tg.abs().max().item(), 1e-12)
        if e > gerr:
            gerr, gname = e, name
    lossd = abs(loss.item() - tyr_out["loss"].item()) / abs(tyr_out["loss"].item())
    print(f"torch {torch.__version__}: {K} training steps, loss curves max rel diff {curve:.2e} "
          f"(tyr {tl[0]:.4f} -> {tl[-1]:.4f}, torch {losses[0]:.4f} -> {losses[-1]:.4f})")
    print(f"at the trained weights: logits max rel err {lerr:.2e}, loss rel err {lossd:.2e}, "
          f"gradients max rel err {gerr:.2e} ({gname})")
    ok = curve < 1e-3 and lerr < 1e-4 and lossd < 1e-5 and gerr < 1e-3
    print("parity: ok" if ok else "parity: FAILED")
    return 0 if ok else 1


def bench(a):
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    S, L, H, E, T, ctx = CONFIGS[a.config]
    twin = Twin(a.config).to(dev)
    twin.m.cos, twin.m.sin = twin.m.cos.to(dev), twin.m.sin.to(dev)
    params = list(twin.named().values())
    with torch.no_grad():  # train-like weights (the zero ones too)
        for p_ in params:
            p_.normal_(0, 0.02)
    opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
    fwd = torch.compile(twin) if a.compile else twin
    B = a.batch

    def batch():
        x0 = torch.randint(1, V, (B, S), device=dev)
        t = torch.randint(0, T, (B,), device=dev)
        p = (t + 1).float() / T
        m = torch.rand(B, S, device=dev) < p[:, None]
        m[:, :ctx] = False
        ids = torch.where(m, torch.zeros_like(x0), x0)
        w = m.float() / m.sum().clamp(min=1)
        return ids, t, x0, w

    def step():
        ids, t, x0, w = batch()
        loss = dlm_loss(fwd(ids, t), x0, w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return loss

    for _ in range(a.warmup):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    loss.item()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / a.steps
    print(f"torch {a.config} tok/s {B * S / dt:.1f} ms/step {dt * 1e3:.2f}", flush=True)
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check")
    c.add_argument("dir")
    b = sub.add_parser("bench")
    b.add_argument("--config", default="tiny", choices=CONFIGS)
    b.add_argument("--batch", type=int, default=64)
    b.add_argument("--steps", type=int, default=20)
    b.add_argument("--warmup", type=int, default=3)
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--device", default="cpu")
    b.add_argument("--compile", action="store_true", help="torch.compile the model (PyTorch 2)")
    a = ap.parse_args()
    return check(a) if a.cmd == "check" else bench(a)


if __name__ == "__main__":
    sys.exit(main())
