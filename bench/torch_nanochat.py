"""The nanochat GPT of tyr/models/nanochat_gpt.h in PyTorch: the twin of
Tyr's model for parity and speed (bench/bench_nanochat.c runs both).

Same architecture and parameter names as Tyr's, so the weights come from the
safetensors file Tyr writes (read here without the safetensors package,
which Debian's PyTorch lacks): RMSNorm without weights, QK-norm, rotary
embeddings in the rotate-half convention (optionally half-truncated), ReLU²
MLP, value embeddings mixed into v with learned lambdas (U-net pattern),
U-net skips with learned weights, block lambdas x = l0 x + l1 x0, the smear
gate, per-head attention gates, a layer without attention, an untied head
with a logit softcap.  Attention masks (causal, long/short sliding windows,
documents): for speed on CUDA, FlexAttention with block masks (PyTorch 2.5
and later, compiled with the step); otherwise a dense boolean [B, 1, T, T]
mask given to SDPA on PyTorch 2 (a plain masked softmax on PyTorch 1.13).

  torch_nanochat.py check DIR   parity with what `bench_nanochat --dump DIR`
                                wrote: logits, loss and every gradient from
                                Tyr's weights on Tyr's batch.  Exit 1 past
                                tolerance.
  torch_nanochat.py speed ...   training tok/s of the same step (forward,
                                backward, Muon with Polar Express + Adam) on
                                random BOS-packed batches or the windows of a
                                token shard (--data), from Tyr's initial
                                weights (--init); prints 'torch ... tok/s
                                ...' and, given Tyr's losses, both step by
                                step.
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F
from muon_torch import orthogonalize
from safetensors_io import load_safetensors

try:  # PyTorch 2.5 and later
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
except ImportError:
    create_block_mask = flex_attention = None

GD = 12  # channels the gates read


def rms(x, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def layer_kind(c, l):
    if c["window_pattern"]:
        return c["window_pattern"][l]
    if l == c["no_attn_layer"]:
        return "N"
    return "L" if l == c["n_layer"] - 1 else "LSSSLSSLSSSL"[l % 12]


def ve_count(c):
    return 0 if not c["value_embeds"] else min(3, c["n_layer"] // 2)


def ve_table(c, l):
    n = ve_count(c)
    if l < n:
        return l
    if l >= c["n_layer"] - n:
        return l - (c["n_layer"] - n)
    return -1


def rope_tables(c, T, dtype, device):
    H = c["head_dim"] // 2
    if c["rope_half"]:
        q = H // 2
        f = [(1 / 1024) ** (i / (q - 1) if q > 1 else 0) if i < q else 0.0 for i in range(H)]
        freq = torch.tensor(f, dtype=torch.float64)
    else:
        base = c["rope_base"] or 10000.0
        freq = base ** (-2.0 * torch.arange(H, dtype=torch.float64) / c["head_dim"])
    ang = torch.arange(T, dtype=torch.float64)[:, None] * freq[None, :]
    return ang.cos().to(dtype).to(device), ang.sin().to(dtype).to(device)


def rotate(x, cos, sin):  # x [B, H, T, D]; Tyr's rotate-half convention
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def dense_mask(doc, T, window):
    """[B, 1, T, T] bool: causal, window (0: none), same document."""
    i = torch.arange(T, device=doc.device)[:, None]
    j = torch.arange(T, device=doc.device)[None, :]
    m = j <= i
    if window > 0:
        m = m & (j > i - window)
    m = m[None] & (doc[:, :, None] == doc[:, None, :])
    return m[:, None]


def attend(q, k, v, mask, scale):
    if hasattr(F, "scaled_dot_product_attention") and torch.__version__ >= "2":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    s = (q @ k.transpose(-1, -2)) * scale
    s = s.masked_fill(~mask, float("-inf"))
    p = torch.softmax(s, dim=-1).nan_to_num(0.0)
    return p @ v


class NanoChat(torch.nn.Module):
    """The parameters under Tyr's names; forward is the model."""

    def __init__(self, c, tensors, device, dtype):
        super().__init__()
        self.c = c
        self.p = torch.nn.ParameterDict()
        for name, t in tensors.items():
            self.p[name.replace(".", "__")] = torch.nn.Parameter(t.to(device=device, dtype=dtype))
        self.flex = None

    def P(self, name):
        return self.p[name.replace(".", "__")]

    def has(self, name):
        return name.replace(".", "__") in self.p

    def forward(self, idx, doc, windows, targets, block_masks=None):
        c, eps = self.c, self.c["norm_eps"] or 1e-6
        B, T = idx.shape
        H, D = c["n_head"], c["head_dim"]
        x = F.embedding(idx, self.P("embed"))
        if c["smear_gate"] and T > 1:
            cur, prev = x[:, 1:], x[:, :-1]
            g = torch.sigmoid(cur[..., :GD] @ self.P("smear_gate").t()) * self.P("smear_lambda")
            x = torch.cat([x[:, :1], cur + g * prev], dim=1)
        x = rms(x, eps)
        x0 = x
        ve = [F.embedding(idx, self.P(f"value_embeds.{i}")) for i in range(ve_count(c))]
        cos, sin = rope_tables(c, T, x.dtype, x.device)
        masks = {}
        skips, half = [], c["n_layer"] // 2
        scale = c["attn_scale"] or 1 / math.sqrt(D)
        for l in range(c["n_layer"]):
            pre = f"blocks.{l}."
            if self.has("skip_weights") and l >= half and skips:
                x = x + self.P("skip_weights")[l - half] * skips.pop()
            if self.has(pre + "lambdas"):
                lam = self.P(pre + "lambdas")
                x = lam[0] * x + lam[1] * x0
            kind = layer_kind(c, l)
            if kind != "N":
                h = rms(x, eps)
                qkv = h @ self.P(pre + "qkv").t()
                q, k, v = qkv.split(H * D, dim=-1)
                if self.has(pre + "v_lambdas"):
                    vl = self.P(pre + "v_lambdas")
                    v = vl[0] * v
                    t = ve_table(c, l)
                    if t >= 0:
                        v = v + vl[1] * ve[t]
                q, k, v = (z.reshape(B, T, H, D).transpose(1, 2) for z in (q, k, v))
                if c["qk_norm"]:
                    q, k = rms(q, eps), rms(k, eps)
                q, k = rotate(q, cos, sin), rotate(k, cos, sin)
                win = windows[0] if kind == "L" else windows[1]
                if block_masks is not None:  # FlexAttention, in the autocast dtype
                    dt = torch.bfloat16 if v.is_cuda else v.dtype
                    y = flex_attention(q.to(dt), k.to(dt), v.to(dt), block_mask=block_masks[win],
                                       scale=scale).transpose(1, 2)
                else:
                    if win not in masks:
                        masks[win] = dense_mask(doc, T, win)
                    y = attend(q, k, v, masks[win], scale).transpose(1, 2)  # [B, T, H, D]
                if self.has(pre + "attn_gate"):
                    y = y * torch.sigmoid(h[..., :GD] @ self.P(pre + "attn_gate").t())[..., None]
                x = x + y.reshape(B, T, H * D) @ self.P(pre + "attn_proj").t()
            h = rms(x, eps)
            x = x + F.relu(h @ self.P(pre + "fc").t()).square() @ self.P(pre + "mlp_proj").t()
            if self.has("skip_weights") and l < half:
                skips.append(x)
        x = rms(x, eps)
        logits = (x @ self.P("lm_head").t()).float() if x.dtype != torch.float64 else x @ self.P(
            "lm_head").t()
        if c["logit_softcap"] > 0:
            cap = c["logit_softcap"]
            logits = cap * torch.tanh(logits / cap)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        return logits, loss


