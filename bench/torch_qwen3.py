#!/usr/bin/env python3
"""PyTorch twin of bench/bench_qwen3.c: FLUX.2 [klein]'s text encoder with
transformers' Qwen3Model.

    python3 bench/torch_qwen3.py --dir DIR [--iters N] [--device cpu|cuda] [--compile]

DIR is what bench_qwen3 wrote: config.json and model.safetensors (Tyr's
random weights, the first layers of the config's model) and
tyr_features.safetensors ("input_ids", "attention_mask" and Tyr's
"features", with the stacked layers in its metadata).  The twin builds a
Qwen3Model of the layers held, loads the same weights, computes the same
hidden states from the same ids (bf16 and SDPA on CUDA, float32 on the CPU
as Tyr computes there), prints the largest difference from Tyr's features
and its time per prompt:

    parity: max |torch - tyr| = ... (largest |tyr| ...)
    torch: X ms per prompt (mean of N, best B ms), peak device memory G GiB
"""
import argparse
import json
import os
import struct
import time

import torch
from safetensors.torch import load_file
from transformers import Qwen3Config, Qwen3Model


def metadata(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n)).get("__metadata__", {})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--compile", action="store_true")
    a = ap.parse_args()
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    dtype = torch.bfloat16 if cuda else torch.float32

    weights = load_file(os.path.join(a.dir, "model.safetensors"), device=str(dev))
    held = 1 + max(int(k.split(".")[1]) for k in weights if k.startswith("layers."))
    cfg = Qwen3Config.from_pretrained(a.dir)
    full_layers = cfg.num_hidden_layers
    cfg.num_hidden_layers = held
    if getattr(cfg, "layer_types", None):
        cfg.layer_types = cfg.layer_types[:held]
    cfg._attn_implementation = "sdpa"
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    with torch.device(dev):
        model = Qwen3Model(cfg)
    torch.set_default_dtype(old)
    missing, unexpected = model.load_state_dict(
        {k: v.to(dtype) for k, v in weights.items()}, strict=False
    )
    del weights
    if held < full_layers:
        # the last hidden state is normed in transformers; FLUX.2 reads layer 27 of 36 raw
        missing = [k for k in missing if k != "norm.weight"]
        model.norm = torch.nn.Identity()
    if missing or unexpected:
        raise SystemExit("torch_qwen3: missing %s, unexpected %s" % (missing, unexpected))
    model.eval()

    tf = os.path.join(a.dir, "tyr_features.safetensors")
    t = load_file(tf, device=str(dev))
    meta = metadata(tf)
    layers = [int(meta["layer%d" % i]) for i in range(3)]
    ids, mask, tyr_feat = t["input_ids"], t["attention_mask"], t["features"]

    def run():
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True, use_cache=False)
        return torch.cat([out.hidden_states[i] for i in layers], dim=-1)

    fn = torch.compile(run) if a.compile else run
    with torch.inference_mode():
        feat = fn()
        d = (feat.float() - tyr_feat.float()).abs()
        print(
            "parity: max |torch - tyr| = %.4g, mean %.4g (largest |tyr| %.4g, mean %.4g), states %s"
            % (d.max().item(), d.mean().item(), tyr_feat.float().abs().max().item(),
               tyr_feat.float().abs().mean().item(), layers),
            flush=True,
        )
        fn()
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(a.iters):
            t0 = time.perf_counter()
            fn()
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    print(
        "torch: %.2f ms per prompt (mean of %d, best %.2f ms), peak device memory %.2f GiB%s"
        % (1e3 * sum(times) / len(times), len(times), 1e3 * min(times), peak,
           ", torch.compile" if a.compile else ""),
        flush=True,
    )


if __name__ == "__main__":
    main()
