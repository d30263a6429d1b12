"""The PyTorch side of gpt_parity (bench/gpt_parity.c): trains tyr_gpt's
GPT-2 architecture in PyTorch from the initial weights Tyr wrote
(DIR/init.safetensors) on the same batches, and compares step-1 gradients,
losses and loss curves with what Tyr wrote to DIR.  Prints a table and exits
1 when a bound is broken (the bounds are listed in gpt_parity.c).

Architecture (tyr_gpt_config_gpt2): learned positions, pre-LayerNorm with
biases (eps 1e-5), fused qkv with bias, causal attention, tanh-GELU MLP,
tied head; AdamW (betas 0.9/0.95, eps 1e-8, weight decay 0.1 on parameters
of rank >= 2), clipping at 1.0, the learning rate warmed up linearly.
Works with PyTorch 1.13 (CPU, f32) and 2.x (CUDA, every mode).

PyTorch modes: fp32 (TF32 off), tf32, bf16 (autocast) and bf16in, the twin
of Tyr's bf16-matmul mode: an fp32 model in which every matrix product (the
linear layers, the head, attention's q k^T and P v) rounds its operands to
bf16 (nearest even) and accumulates in f32, forward and backward (the
incoming gradient is rounded too); activations, norms, softmax and the
loss stay f32.  Products of bf16 values are exact in f32, so an f32 GEMM
(TF32 off) of the rounded operands is that arithmetic up to summation
order.  Autocast is not: it also rounds every product's output and keeps
bf16 activations between the layers.

The loss-curve bound compares the curves' levels: the mean over the last
100 steps (or the last third of a shorter run) of loss_tyr - loss_torch.
The mean of |loss_tyr - loss_torch| is printed too.  Training amplifies any
rounding difference, so two runs of the same arithmetic drift apart step by
step; --control measures that floor: PyTorch's fp32 run again with the
attention written out in plain ops instead of SDPA (the same arithmetic,
rounded differently), compared with its first fp32 run the same way; the
loss-curve bound is then max(0.02, twice the control's difference)."""
import argparse
import math
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors_io import load_safetensors


MATH_ATTENTION = False  # the control run: attention written out (other rounding, same arithmetic)
BF16_INPUTS = False  # the bf16in mode: every product's operands rounded to bf16 (see above)


def bf16_round(t):
    return t.to(torch.bfloat16).to(t.dtype)


class Bf16InputMatmul(torch.autograd.Function):
    """a @ b with both operands rounded to bf16 and f32 accumulation; the
    backward rounds the incoming gradient and uses the rounded operands."""

    @staticmethod
    def forward(ctx, a, b):
        ar, br = bf16_round(a), bf16_round(b)
        ctx.save_for_backward(ar, br)
        return ar @ br

    @staticmethod
    def backward(ctx, g):
        ar, br = ctx.saved_tensors
        gr = bf16_round(g)
        return gr @ br.transpose(-2, -1), ar.transpose(-2, -1) @ gr


def mm(a, b):
    return Bf16InputMatmul.apply(a, b) if BF16_INPUTS else a @ b


class Linear(nn.Linear):
    def forward(self, x):
        if not BF16_INPUTS:
            return super().forward(x)
        return mm(x, self.weight.t()) + self.bias


def attention(q, k, v):
    if hasattr(F, "scaled_dot_product_attention") and not MATH_ATTENTION and not BF16_INPUTS:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    T = q.shape[-2]
    att = mm(q, k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    mask = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    return mm(att.masked_fill(~mask, float("-inf")).softmax(-1), v)


class Attn(nn.Module):
    def __init__(self, C, H):
        super().__init__()
        self.qkv, self.proj, self.H = Linear(C, 3 * C), Linear(C, C), H

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.H, C // self.H).transpose(1, 2) for t in (q, k, v))
        return self.proj(attention(q, k, v).transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, C):
        super().__init__()
        self.fc, self.proj = Linear(C, 4 * C), Linear(4 * C, C)

    def forward(self, x):
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, C, H):
        super().__init__()
        self.ln1, self.attn, self.ln2, self.mlp = nn.LayerNorm(C), Attn(C, H), nn.LayerNorm(C), MLP(C)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, V, T, L, H, C):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(T, C)
        self.blocks = nn.ModuleList(Block(C, H) for _ in range(L))
        self.ln_f = nn.LayerNorm(C)

    def forward(self, idx, targets):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for b in self.blocks:
            x = b(x)
        logits = mm(self.ln_f(x), self.wte.weight.t())
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))


