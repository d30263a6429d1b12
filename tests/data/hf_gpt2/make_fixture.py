#!/usr/bin/env python3
"""Builds the transformers GPT-2 fixture that tests/unit/test_gpt_hf.c loads.

A small GPT-2 with random weights, every parameter perturbed (non-zero biases,
LayerNorm weights away from 1 and biases away from 0) and a LayerNorm epsilon
other than 1e-5, saved by transformers' own save_pretrained as safetensors:

    OUT/config.json, OUT/model.safetensors            one file
    OUT/sharded/config.json, OUT/sharded/model-0000k-of-0000n.safetensors,
    OUT/sharded/model.safetensors.index.json          the same model in shards
    OUT/logits.safetensors                            "input_ids" [2, T] (I64),
                                                      "logits" [2, T, V] (F32)

The logits are transformers' own forward in float32 on the CPU, in eval mode.
Usage (needs PyTorch, transformers and safetensors):

    python3 tests/data/hf_gpt2/make_fixture.py tests/data/hf_gpt2

Everything written is under 1 MB.
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel

VOCAB = 100
N_POSITIONS = 32
N_EMBD = 48
N_LAYER = 2
N_HEAD = 2
EPS = 1e-3  # far from 1e-5 so that a loader ignoring the config's epsilon fails
SEED = 1234


def save(model, path, **kw):
    try:
        model.save_pretrained(path, safe_serialization=True, **kw)
    except TypeError:  # transformers versions without the argument: safetensors only
        model.save_pretrained(path, **kw)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_fixture.py OUTDIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(SEED)
    cfg = GPT2Config(
        vocab_size=VOCAB,
        n_positions=N_POSITIONS,
        n_embd=N_EMBD,
        n_layer=N_LAYER,
        n_head=N_HEAD,
        layer_norm_epsilon=EPS,
        activation_function="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        tie_word_embeddings=True,
        bos_token_id=0,
        eos_token_id=0,
    )
    model = GPT2LMHeadModel(cfg).float().eval()
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
                p.copy_(1.0 + 0.2 * noise)
            elif name.endswith(".bias"):
                p.copy_(0.05 * noise)
            else:
                p.copy_(0.05 * noise)
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr(), "head not tied"

    save(model, out)
    save(model, os.path.join(out, "sharded"), max_shard_size="100KB")
    shards = sorted(f for f in os.listdir(os.path.join(out, "sharded")) if f.endswith(".safetensors"))
    assert len(shards) >= 2, "expected a sharded checkpoint, got %s" % shards
    assert os.path.exists(os.path.join(out, "sharded", "model.safetensors.index.json"))

    T = N_POSITIONS
    ids = torch.tensor(
        [[(7 * i + 3) % VOCAB for i in range(T)], [(i * i + 11) % VOCAB for i in range(T)]],
        dtype=torch.int64,
    )
    with torch.no_grad():
        logits = model(ids).logits.float().contiguous()
    save_file({"input_ids": ids, "logits": logits}, os.path.join(out, "logits.safetensors"),
              metadata={"layer_norm_epsilon": repr(EPS)})

    # the saved files reproduce the logits through transformers' own loader
    for d in (out, os.path.join(out, "sharded")):
        again = GPT2LMHeadModel.from_pretrained(d).float().eval()
        with torch.no_grad():
            diff = (again(ids).logits - logits).abs().max().item()
        assert diff < 1e-5, "%s reloads with max |diff| %g" % (d, diff)

    # the epsilon matters: 1e-5 instead moves the logits visibly
    cfg2 = GPT2Config.from_dict({**cfg.to_dict(), "layer_norm_epsilon": 1e-5})
    other = GPT2LMHeadModel(cfg2).float().eval()
    other.load_state_dict(model.state_dict())
    with torch.no_grad():
        eps_diff = (other(ids).logits - logits).abs().max().item()

    total = 0
    for root, _, files in os.walk(out):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    print(json.dumps({
        "out": out,
        "shards": shards,
        "logits_shape": list(logits.shape),
        "logits_sum": float(logits.double().sum()),
        "logits_abs_max": float(logits.abs().max()),
        "max_diff_with_eps_1e-5": eps_diff,
        "bytes": total,
    }))
    assert total < 1_000_000, "fixture too large: %d bytes" % total


if __name__ == "__main__":
    main()
