#!/usr/bin/env python3
"""The PyTorch twin of Tyr's FLUX.2 [klein] pipeline (src/models/flux2.c,
src/models/flux2_vae.c): the transformer and the VAE decoder in plain
PyTorch, written from the architecture (not from Tyr's code), with the
BFL parameter names Tyr uses; the text encoder through transformers' Qwen3
classes.

  fixtures OUTDIR   the tiny configs with seeded random weights: writes
                    flux2_tiny.safetensors (BFL names), flux2_tiny_diffusers
                    .safetensors (the same weights under diffusers' names),
                    flux2_vae_tiny.safetensors, and flux2_io.safetensors
                    (inputs and the twin's outputs: one transformer call, one
                    Euler step, one decode) for tests/unit/test_flux2.c.
                    Runs on PyTorch 1.13 on the CPU.
  bench [--size N] [--steps S] [--device cuda] [--compile] [--config full|tiny]
                    the full architecture (tiny: the test configs, f32) with random bf16 weights: seconds
                    per stage (text encoder, transformer steps, VAE) and peak
                    memory, one JSON line on stdout (bench/bench_flux2.c
                    prints it next to Tyr's figures).
"""
import json
import math
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

# ---- safetensors without the safetensors package ---------------------------------
_DT = {"F32": (np.float32, torch.float32), "BF16": (np.uint16, torch.bfloat16),
       "F16": (np.float16, torch.float16), "I64": (np.int64, torch.int64)}


def st_save(path, tensors):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        if t.dtype == torch.bfloat16:
            raw, dt = t.view(torch.int16).numpy().tobytes(), "BF16"
        elif t.dtype == torch.int64:
            raw, dt = t.numpy().tobytes(), "I64"
        else:
            raw, dt = t.float().numpy().tobytes(), "F32"
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def st_load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        npdt, tdt = _DT[e["dtype"]]
        arr = np.frombuffer(data[a:b], dtype=npdt).reshape(e["shape"]).copy()
        t = torch.from_numpy(arr.view(np.int16) if e["dtype"] == "BF16" else arr)
        out[name] = t.view(torch.bfloat16) if e["dtype"] == "BF16" else t
    return out


# ---- configs ------------------------------------------------------------------------
FLUX_FULL = dict(hidden=3072, heads=24, depth=5, depth_single=20, mlp=9216, cin=128, ctx=7680,
                 axes=(32, 32, 32, 32), theta=2000.0, eps=1e-6)
FLUX_TINY = dict(hidden=64, heads=2, depth=1, depth_single=2, mlp=192, cin=128, ctx=192,
                 axes=(8, 8, 8, 8), theta=2000.0, eps=1e-6)
VAE_FULL = dict(z=32, ch=128, mult=(1, 2, 4, 4), nrb=2, groups=32, eps=1e-6, bn_eps=1e-4)
VAE_TINY = dict(z=32, ch=16, mult=(1, 1, 2, 2), nrb=1, groups=8, eps=1e-6, bn_eps=1e-4)


def flux_shapes(c):
    D, M, hd = c["hidden"], c["mlp"], c["hidden"] // c["heads"]
    s = {"img_in.weight": (D, c["cin"]), "txt_in.weight": (D, c["ctx"]),
         "time_in.in_layer.weight": (D, 256), "time_in.out_layer.weight": (D, D),
         "double_stream_modulation_img.lin.weight": (6 * D, D),
         "double_stream_modulation_txt.lin.weight": (6 * D, D),
         "single_stream_modulation.lin.weight": (3 * D, D)}
    for i in range(c["depth"]):
        for x in ("img", "txt"):
            p = f"double_blocks.{i}.{x}_"
            s[p + "attn.qkv.weight"] = (3 * D, D)
            s[p + "attn.norm.query_norm.scale"] = (hd,)
            s[p + "attn.norm.key_norm.scale"] = (hd,)
            s[p + "attn.proj.weight"] = (D, D)
            s[p + "mlp.0.weight"] = (2 * M, D)
            s[p + "mlp.2.weight"] = (D, M)
    for i in range(c["depth_single"]):
        p = f"single_blocks.{i}."
        s[p + "linear1.weight"] = (3 * D + 2 * M, D)
        s[p + "linear2.weight"] = (D, D + M)
        s[p + "norm.query_norm.scale"] = (hd,)
        s[p + "norm.key_norm.scale"] = (hd,)
    s["final_layer.adaLN_modulation.1.weight"] = (2 * D, D)
    s["final_layer.linear.weight"] = (c["cin"], D)
    return s


