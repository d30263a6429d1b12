"""NanoProof (tyr/models/nanoproof.h) in PyTorch: the twin of Tyr's model for
parity and decode speed with a KV cache (bench/bench_nanoproof.c runs both).

Same architecture: the nanochat GPT (token embedding, parameter-free RMSNorm
on it and before every block part, per-layer residual and x0 lambdas,
attention with a packed qkv projection, grouped KV heads, QK-RMSNorm (eps
1e-6), rotary embeddings (rotate-half), causal; ReLU² MLP; no biases; final
RMSNorm; untied head with logit softcap 15) and the value head
Linear(E, 4E) -> ReLU² -> Linear(4E, 64).  Parameter names are Tyr's, read
from the safetensors file Tyr writes (without the safetensors package,
which Debian's PyTorch lacks); the config comes from the file's metadata.

  torch_nanoproof.py check DIR   parity with `bench_nanoproof --dump DIR`: the
                                 logits and value logits of Tyr's input, and
                                 KV-cache decode equal to the full forward at
                                 every position.  Exit 1 past tolerance.
  torch_nanoproof.py bench DIR --batch B --prompt P --new N [--device d]
                                 greedy decode with the KV cache from Tyr's
                                 weights; prints 'torch decode batch B tok/s
                                 <v> ms/step <v>'.
"""
import argparse
import json
import math
import sys
import time

import torch
import torch.nn.functional as F
from safetensors_io import load_safetensors