def batches(a):
    """Step i's (x, y) as gpt_parity makes them."""
    T, B = a.block, a.batch
    if a.repeat:
        with open(f"{a.dir}/repeat_batch.bin", "rb") as f:
            w = torch.frombuffer(bytearray(f.read()), dtype=torch.int16).to(torch.int64) & 0xFFFF
        w = w.view(B, T + 1)
        return lambda i: (w[:, :T], w[:, 1:])
    with open(a.tokens, "rb") as f:
        raw = f.read()
    if not a.raw:
        hdr = struct.unpack("<256i", raw[:1024])
        raw = raw[1024:1024 + 2 * hdr[2]]
    tok = torch.frombuffer(bytearray(raw), dtype=torch.int16).to(torch.int64) & 0xFFFF
    n = tok.numel()

    def get(i):
        rows = [tok[s:s + T + 1] for s in (((i * B + b) * T) % (n - T - 1) for b in range(B))]
        w = torch.stack(rows)
        return w[:, :T], w[:, 1:]
    return get


def train(a, mode, init, get, dev):
    """Losses of every step and the step-1 gradients."""
    global BF16_INPUTS
    torch.manual_seed(0)
    tf32 = mode == "tf32"
    BF16_INPUTS = mode == "bf16in"
    if dev == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
    bf16 = mode == "bf16"
    m = GPT(a.vocab, a.block, a.layers, a.heads, a.embd)
    missing, unexpected = m.load_state_dict(init, strict=False)
    if missing or unexpected:
        sys.exit(f"torch_gpt_parity: init.safetensors does not match: missing {missing}, "
                 f"unexpected {unexpected}")
    m = m.to(dev)
    decay = [p for p in m.parameters() if p.dim() >= 2]
    other = [p for p in m.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
    losses, grads = [], None
    for i in range(a.steps):
        x, y = get(i)
        x, y = x.to(dev), y.to(dev)
        if bf16:
            with torch.autocast(dev, dtype=torch.bfloat16):
                loss = m(x, y)
        else:
            loss = m(x, y)
        loss.backward()
        losses.append(loss.item())
        if i == 0:
            grads = {n: p.grad.detach().float().cpu().clone() for n, p in m.named_parameters()}
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        lr = a.lr * (i + 1) / a.warmup if i < a.warmup else a.lr
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        opt.zero_grad(set_to_none=True)
    BF16_INPUTS = False
    del m, opt
    if dev == "cuda":
        torch.cuda.empty_cache()
    return losses, grads


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--tokens")
    ap.add_argument("--raw", action="store_true")
    ap.add_argument("--repeat", action="store_true")
    ap.add_argument("--layers", type=int, required=True)
    ap.add_argument("--heads", type=int, required=True)
    ap.add_argument("--embd", type=int, required=True)
    ap.add_argument("--block", type=int, required=True)
    ap.add_argument("--vocab", type=int, required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--lr", type=float, required=True)
    ap.add_argument("--warmup", type=int, default=0)
    ap.add_argument("--modes", default="f32")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--control", action="store_true")
    a = ap.parse_args()
    dev = a.device
    if dev == "cuda" and not torch.cuda.is_available():
        sys.exit("torch_gpt_parity: no CUDA device visible to PyTorch")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    init, _ = load_safetensors(f"{a.dir}/init.safetensors")
    get = batches(a)
    twin = {"f32": "fp32", "tf32": "tf32", "bf16-matmul": "bf16in", "bf16": "bf16"}
    grad_tol = {"f32": 1e-4, "tf32": 2e-2, "bf16-matmul": 2e-2, "bf16": 2e-2}
    ran = {}
    ok = True
    curve_tol = 0.02
    if a.control:
        global MATH_ATTENTION
        ran["fp32"] = train(a, "fp32", init, get, dev)
        MATH_ATTENTION = True
        cl, _ = train(a, "fp32", init, get, dev)
        MATH_ATTENTION = False
        bl = ran["fp32"][0]
        k = min(100, max(1, len(bl) // 3))
        level = sum(x - y for x, y in zip(cl[-k:], bl[-k:])) / k
        curve = sum(abs(x - y) for x, y in zip(cl[-k:], bl[-k:])) / k
        # Tyr cannot be asked to follow PyTorch closer than PyTorch follows itself
        curve_tol = max(0.02, 2 * abs(level))
        print(f"control: torch fp32 with attention in plain ops vs torch fp32 (SDPA): step-1 loss "
              f"{cl[0]:.7f} vs {bl[0]:.7f}, last-{k} mean dL {level:+.4f}, mean |dL| {curve:.4f}, "
              f"final {cl[-1]:.4f} vs {bl[-1]:.4f}; loss-curve bound max(0.02, 2 x {abs(level):.4f}) "
              f"= {curve_tol:.4f}", flush=True)
        with open(f"{a.dir}/torch_losses_fp32_control.txt", "w") as f:
            f.write("\n".join(f"{x:.9g}" for x in cl) + "\n")
    print(f"torch {torch.__version__} on {dev}; Tyr mode vs the PyTorch mode doing the same arithmetic")
    print(f"{'tyr mode':12} {'torch':6} {'step-1 loss tyr':>16} {'torch':>12} {'max grad rel err':>17} "
          f"{'(param)':28} {'last-k mean dL':>15} {'mean |dL|':>10} {'final tyr':>10} {'torch':>8}")
    for mode in a.modes.split(","):
        tm = twin[mode]
        if tm not in ran:
            ran[tm] = train(a, tm, init, get, dev)
        tl, tg = ran[tm]
        with open(f"{a.dir}/losses_{mode}.txt") as f:
            yl = [float(s) for s in f.read().split()]
        yg, _ = load_safetensors(f"{a.dir}/grads_{mode}.safetensors")
        worst, worst_name = 0.0, ""
        for name, g in tg.items():
            e = ((yg[name].float() - g).norm() / g.norm().clamp_min(1e-30)).item()
            if e > worst:
                worst, worst_name = e, name
        k = min(100, max(1, len(tl) // 3))
        level = sum(x - y for x, y in zip(yl[-k:], tl[-k:])) / k
        curve = sum(abs(x - y) for x, y in zip(yl[-k:], tl[-k:])) / k
        bad = []
        if worst > grad_tol[mode]:
            bad.append(f"gradient {worst:.2e} > {grad_tol[mode]:g}")
        if mode == "f32" and abs(yl[0] - tl[0]) > 1e-5:
            bad.append(f"step-1 loss differs by {abs(yl[0] - tl[0]):.2e} > 1e-5")
        if abs(level) > curve_tol:
            bad.append(f"loss curves differ by {level:+.4f} on average over the last {k} steps "
                       f"(bound {curve_tol:.4f})")
        ok &= not bad
        print(f"{mode:12} {tm:6} {yl[0]:16.7f} {tl[0]:12.7f} {worst:17.2e} {worst_name[:28]:28} "
              f"{level:+15.4f} {curve:10.4f} {yl[-1]:10.4f} {tl[-1]:8.4f}  {'ok' if not bad else 'FAIL: ' + '; '.join(bad)}",
              flush=True)
        with open(f"{a.dir}/torch_losses_{tm}.txt", "w") as f:
            f.write("\n".join(f"{x:.9g}" for x in tl) + "\n")
    print("gpt_parity: PASS" if ok else "gpt_parity: FAIL", flush=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