def vae_shapes(c):
    s = {"bn.running_mean": (4 * c["z"],), "bn.running_var": (4 * c["z"],)}

    def conv(n, o, i, k):
        s[n + ".weight"], s[n + ".bias"] = (o, i, k, k), (o,)

    def norm(n, ch):
        s[n + ".weight"], s[n + ".bias"] = (ch,), (ch,)

    def res(n, i, o):
        norm(n + ".norm1", i), conv(n + ".conv1", o, i, 3), norm(n + ".norm2", o)
        conv(n + ".conv2", o, o, 3)
        if i != o:
            conv(n + ".nin_shortcut", o, i, 1)

    z, ch = c["z"], c["ch"] * c["mult"][3]
    conv("decoder.post_quant_conv", z, z, 1), conv("decoder.conv_in", ch, z, 3)
    res("decoder.mid.block_1", ch, ch), norm("decoder.mid.attn_1.norm", ch)
    for q in ("q", "k", "v", "proj_out"):
        conv("decoder.mid.attn_1." + q, ch, ch, 1)
    res("decoder.mid.block_2", ch, ch)
    for lvl in (3, 2, 1, 0):
        out = c["ch"] * c["mult"][lvl]
        for j in range(c["nrb"] + 1):
            res(f"decoder.up.{lvl}.block.{j}", ch, out)
            ch = out
        if lvl:
            conv(f"decoder.up.{lvl}.upsample.conv", ch, ch, 3)
    norm("decoder.norm_out", ch), conv("decoder.conv_out", 3, ch, 3)
    return s


def random_weights(shapes, gen, dtype, device="cpu"):
    """Drawn with gen on its device (a CUDA generator draws on the GPU)."""
    w = {}
    gd = gen.device
    for n, shp in shapes.items():
        if n == "bn.running_mean":
            t = torch.randn(shp, generator=gen, device=gd) * 0.1
        elif n == "bn.running_var":
            t = torch.rand(shp, generator=gen, device=gd) + 0.5
        elif len(shp) == 1:
            t = 1 + 0.1 * torch.randn(shp, generator=gen, device=gd)
        else:
            fan = int(np.prod(shp[1:]))
            t = torch.randn(shp, generator=gen, device=gd) / math.sqrt(fan)
        w[n] = t.to(device=device, dtype=torch.float32 if n.startswith("bn.") else dtype)
    return w


# ---- the transformer ------------------------------------------------------------------
def sdpa(q, k, v):
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v)
    a = torch.softmax((q.float() @ k.float().transpose(-1, -2)) / math.sqrt(q.shape[-1]), -1)
    return (a @ v.float()).to(q.dtype)


def rms(x, scale, eps):
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * scale