def check(a):
    init, meta = load_safetensors(f"{a.dir}/init.safetensors")
    c = json.loads(meta["tyr.nanochat.config"])
    batch, bmeta = load_safetensors(f"{a.dir}/batch.safetensors")
    tyr, _ = load_safetensors(f"{a.dir}/tyr.safetensors")
    m = NanoChat(c, init, "cpu", torch.float64)
    windows = (int(bmeta["long_window"]), int(bmeta["short_window"]))
    logits, loss = m(batch["idx"].long(), batch["doc_ids"], windows, batch["targets"].long())
    loss.backward()
    worst = {}

    def rel(name, got, want):
        d = (got.double() - want.double()).abs().max().item()
        s = max(want.double().abs().max().item(), 1e-12)
        worst[name] = d / s
        return d / s

    rel("logits", logits.detach(), tyr["logits"])
    rel("loss", loss.detach().reshape(()), tyr["loss"].reshape(()))
    for name in init:
        g = m.P(name).grad
        if g is None:
            g = torch.zeros_like(m.P(name))
        rel("grad." + name, g, tyr["grad." + name])
    bad = {k: v for k, v in worst.items() if not v <= a.tol}
    top = sorted(worst.items(), key=lambda kv: -kv[1])[:3]
    print(f"torch_nanochat check {a.dir}: torch {torch.__version__}, loss tyr "
          f"{tyr['loss'].item():.10f} torch {loss.item():.10f}; largest relative differences: "
          + ", ".join(f"{k} {v:.2g}" for k, v in top))
    if bad:
        print("FAIL: " + ", ".join(f"{k} {v:.3g}" for k, v in bad.items()))
        sys.exit(1)
    print(f"PASS: logits, loss and {len(init)} gradients within {a.tol:g}")


