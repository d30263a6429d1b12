#!/usr/bin/env python3
"""Qwen3's hidden states in plain PyTorch (no transformers, no safetensors
package: runs with Debian's python3-torch), written from the architecture
transformers' Qwen3Model implements, as a second reference next to the
transformers fixtures.  Takes the arguments of bench/torch_qwen3.py, so that

    TYR_PYTHON="/usr/bin/python3 tests/data/flux/qwen3_plain_reference.py" \
        build/bench/bench_qwen3 --config tiny --seq 24 --tokens 17 --iters 1

(the twin's path then comes as an argument, which is ignored) compares
Tyr's features with it, and exits non-zero when they differ:

    parity: max |torch - tyr| = ...
"""
import argparse
import json
import os
import struct
import sys
import time

import numpy as np
import torch

DT = {"F32": (np.float32, None), "BF16": (np.int16, torch.bfloat16), "F16": (np.float16, None),
      "I64": (np.int64, None), "I32": (np.int32, None)}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        npt, view = DT[v["dtype"]]
        b, e = v["data_offsets"]
        t = torch.from_numpy(np.frombuffer(data[b:e], dtype=npt).copy()).reshape(v["shape"])
        out[k] = t.view(view) if view else t
    return out, head.get("__metadata__", {})


def rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def hidden_states(W, cfg, ids, mask, held):
    H, nh, nk, D = (cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"],
                    cfg["head_dim"])
    eps, theta = cfg["rms_norm_eps"], cfg.get("rope_theta", 10000.0)
    B, T = ids.shape
    x = W["embed_tokens.weight"][ids]
    inv = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.float64) / D))
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
    cos = torch.cat([ang.cos(), ang.cos()], -1).float()
    sin = torch.cat([ang.sin(), ang.sin()], -1).float()
    allowed = torch.tril(torch.ones(T, T, dtype=torch.bool))[None] & mask.bool()[:, None, :]
    states = [x]
    for l in range(held):
        p = lambda n: W["layers.%d.%s" % (l, n)]
        h = rms(x, p("input_layernorm.weight"), eps)
        q = (h @ p("self_attn.q_proj.weight").T).view(B, T, nh, D)
        k = (h @ p("self_attn.k_proj.weight").T).view(B, T, nk, D)
        v = (h @ p("self_attn.v_proj.weight").T).view(B, T, nk, D).transpose(1, 2)
        q = rms(q, p("self_attn.q_norm.weight"), eps).transpose(1, 2)
        k = rms(k, p("self_attn.k_norm.weight"), eps).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(nh // nk, dim=1)
        v = v.repeat_interleave(nh // nk, dim=1)
        s = (q @ k.transpose(-1, -2)) / D**0.5
        s = s.masked_fill(~allowed[:, None], float("-inf"))
        a = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(B, T, nh * D)
        x = x + a @ p("self_attn.o_proj.weight").T
        h = rms(x, p("post_attention_layernorm.weight"), eps)
        g = h @ p("mlp.gate_proj.weight").T
        x = x + (torch.nn.functional.silu(g) * (h @ p("mlp.up_proj.weight").T)) @ p(
            "mlp.down_proj.weight").T
        states.append(x)
    if held == cfg["num_hidden_layers"]:
        states[-1] = rms(x, W["norm.weight"], eps)
    return states


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("twin", nargs="?", help="ignored (bench_qwen3 passes the twin's path)")
    ap.add_argument("--dir", required=True)
    ap.add_argument("--iters", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--compile", action="store_true")
    a = ap.parse_args()
    cfg = json.load(open(os.path.join(a.dir, "config.json")))
    W, _ = read_safetensors(os.path.join(a.dir, "model.safetensors"))
    W = {k: v.float() for k, v in W.items()}
    held = 1 + max(int(k.split(".")[1]) for k in W if k.startswith("layers."))
    t, meta = read_safetensors(os.path.join(a.dir, "tyr_features.safetensors"))
    layers = [int(meta["layer%d" % i]) for i in range(3)]
    t0 = time.perf_counter()
    with torch.no_grad():
        hs = hidden_states(W, cfg, t["input_ids"].long(), t["attention_mask"], held)
    feat = torch.cat([hs[i] for i in layers], -1)
    dt = time.perf_counter() - t0
    d = (feat - t["features"].float()).abs()
    print("parity: max |torch - tyr| = %.4g, mean %.4g (largest |tyr| %.4g), states %s"
          % (d.max().item(), d.mean().item(), t["features"].float().abs().max().item(), layers))
    print("torch: %.2f ms per prompt (mean of 1, best %.2f ms), peak device memory nan GiB, plain"
          % (dt * 1e3, dt * 1e3))
    sys.exit(0 if d.max().item() <= 1e-4 * (1 + t["features"].abs().max().item()) else 1)


if __name__ == "__main__":
    main()