def rope(c, L, h, w, device):
    """cos, sin [T, hd/2] for text tokens (0,0,0,l) then image tokens (0,i,j,0)."""
    pos = torch.zeros(L + h * w, 4, dtype=torch.float64)
    pos[:L, 3] = torch.arange(L, dtype=torch.float64)
    ii, jj = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    pos[L:, 1], pos[L:, 2] = ii.reshape(-1).double(), jj.reshape(-1).double()
    angs = []
    for a, d in enumerate(c["axes"]):
        freqs = 1.0 / (c["theta"] ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
        angs.append(pos[:, a:a + 1] * freqs[None])
    ang = torch.cat(angs, -1)
    return ang.cos().float().to(device), ang.sin().float().to(device)


def apply_rope(x, cos, sin):
    """x [B, H, T, hd]: each adjacent pair (2i, 2i+1) rotated by angle i."""
    xf = x.float().reshape(*x.shape[:-1], -1, 2)
    x0, x1 = xf[..., 0], xf[..., 1]
    out = torch.stack([x0 * cos - x1 * sin, x1 * cos + x0 * sin], -1)
    return out.reshape(x.shape).to(x.dtype)


def flux_forward(W, c, img, txt, t, h, w):
    D, H, eps = c["hidden"], c["heads"], c["eps"]
    B, N, _ = img.shape
    L = txt.shape[1]
    dt = img.dtype
    tt = t.to(dt).float() * 1000.0
    freqs = torch.exp(-math.log(10000.0) * torch.arange(128, dtype=torch.float32, device=img.device) / 128)
    args = tt[:, None] * freqs[None]
    temb = torch.cat([torch.cos(args), torch.sin(args)], -1).to(dt)
    vec = F.linear(F.silu(F.linear(temb, W["time_in.in_layer.weight"])), W["time_in.out_layer.weight"])
    sv = F.silu(vec)
    mi = F.linear(sv, W["double_stream_modulation_img.lin.weight"])[:, None].chunk(6, -1)
    mt = F.linear(sv, W["double_stream_modulation_txt.lin.weight"])[:, None].chunk(6, -1)
    ms = F.linear(sv, W["single_stream_modulation.lin.weight"])[:, None].chunk(3, -1)
    fm = F.linear(sv, W["final_layer.adaLN_modulation.1.weight"])[:, None].chunk(2, -1)
    cos, sin = rope(c, L, h, w, img.device)

    def ln(x):
        return F.layer_norm(x, (D,), eps=eps)

    def mod(x, shift, scale):
        return (1 + scale) * ln(x) + shift

    def heads(x):  # [B, T, D] -> [B, H, T, hd]
        return x.reshape(x.shape[0], x.shape[1], H, D // H).transpose(1, 2)

    def swiglu(x):
        a, b = x.chunk(2, -1)
        return F.silu(a) * b

    def attend(q, k, v):
        o = sdpa(apply_rope(q, cos, sin), apply_rope(k, cos, sin), v)
        return o.transpose(1, 2).reshape(o.shape[0], -1, D)

    x = F.linear(img, W["img_in.weight"])
    y = F.linear(txt, W["txt_in.weight"])
    for i in range(c["depth"]):
        p = f"double_blocks.{i}."
        qs, ks, vs = [], [], []
        for s, m, z in (("txt", mt, y), ("img", mi, x)):
            q, k, v = F.linear(mod(z, m[0], m[1]), W[p + s + "_attn.qkv.weight"]).chunk(3, -1)
            qs.append(rms(heads(q), W[p + s + "_attn.norm.query_norm.scale"], eps))
            ks.append(rms(heads(k), W[p + s + "_attn.norm.key_norm.scale"], eps))
            vs.append(heads(v))
        a = attend(torch.cat(qs, 2), torch.cat(ks, 2), torch.cat(vs, 2))
        ya, xa = a[:, :L], a[:, L:]
        x = x + mi[2] * F.linear(xa, W[p + "img_attn.proj.weight"])
        x = x + mi[5] * F.linear(swiglu(F.linear(mod(x, mi[3], mi[4]), W[p + "img_mlp.0.weight"])),
                                 W[p + "img_mlp.2.weight"])
        y = y + mt[2] * F.linear(ya, W[p + "txt_attn.proj.weight"])
        y = y + mt[5] * F.linear(swiglu(F.linear(mod(y, mt[3], mt[4]), W[p + "txt_mlp.0.weight"])),
                                 W[p + "txt_mlp.2.weight"])
    z = torch.cat([y, x], 1)
    for i in range(c["depth_single"]):
        p = f"single_blocks.{i}."
        hh = F.linear(mod(z, ms[0], ms[1]), W[p + "linear1.weight"])
        qkv, mlp = hh[..., :3 * D], hh[..., 3 * D:]
        q, k, v = qkv.chunk(3, -1)
        a = attend(rms(heads(q), W[p + "norm.query_norm.scale"], eps),
                   rms(heads(k), W[p + "norm.key_norm.scale"], eps), heads(v))
        z = z + ms[2] * F.linear(torch.cat([a, swiglu(mlp)], -1), W[p + "linear2.weight"])
    out = mod(z[:, L:], fm[0], fm[1])
    return F.linear(out, W["final_layer.linear.weight"])


def schedule(steps, n):
    a1, b1, a2, b2 = 8.73809524e-05, 1.89833333, 0.00016927, 0.45666666
    if n > 4300:
        mu = a2 * n + b2
    else:
        m200, m10 = a2 * n + b2, a1 * n + b1
        a = (m200 - m10) / 190.0
        mu = a * steps + (m200 - 200.0 * a)
    ts = []
    for i in range(steps + 1):
        x = 1.0 - i / steps
        ts.append(0.0 if x <= 0 else math.exp(mu) / (math.exp(mu) + (1 / x - 1)))
    return mu, ts


# ---- the VAE decoder -------------------------------------------------------------------
def vae_decode(W, c, tokens, h, w):
    g, eps = c["groups"], c["eps"]
    dt = tokens.dtype

    def conv(x, n, pad):
        return F.conv2d(x, W[n + ".weight"], W[n + ".bias"], padding=pad)

    def gn(x, n):
        return F.group_norm(x, g, W[n + ".weight"], W[n + ".bias"], eps)

    def res(x, n):
        y = conv(F.silu(gn(x, n + ".norm1")), n + ".conv1", 1)
        y = conv(F.silu(gn(y, n + ".norm2")), n + ".conv2", 1)
        if n + ".nin_shortcut.weight" in W:
            x = conv(x, n + ".nin_shortcut", 0)
        return x + y

    sd = torch.sqrt(W["bn.running_var"] + c["bn_eps"]).to(dt)
    z = tokens * sd + W["bn.running_mean"].to(dt)  # [B, hw, (c, i, j)]
    B = z.shape[0]
    z = z.reshape(B, h, w, c["z"], 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(B, c["z"], 2 * h, 2 * w)
    x = conv(z, "decoder.post_quant_conv", 0)
    x = conv(x, "decoder.conv_in", 1)
    x = res(x, "decoder.mid.block_1")
    hn = gn(x, "decoder.mid.attn_1.norm")
    b, C, H, Wd = hn.shape
    q, k, v = (conv(hn, "decoder.mid.attn_1." + n, 0).reshape(b, 1, C, H * Wd).transpose(2, 3)
               for n in ("q", "k", "v"))
    a = sdpa(q, k, v).transpose(2, 3).reshape(b, C, H, Wd)
    x = x + conv(a, "decoder.mid.attn_1.proj_out", 0)
    x = res(x, "decoder.mid.block_2")
    for lvl in (3, 2, 1, 0):
        for j in range(c["nrb"] + 1):
            x = res(x, f"decoder.up.{lvl}.block.{j}")
        if lvl:
            x = conv(F.interpolate(x, scale_factor=2.0, mode="nearest"),
                     f"decoder.up.{lvl}.upsample.conv", 1)
    return conv(F.silu(gn(x, "decoder.norm_out")), "decoder.conv_out", 1)


# ---- diffusers names -------------------------------------------------------------------
def to_diffusers(W, c):
    D = c["hidden"]
    out = {"x_embedder.weight": W["img_in.weight"], "context_embedder.weight": W["txt_in.weight"],
           "time_guidance_embed.timestep_embedder.linear_1.weight": W["time_in.in_layer.weight"],
           "time_guidance_embed.timestep_embedder.linear_2.weight": W["time_in.out_layer.weight"],
           "proj_out.weight": W["final_layer.linear.weight"]}
    for s in ("img", "txt"):
        out[f"double_stream_modulation_{s}.linear.weight"] = W[f"double_stream_modulation_{s}.lin.weight"]
    out["single_stream_modulation.linear.weight"] = W["single_stream_modulation.lin.weight"]
    shift, scale = W["final_layer.adaLN_modulation.1.weight"].chunk(2, 0)
    out["norm_out.linear.weight"] = torch.cat([scale, shift], 0)
    for i in range(c["depth"]):
        p, q = f"double_blocks.{i}.", f"transformer_blocks.{i}."
        for n, x in zip(("to_q", "to_k", "to_v"), W[p + "img_attn.qkv.weight"].chunk(3, 0)):
            out[q + "attn." + n + ".weight"] = x
        for n, x in zip(("add_q_proj", "add_k_proj", "add_v_proj"), W[p + "txt_attn.qkv.weight"].chunk(3, 0)):
            out[q + "attn." + n + ".weight"] = x
        out[q + "attn.norm_q.weight"] = W[p + "img_attn.norm.query_norm.scale"]
        out[q + "attn.norm_k.weight"] = W[p + "img_attn.norm.key_norm.scale"]
        out[q + "attn.norm_added_q.weight"] = W[p + "txt_attn.norm.query_norm.scale"]
        out[q + "attn.norm_added_k.weight"] = W[p + "txt_attn.norm.key_norm.scale"]
        out[q + "attn.to_out.0.weight"] = W[p + "img_attn.proj.weight"]
        out[q + "attn.to_add_out.weight"] = W[p + "txt_attn.proj.weight"]
        out[q + "ff.linear_in.weight"] = W[p + "img_mlp.0.weight"]
        out[q + "ff.linear_out.weight"] = W[p + "img_mlp.2.weight"]
        out[q + "ff_context.linear_in.weight"] = W[p + "txt_mlp.0.weight"]
        out[q + "ff_context.linear_out.weight"] = W[p + "txt_mlp.2.weight"]
    for i in range(c["depth_single"]):
        p, q = f"single_blocks.{i}.", f"single_transformer_blocks.{i}.attn."
        out[q + "to_qkv_mlp_proj.weight"] = W[p + "linear1.weight"]
        out[q + "to_out.weight"] = W[p + "linear2.weight"]
        out[q + "norm_q.weight"] = W[p + "norm.query_norm.scale"]
        out[q + "norm_k.weight"] = W[p + "norm.key_norm.scale"]
    del D
    return out


def fixtures(outdir):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)
    # weights stored in bf16 (small files); computed in f32 from those values
    Wb = random_weights(flux_shapes(FLUX_TINY), gen, torch.bfloat16)
    Vb = random_weights(vae_shapes(VAE_TINY), gen, torch.bfloat16)
    st_save(f"{outdir}/flux2_tiny.safetensors", Wb)
    st_save(f"{outdir}/flux2_tiny_diffusers.safetensors", to_diffusers(Wb, FLUX_TINY))
    st_save(f"{outdir}/flux2_vae_tiny.safetensors", Vb)
    W = {k: v.float() for k, v in Wb.items()}
    V = {k: v.float() for k, v in Vb.items()}
    h, w, L = 2, 3, 5
    img = torch.randn(1, h * w, 128, generator=gen)
    txt = torch.randn(1, L, FLUX_TINY["ctx"], generator=gen)
    t = torch.tensor([0.75])
    with torch.no_grad():
        vel = flux_forward(W, FLUX_TINY, img, txt, t, h, w)
        mu, ts = schedule(4, h * w)
        x1 = img + (ts[1] - ts[0]) * flux_forward(W, FLUX_TINY, img, txt,
                                                  torch.tensor([ts[0]]), h, w)
        image = vae_decode(V, VAE_TINY, img, h, w)
    st_save(f"{outdir}/flux2_io.safetensors",
            {"img": img, "txt": txt, "t": t, "velocity": vel, "euler1": x1, "image": image})
    print(f"fixtures in {outdir}: velocity {tuple(vel.shape)}, image {tuple(image.shape)}, "
          f"mu {mu:.5f}")


# ---- speed ------------------------------------------------------------------------------
def bench(argv):
    size, steps, dev, comp, config = 1024, 4, "cuda", False, "full"
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--size":
            size = int(argv[i + 1]); i += 1
        elif a == "--steps":
            steps = int(argv[i + 1]); i += 1
        elif a == "--device":
            dev = argv[i + 1]; i += 1
        elif a == "--config":
            config = argv[i + 1]; i += 1
        elif a == "--compile":
            comp = True
        i += 1
    dt = torch.bfloat16
    gen = torch.Generator(device=dev).manual_seed(0)
    h = w = size // 16
    res = {"size": size, "steps": steps, "device": dev, "compile": comp, "config": config}
    tiny = config == "tiny"
    FC, VC = (FLUX_TINY, VAE_TINY) if tiny else (FLUX_FULL, VAE_FULL)
    if tiny:
        dt = torch.float32

    def sync():
        if dev.startswith("cuda"):
            torch.cuda.synchronize()

    with torch.no_grad():
        # text encoder: transformers' Qwen3 (4B dims), the 27 layers that are needed
        try:
            from transformers import Qwen3Config, Qwen3Model
            if tiny:  # Tyr's tyr_qwen3_config_tiny, layers 1, 2, 3 of 4
                qc = Qwen3Config(vocab_size=512, hidden_size=64, intermediate_size=128,
                                 num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                                 head_dim=16, rms_norm_eps=1e-6, max_position_embeddings=1024)
                picks = (1, 2, 3)
            else:
                # (the rotary base does not change the speed: the default is kept)
                qc = Qwen3Config(vocab_size=151936, hidden_size=2560, intermediate_size=9728,
                                 num_hidden_layers=27, num_attention_heads=32,
                                 num_key_value_heads=8, head_dim=128, rms_norm_eps=1e-6,
                                 max_position_embeddings=40960)
                picks = (9, 18, 27)
            try:
                qc._attn_implementation = "sdpa"
            except Exception:  # noqa: BLE001  (transformers picks SDPA by default)
                pass
            torch.set_default_dtype(dt)
            with torch.device(dev):  # built on the device (random init, no copy)
                te = Qwen3Model(qc).eval()
            torch.set_default_dtype(torch.float32)
            ids = torch.randint(0, qc.vocab_size, (1, 512), device=dev)
            mask = torch.ones(1, 512, dtype=torch.long, device=dev)
            for _ in range(2):
                sync(); t0 = time.perf_counter()
                o = te(input_ids=ids, attention_mask=mask, output_hidden_states=True)
                feats = torch.cat([o.hidden_states[k] for k in picks], -1)
                sync(); res["text_encoder_s"] = time.perf_counter() - t0
            del te, o
        except Exception as e:  # noqa: BLE001
            res["text_encoder_error"] = str(e)[:200]
            feats = torch.randn(1, 512, FC["ctx"], generator=gen, device=dev).to(dt)
        W = random_weights(flux_shapes(FC), gen, dt, dev)
        V = random_weights(vae_shapes(VC), gen, dt, dev)
        fwd = flux_forward
        dec = vae_decode
        if comp:
            fwd = torch.compile(flux_forward)
            dec = torch.compile(vae_decode)
        x0 = torch.randn(1, h * w, 128, generator=gen, device=dev).to(dt)
        _, ts = schedule(steps, h * w)
        for rep in range(2):  # the first run warms up (and compiles)
            if dev.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            x = x0
            sync(); t0 = time.perf_counter()
            for k in range(steps):
                v = fwd(W, FC, x, feats, torch.full((1,), ts[k], device=dev), h, w)
                x = x + (ts[k + 1] - ts[k]) * v
            sync(); t1 = time.perf_counter()
            img = dec(V, VC, x, h, w)
            sync(); t2 = time.perf_counter()
            res["transformer_s"], res["vae_s"] = t1 - t0, t2 - t1
        if dev.startswith("cuda"):
            res["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        res["image_mean"] = float(img.float().mean())
    res["total_s"] = res.get("text_encoder_s", 0) + res["transformer_s"] + res["vae_s"]
    print(json.dumps(res))


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "fixtures":
        fixtures(sys.argv[2])
    elif len(sys.argv) >= 2 and sys.argv[1] == "bench":
        bench(sys.argv[2:])
    else:
        print(__doc__)
        sys.exit(2)
