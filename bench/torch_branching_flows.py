"""The PyTorch twin of Tyr's Branching Flows transformer
(include/tyr/models/branching_flows.h), run by bench/bench_branching_flows:

    torch_branching_flows.py DIR [--threads N]

DIR holds what bench_branching_flows wrote: Tyr's initial weights
(init.safetensors), K packed batches (batches.safetensors) and Tyr's loss and
gradients on batch 0 with its K training losses (tyr.safetensors).  The twin
builds the same architecture, loads the same weights, checks the loss and
every gradient on batch 0, trains the same K AdamW steps (clipping, weight
decay on matrices) and checks the loss curve, then prints its ms/step.  The
safetensors files are read without the safetensors package, which Debian's
PyTorch lacks.  Exit status 1 when a difference is past its tolerance."""
import argparse
import json
import math
import sys
import time

import torch
import torch.nn.functional as F
from safetensors_io import load_safetensors

NF = 16  # TYR_BFM_TIME_FREQS


class Twin(torch.nn.Module):
    """The same parameters under the same names as tyr_bfm."""

    def __init__(self, cfg):
        super().__init__()
        self.dim, self.vocab, self.max_len = cfg["dim"], cfg["vocab"], cfg["max_len"]
        self.n_layer, self.n_head, E = cfg["n_layer"], cfg["n_head"], cfg["n_embd"]
        self.E = E
        P = lambda *s: torch.nn.Parameter(torch.zeros(*s))
        p = {}
        if self.dim:
            p["in_x.weight"], p["in_x.bias"] = P(E, self.dim), P(E)
        if self.vocab:
            p["tok_emb.weight"] = P(self.vocab + 1, E)
        p["pos_emb"] = P(self.max_len, E)
        p["time.fc1.weight"], p["time.fc1.bias"] = P(E, 2 * NF), P(E)
        p["time.fc2.weight"], p["time.fc2.bias"] = P(E, E), P(E)
        for l in range(self.n_layer):
            b = f"blocks.{l}."
            for ln in ("ln1", "ln2"):
                p[b + ln + ".weight"], p[b + ln + ".bias"] = P(E), P(E)
            p[b + "attn.qkv.weight"], p[b + "attn.qkv.bias"] = P(3 * E, E), P(3 * E)
            p[b + "attn.proj.weight"], p[b + "attn.proj.bias"] = P(E, E), P(E)
            p[b + "mlp.fc.weight"], p[b + "mlp.fc.bias"] = P(4 * E, E), P(4 * E)
            p[b + "mlp.proj.weight"], p[b + "mlp.proj.bias"] = P(E, 4 * E), P(E)
        p["ln_f.weight"], p["ln_f.bias"] = P(E), P(E)
        if self.dim:
            p["head_x.weight"], p["head_x.bias"] = P(self.dim, E), P(self.dim)
        if self.vocab:
            p["head_tok.weight"], p["head_tok.bias"] = P(self.vocab, E), P(self.vocab)
        p["head_split.weight"], p["head_split.bias"] = P(1, E), P(1)
        p["head_del.weight"], p["head_del.bias"] = P(1, E), P(1)
        self.p = torch.nn.ParameterDict({k.replace(".", "__"): v for k, v in p.items()})
        self.names = list(p.keys())
        freqs = [math.ldexp(1.0, k // 2) * math.pi * 0.5 for k in range(NF)]
        self.register_buffer("freqs", torch.tensor(freqs, dtype=torch.float32).reshape(1, NF))

    def w(self, name):
        return self.p[name.replace(".", "__")]

    def lin(self, name, x):
        return F.linear(x, self.w(name + ".weight"), self.w(name + ".bias"))

    def ln(self, name, x):
        return F.layer_norm(x, (self.E,), self.w(name + ".weight"), self.w(name + ".bias"), 1e-5)

    def forward(self, xt, tok, t, pad):
        B, L = pad.shape
        E, H = self.E, self.n_head
        D = E // H
        h = self.w("pos_emb")[:L].expand(B, L, E)
        if self.dim:
            h = h + self.lin("in_x", xt)
        if self.vocab:
            h = h + F.embedding(tok, self.w("tok_emb.weight"))
        ft = t.reshape(B, 1) @ self.freqs
        te = self.lin("time.fc2", F.silu(self.lin("time.fc1", torch.cat([ft.sin(), ft.cos()], 1))))
        h = h + te.reshape(B, 1, E)
        bias = ((pad - 1) * 1e9).reshape(B, 1, 1, L)
        for l in range(self.n_layer):
            b = f"blocks.{l}."
            qkv = self.lin(b + "attn.qkv", self.ln(b + "ln1", h))
            q, k, v = (qkv[..., i * E:(i + 1) * E].reshape(B, L, H, D).transpose(1, 2)
                       for i in range(3))
            sc = q @ k.transpose(2, 3) / math.sqrt(D) + bias
            o = (sc.softmax(-1) @ v).transpose(1, 2).reshape(B, L, E)
            h = h + self.lin(b + "attn.proj", o)
            a = self.ln(b + "ln2", h)
            h = h + self.lin(b + "mlp.proj", F.gelu(self.lin(b + "mlp.fc", a)))
        h = self.ln("ln_f", h)
        x = self.lin("head_x", h) if self.dim else None
        logits = self.lin("head_tok", h) if self.vocab else None
        return x, logits, self.lin("head_split", h).reshape(B, L), self.lin("head_del", h).reshape(B, L)

    def loss(self, bt, k):
        g = lambda n: bt.get(f"{n}.{k}")
        pad, fm, bm = g("pad"), g("pad") * g("flowmask"), g("pad") * g("branchmask")
        x, logits, split, dl = self(g("xt"), g("tok"), g("t"), pad)
        base = 0
        if self.dim:
            sq = ((x - g("anchor")) ** 2).sum(-1)
            base = base + (sq * fm).sum() / max(fm.sum().item() * self.dim, 1)
        if self.vocab:
            nll = F.nll_loss(logits.log_softmax(-1).reshape(-1, self.vocab),
                             g("anchor_tok").reshape(-1), ignore_index=self.vocab,
                             reduction="none").reshape(pad.shape)
            base = base + (nll * fm).sum() / max(fm.sum().item(), 1)
        c = g("split_target")
        z = split.clamp(-100, 11)
        sp = z.exp() - c * z - (c - c * c.clamp(min=1e-30).log())
        split_l = (sp * bm).sum() / max(bm.sum().item(), 1)
        de = F.binary_cross_entropy_with_logits(dl, g("del"), reduction="none")
        del_l = (de * bm).sum() / max(bm.sum().item(), 1)
        return base + split_l + del_l


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    bt, meta = load_safetensors(f"{a.dir}/batches.safetensors")
    cfg = json.loads(meta["config"])
    K, lr, wd, clip = int(meta["steps"]), float(meta["lr"]), float(meta["weight_decay"]), float(meta["clip"])
    init, _ = load_safetensors(f"{a.dir}/init.safetensors")
    ref, _ = load_safetensors(f"{a.dir}/tyr.safetensors")
    twin = Twin(cfg)
    with torch.no_grad():
        for n in twin.names:
            twin.w(n).copy_(init[n])
    # the loss and gradients on batch 0 at the initial weights
    loss = twin.loss(bt, 0)
    loss.backward()
    d_loss = abs(loss.item() - ref["loss0"].item())
    worst, worst_name = 0.0, ""
    for n in twin.names:
        gt, gr = twin.w(n).grad, ref["grad." + n]
        err = ((gt - gr).abs().max() / (gr.abs().max() + 1e-6)).item()
        if err > worst:
            worst, worst_name = err, n
    # K AdamW steps, weight decay on the matrices only (tyr_params_group_by_rank)
    twin.zero_grad()
    decay = [twin.w(n) for n in twin.names if twin.w(n).dim() >= 2]
    rest = [twin.w(n) for n in twin.names if twin.w(n).dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": wd},
                             {"params": rest, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.999),
                            eps=1e-8)
    losses, t_steps = [], 0.0
    for k in range(K):
        t0 = time.perf_counter()
        l = twin.loss(bt, k)
        l.backward()
        losses.append(l.item())
        torch.nn.utils.clip_grad_norm_(twin.parameters(), clip)
        opt.step()
        opt.zero_grad()
        if k >= 2:
            t_steps += time.perf_counter() - t0
    torch_ms = t_steps / (K - 2) * 1e3
    d_curve = max(abs(x - y) for x, y in zip(losses, ref["losses"].tolist()))
    print(f"torch losses {losses[0]:.5f} -> {losses[-1]:.5f}, {torch_ms:.2f} ms/step "
          f"(PyTorch {torch.__version__}, {torch.get_num_threads()} threads)")
    print(f"check: loss at init differs by {d_loss:.2e}; largest gradient difference "
          f"{worst:.2e} of the largest entry ({worst_name}); loss curves differ by at most "
          f"{d_curve:.2e} over {K} steps")
    ok = d_loss < 1e-4 and worst < 1e-3 and d_curve < 1e-2
    print("check: " + ("ok" if ok else "FAILED"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