def rms(x, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def rotate(x, cos, sin):  # x [B, H, T, D], rotate-half
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def attention(q, k, v, causal):
    """q [B, H, T, D], k, v [B, H, S, D]; causal aligned at the end (query i sees j <= i + S - T)."""
    T, S = q.shape[2], k.shape[2]
    att = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    if causal and T > 1:
        mask = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(S - T)
        att = att.masked_fill(~mask, float("-inf"))
    return att.softmax(-1) @ v


class NanoProof:
    def __init__(self, params, meta, device):
        c = json.loads(meta["tyr.gpt.config"])
        self.c = c
        self.p = {k: v.to(device) for k, v in params.items() if not k.startswith("optim.")}
        self.L, self.H, self.E = c["n_layer"], c["n_head"], c["n_embd"]
        self.Hkv = c["n_kv_head"] or self.H
        self.D = self.E // self.H
        self.eps, self.cap = c["norm_eps"], c["logit_softcap"]
        inv = c["rope_base"] ** (-torch.arange(0, self.D // 2, dtype=torch.float64) * 2.0 / self.D)
        ang = torch.arange(c["block_size"], dtype=torch.float64)[:, None] * inv[None, :]
        self.cos = ang.cos().float().to(device)
        self.sin = ang.sin().float().to(device)
        self.device = device

    def hidden(self, ids, cache=None, pos=0):
        """ids [B, T] at positions pos..; cache: per-layer [k, v] lists of [B, Hkv, Smax, D] (or
        None for a plain causal forward).  Returns the final hidden states [B, T, E]."""
        p, E, H, Hkv, D, eps = self.p, self.E, self.H, self.Hkv, self.D, self.eps
        B, T = ids.shape
        x = rms(F.embedding(ids, p["wte.weight"]), eps)
        x0 = x
        cos, sin = self.cos[pos:pos + T], self.sin[pos:pos + T]
        for l in range(self.L):
            if "resid_lambdas" in p:
                x = p["resid_lambdas"][l] * x + p["x0_lambdas"][l] * x0
            qkv = rms(x, eps) @ p[f"blocks.{l}.attn.qkv.weight"].t()
            q, k, v = qkv.split([E, Hkv * D, Hkv * D], dim=2)
            q = rotate(rms(q.reshape(B, T, H, D).transpose(1, 2), 1e-6), cos, sin)
            k = rotate(rms(k.reshape(B, T, Hkv, D).transpose(1, 2), 1e-6), cos, sin)
            v = v.reshape(B, T, Hkv, D).transpose(1, 2)
            if cache is not None:  # rows [:B] of the cache (a shared prompt fills row 0)
                ck, cv = cache[l][0][:B], cache[l][1][:B]
                ck[:, :, pos:pos + T] = k
                cv[:, :, pos:pos + T] = v
                k, v = ck[:, :, :pos + T], cv[:, :, :pos + T]
            if Hkv != H:
                k = k.repeat_interleave(H // Hkv, dim=1)
                v = v.repeat_interleave(H // Hkv, dim=1)
            y = attention(q, k, v, True)
            x = x + y.transpose(1, 2).reshape(B, T, E) @ p[f"blocks.{l}.attn.proj.weight"].t()
            h = F.relu(rms(x, eps) @ p[f"blocks.{l}.mlp.fc.weight"].t()).square()
            x = x + h @ p[f"blocks.{l}.mlp.proj.weight"].t()
        return rms(x, eps)

    def head(self, h):
        logits = h @ self.p["lm_head.weight"].t()
        return self.cap * torch.tanh(logits / self.cap) if self.cap > 0 else logits

    def value_logits(self, h):
        return F.relu(h @ self.p["value.fc.weight"].t()).square() @ self.p["value.proj.weight"].t()

    def new_cache(self, B, S):
        return [[torch.zeros(B, self.Hkv, S, self.D, device=self.device) for _ in range(2)]
                for _ in range(self.L)]


def check(d):
    params, meta = load_safetensors(f"{d}/weights.safetensors")
    tyr, _ = load_safetensors(f"{d}/tyr.safetensors")
    m = NanoProof(params, meta, "cpu")
    ids = tyr["ids"]
    with torch.no_grad():
        h = m.hidden(ids)
        logits = m.head(h)
        vl = m.value_logits(h[:, -1])
        dl = (logits - tyr["logits"]).abs().max().item()
        dv = (vl - tyr["value_logits"]).abs().max().item()
        # decode with the cache == full forward at every position
        B, T = ids.shape
        cache = m.new_cache(B, T)
        worst = 0.0
        for t in range(T):
            lt = m.head(m.hidden(ids[:, t:t + 1], cache, t))
            worst = max(worst, (lt[:, 0] - logits[:, t]).abs().max().item())
    print(f"parity: logits max |tyr - torch| {dl:.3g}, value logits {dv:.3g}, "
          f"torch decode vs full forward {worst:.3g}")
    ok = dl < 1e-3 and dv < 1e-3 and worst < 1e-4
    print("parity: ok" if ok else "parity: FAILED")
    return 0 if ok else 1


def bench(d, B, P, N, device, threads):
    torch.set_num_threads(threads)
    params, meta = load_safetensors(f"{d}/weights.safetensors")
    m = NanoProof(params, meta, device)
    V = m.c["vocab_size"]
    g = torch.Generator().manual_seed(0)
    prompt = torch.randint(0, V, (1, P), generator=g).to(device)

    def run(n):
        with torch.no_grad():
            cache = m.new_cache(B, P + n)
            h = m.hidden(prompt, cache, 0)  # the shared prompt once, its cache copied to every row
            for c in cache:
                c[0][:] = c[0][:1]
                c[1][:] = c[1][:1]
            tok = m.head(h[:, -1]).argmax(-1).expand(B).reshape(B, 1).contiguous()
            for i in range(n - 1):
                tok = m.head(m.hidden(tok, cache, P + i)[:, -1]).argmax(-1).reshape(B, 1)
            tok.cpu()

    def timed(n):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        run(n)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    run(4)  # warm-up
    t_full = min(timed(N) for _ in range(3))
    t_pre = min(timed(1) for _ in range(3))
    dt = max(t_full - t_pre, 1e-9)
    print(f"torch decode batch {B} tok/s {B * (N - 1) / dt:.1f} ms/step {dt / (N - 1) * 1e3:.3f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["check", "bench"])
    ap.add_argument("dir")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--prompt", type=int, default=32)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    if a.cmd == "check":
        sys.exit(check(a.dir))
    bench(a.dir, a.batch, a.prompt, a.new, a.device, a.threads)


if __name__ == "__main__":
    main()