# ---- speed: the training step of bench_nanochat --speed --------------------------------------
def d12_config(preset):
    c = {"vocab_size": 50304, "n_layer": 12, "n_head": 6, "head_dim": 128, "n_embd": 768,
         "mlp_hidden": 3072, "window_pattern": "", "no_attn_layer": 7, "qk_norm": True,
         "rope_half": True, "rope_base": 10000.0, "value_embeds": True, "unet_skips": True,
         "block_lambdas": True, "smear_gate": True, "attn_gate": True, "zero_init_proj": True,
         "logit_softcap": 15.0, "attn_scale": 0.12, "norm_eps": 1e-6}
    if preset == "debug":
        c.update(n_layer=4, n_head=2, n_embd=256, mlp_hidden=1024, no_attn_layer=-1)
    return c


def init_tensors(c):
    """The shapes and the initialisation of Tyr's (values drawn by torch)."""
    V, C, HD = c["vocab_size"], c["n_embd"], c["n_head"] * c["head_dim"]

    def mat(o, i, zero=False):
        b = math.sqrt(3) * 0.5 / math.sqrt(i)
        return torch.zeros(o, i) if zero else torch.empty(o, i).uniform_(-b, b)

    t = {"embed": torch.randn(V, C)}
    for i in range(ve_count(c)):
        t[f"value_embeds.{i}"] = torch.randn(V, HD)
    t["smear_gate"], t["smear_lambda"] = torch.zeros(1, GD), torch.zeros(1)
    for l in range(c["n_layer"]):
        if layer_kind(c, l) != "N":
            t[f"blocks.{l}.qkv"] = mat(3 * HD, C)
            t[f"blocks.{l}.attn_proj"] = mat(C, HD, True)
            t[f"blocks.{l}.v_lambdas"] = torch.tensor([0.5, 0.5])
            t[f"blocks.{l}.attn_gate"] = torch.zeros(c["n_head"], GD)
        t[f"blocks.{l}.fc"] = mat(c["mlp_hidden"], C)
        t[f"blocks.{l}.mlp_proj"] = mat(C, c["mlp_hidden"], True)
        t[f"blocks.{l}.lambdas"] = torch.tensor([1.0, 0.0])
    t["skip_weights"] = torch.ones(c["n_layer"] // 2)
    t["lm_head"] = mat(V, C, True)
    return t


class Muon(torch.optim.Optimizer):
    """Tyr's Muon (src/optim/muon.c): momentum lerp, Nesterov, Polar Express
    in bfloat16 on CUDA (float32 on the CPU), scaled by sqrt(max(1, rows /
    cols)), no weight decay, as bench_nanochat sets it up."""

    def __init__(self, params, lr, momentum=0.95):
        super().__init__(params, dict(lr=lr, momentum=momentum))

    @torch.no_grad()
    def step(self):
        for g in self.param_groups:
            mu = g["momentum"]
            for p in g["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if "buf" not in st:
                    st["buf"] = torch.zeros_like(p, dtype=torch.float32)
                gr = p.grad.float()
                st["buf"].lerp_(gr, 1 - mu)
                u = gr.lerp(st["buf"], mu)
                dt = torch.bfloat16 if p.is_cuda else torch.float32
                o = orthogonalize(u, True, dt).float()
                p.add_(o, alpha=-g["lr"] * math.sqrt(max(1, p.shape[0] / p.shape[1])))


def shard_batches(path, mb, T, dev):
    """The windows bench_nanochat reads from a token shard: micro-batch k, row
    b starts at (k * mb + b) * T (wrapping); document ids count the BOS tokens
    so far."""
    import numpy as np
    head = np.fromfile(path, dtype=np.int32, count=256)
    assert head[0] == 20240520, f"{path}: not a token shard"
    tok = torch.from_numpy(np.fromfile(path, dtype=np.uint16, offset=1024).astype(np.int64))
    n = tok.numel()
    k = 0
    while True:
        rows = [tok[((k * mb + b) * T) % (n - T - 1):][:T + 1] for b in range(mb)]
        ids = torch.stack(rows)
        doc = (ids == 50256).cumsum(1).int()
        k += 1
        yield ids[:, :T].to(dev), doc[:, :T].to(dev), ids[:, 1:].to(dev)


def random_batches(mb, T, dev):
    g = torch.Generator().manual_seed(3)
    while True:
        ids = torch.randint(0, 50257, (mb, T + 1), generator=g)
        doc_len = torch.randint(300, 1500, (mb, T + 1), generator=g)
        bos = torch.zeros(mb, T + 1, dtype=torch.bool)
        for b in range(mb):
            p = 0
            while p <= T:
                bos[b, p] = True
                p += int(doc_len[b, p]) + 1
        ids[bos] = 50256
        doc = bos.cumsum(1).int()
        yield ids[:, :T].to(dev), doc[:, :T].to(dev), ids[:, 1:].to(dev)


def speed(a):
    torch.manual_seed(1)
    dev = torch.device(a.device)
    if a.init:
        tensors, meta = load_safetensors(a.init)
        c = json.loads(meta["tyr.nanochat.config"])
    else:
        c = d12_config(a.preset)
        tensors = init_tensors(c)
    m = NanoChat(c, tensors, dev, torch.float32)
    adam_names = ("embed", "lm_head", "gate")
    hidden = [p for n, p in m.p.items() if p.ndim == 2 and not any(s in n for s in adam_names)]
    groups = [([p for n, p in m.p.items() if "embed" in n], 0.6),
              ([m.p["lm_head"]], 0.008),
              ([p for n, p in m.p.items() if p.ndim < 2 or "gate" in n], 0.04)]
    adam = torch.optim.Adam([{"params": g, "lr": lr} for g, lr in groups], betas=(0.8, 0.95),
                            eps=1e-10)
    muon = Muon(hidden, lr=0.05)
    T, mb = a.seq_len, a.micro_batch
    windows = (T, T // 2)
    flex = a.attention == "flex" and flex_attention is not None and dev.type == "cuda"
    compiled = a.compile and hasattr(torch, "compile")

    def loss_fn(idx, doc, tgt, bm):
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            return m(idx, doc, windows, tgt, bm)[1]

    def block_masks(doc):
        out = {}
        for w in set(windows):
            def mask_mod(b, h, q, kv, w=w):
                return (kv <= q) & (q - kv < w) & (doc[b, q] == doc[b, kv])
            out[w] = create_block_mask(mask_mod, doc.shape[0], None, T, T, device=dev,
                                       _compile=compiled)
        return out

    step_fn = torch.compile(loss_fn) if compiled else loss_fn
    batches = shard_batches(a.data, mb, T, dev) if a.data else random_batches(mb, T, dev)
    times, losses = [], []
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for s in range(a.steps + 2):
        t0 = time.perf_counter()
        tot = 0.0
        for _ in range(a.accum):
            x, d, y = next(batches)
            loss = step_fn(x, d, y, block_masks(d) if flex else None)
            if s == 0 and tot == 0 and flex:  # the block masks against the dense masks, once
                with torch.no_grad():
                    dense = loss_fn(x, d, y, None).item()
                print(f"torch: first micro-batch loss {loss.item():.5f} with FlexAttention, "
                      f"{dense:.5f} with dense masks")
            (loss / a.accum).backward()
            tot += loss.item()
        adam.step()
        muon.step()
        adam.zero_grad(set_to_none=True)
        muon.zero_grad(set_to_none=True)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if s >= 2:
            times.append(time.perf_counter() - t0)
        losses.append(tot / a.accum)
    tok_s = a.steps * a.accum * mb * T / sum(times)
    n = a.steps + 2
    ntail = (a.steps + 1) // 2 if a.steps < 50 else a.steps // 5
    tail = sum(losses[n - ntail:]) / ntail
    mem = f" peak memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB" if dev.type == "cuda" \
        else ""
    flops = flops_per_token(c, T, windows)
    mfu = f" MFU {100 * flops * tok_s / (a.peak_tflops * 1e12):.2f}%"
    how = (" compiled" if compiled else "") + (" flex" if flex else " dense masks")
    print(f"torch {a.preset} {a.device}{how}: {a.steps} steps of {a.accum} x {mb} x {T} tokens: "
          f"tok/s {tok_s:.0f} ms/step {1e3 * sum(times) / a.steps:.1f}{mfu} loss {losses[0]:.4f}, "
          f"mean of the last {ntail} steps {tail:.4f}{mem}")
    if a.tyr_losses:
        with open(a.tyr_losses) as f:
            ty = [float(line) for line in f if line.strip()]
        with open(os.path.join(os.path.dirname(a.tyr_losses), "torch_losses.txt"), "w") as f:
            f.write("".join(f"{x:.6f}\n" for x in losses))
        assert len(ty) == n, f"{a.tyr_losses}: {len(ty)} losses, expected {n}"
        diff = [abs(p - q) for p, q in zip(ty, losses)]
        if n <= 20:
            print("losses tyr/torch: " + ", ".join(f"{p:.6f}/{q:.6f}" for p, q in zip(ty, losses)))
        worst = max(range(n), key=lambda i: diff[i])
        ttail = sum(ty[n - ntail:]) / ntail
        print(f"losses: first step tyr {ty[0]:.5f} torch {losses[0]:.5f}; largest difference "
              f"{diff[worst]:.2e} at step {worst + 1}; mean of the last {ntail} steps tyr "
              f"{ttail:.4f} torch {tail:.4f} (difference {ttail - tail:+.4f})")
        if a.tol > 0 and not diff[worst] <= a.tol:
            print(f"FAIL: losses differ by more than {a.tol:g}")
            sys.exit(1)


def flops_per_token(c, T, windows):
    """Training FLOPs per token (6 per weight of the matrices the tokens go
    through, plus attention's 12 * H * D per attended key), as
    tyr_nanochat_flops_per_token counts them."""
    C, HD, L = c["n_embd"], c["n_head"] * c["head_dim"], c["n_layer"]
    f = 6 * c["vocab_size"] * C
    for l in range(L):
        kind = layer_kind(c, l)
        f += 6 * 2 * C * c["mlp_hidden"]
        if kind != "N":
            w = windows[0] if kind == "L" else windows[1]
            keys = sum(min(t + 1, w) for t in range(T)) / T
            f += 6 * 4 * C * HD + 12 * HD * keys
    return f


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check")
    c.add_argument("dir")
    c.add_argument("--tol", type=float, default=1e-9)
    s = sub.add_parser("speed")
    s.add_argument("--preset", default="d12")
    s.add_argument("--device", default="cuda")
    s.add_argument("--steps", type=int, default=30)
    s.add_argument("--micro-batch", type=int, default=64)
    s.add_argument("--accum", type=int, default=8)
    s.add_argument("--seq-len", type=int, default=1024)
    s.add_argument("--peak-tflops", type=float, default=989)
    s.add_argument("--compile", action="store_true")
    s.add_argument("--attention", default="flex", choices=("flex", "dense"),
                   help="FlexAttention with block masks (CUDA, PyTorch 2.5+) or SDPA with dense masks")
    s.add_argument("--data", help="a token shard to read the batches from (as bench_nanochat)")
    s.add_argument("--init", help="the initial weights Tyr wrote (bench_nanochat --work-dir)")
    s.add_argument("--tyr-losses", help="Tyr's losses of the same steps, to compare with")
    s.add_argument("--tol", type=float, default=0)
    a = ap.parse_args()
    check(a) if a.cmd == "check" else speed(a)


if __name__ == "__main__":
    main()
