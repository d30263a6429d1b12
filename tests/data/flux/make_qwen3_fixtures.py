#!/usr/bin/env python3
"""Builds the fixtures of Tyr's Qwen3 text encoder and Hugging Face tokenizer
tests (tests/unit/test_qwen3.c, tests/unit/test_tokenizer_hf.c).

Written under OUTDIR (everything well under 1 MB):

  qwen3_tiny/config.json, qwen3_tiny/model-0000k-of-0000n.safetensors,
  qwen3_tiny/model.safetensors.index.json
        a tiny random Qwen3 (transformers' Qwen3Config / Qwen3ForCausalLM:
        4 layers, hidden 64, 4 query / 2 KV heads of 16, MLP 128, vocab 512,
        theta 1e6, eps 1e-6) saved by save_pretrained in bf16, in shards;
        every weight drawn at random, norms away from 1
  qwen3_hidden.safetensors
        "input_ids" [2, 12] I64, "attention_mask" [2, 12] I64 (row 1 padded
        on the right), "hidden_0" .. "hidden_4" [2, 12, 64] F32: transformers'
        output_hidden_states of the bf16 weights read back in float32 (rotary
        frequencies in float32, as the real pipeline has them), on the CPU
        (eager attention)
  tokenizer.json
        a byte-level BPE trained by the tokenizers library with Qwen2's
        normalizer (NFC) and pre-tokenizer (its split regex, then ByteLevel),
        the specials <|endoftext|>, <|im_start|>, <|im_end|> and the added
        tokens <think>, </think>
  tokenizer_ids.json
        {"texts": [...], "ids": [[...], ...]}: what that tokenizer's encode
        gives (added tokens recognised)
  flux2_text.safetensors
        FLUX.2's text stage on the tiny pair for one prompt, max_len 48:
        "input_ids" [1, 48] I64, "attention_mask" [1, 48] I64, "features"
        [1, 48, 192] F32 (hidden states 1, 2, 3 stacked on the last dim)

Usage (PyTorch, transformers >= 4.51, tokenizers, safetensors):

    python3 tests/data/flux/make_qwen3_fixtures.py tests/data/flux
"""
import glob
import json
import os
import sys

import torch
from safetensors.torch import save_file
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
from tokenizers import pre_tokenizers, trainers

SEED = 20261204
VOCAB = 512
QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "A cat sitting on a windowsill, photorealistic, soft morning light.",
    "a photo of an astronaut riding a horse on the moon",
    "Watercolor painting of a lighthouse at dusk, 35mm film, high detail",
    "I'm sure they'll say it's fine; we've done this before, haven't we?",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 1234567 3.14159 2026-12-04",
    "Unicode: héllo wörld, café, naïve, Straße, Ελληνικά, русский, 日本語のテキスト, 中文, 🙂🐱",
    "    indented line\n\ttabbed line\r\nwindows line\n\n\nthree newlines",
    "def f(x):\n    return x * 2  # code with   spaces\n",
    "The the THE tHe, cat cats category; dog dogs doggo!!! ?? ...",
] * 4
TEXTS = [
    "hello world",
    "The quick brown fox jumps over the lazy dog.",
    "a cat sitting on a windowsill, photorealistic",
    "  leading spaces and trailing spaces   ",
    "multiple\n\nnewlines\r\nand\ttabs",
    "digits 1234567890 and 3.14 and 2026-12-04",
    "I'm don't we'LL they've",
    "héllo wörld café naïve Straße",
    "cafe\u0301 (decomposed accent, NFC makes it one character)",
    "日本語のテキスト 中文 русский Ελληνικά",
    "emoji 🙂🐱 and symbols ©®™ ∑∫",
    "<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
    "text<|endoftext|>after a special",
    "<|im_start|><|im_end|><think></think>",
    "",
    " ",
    "x",
]
PROMPT = "a cat sitting on a windowsill, photorealistic"
TEMPLATE = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"


def make_tokenizer():
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    trainer = trainers.BpeTrainer(
        vocab_size=420,
        min_frequency=1,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
    )
    tok.train_from_iterator(CORPUS, trainer)
    tok.add_tokens(
        [
            AddedToken("<think>", special=False, normalized=False),
            AddedToken("</think>", special=False, normalized=False),
        ]
    )
    return tok


def make_model(out):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    cfg = Qwen3Config(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=1024,
        rms_norm_eps=1e-6,
        rope_theta=1e6,
        tie_word_embeddings=True,
        attention_bias=False,
        hidden_act="silu",
    )
    torch.manual_seed(SEED)
    model = Qwen3ForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.3 * torch.randn_like(p))
            else:
                p.copy_(0.08 * torch.randn_like(p))
    model = model.to(torch.bfloat16)
    path = os.path.join(out, "qwen3_tiny")
    os.makedirs(path, exist_ok=True)
    model.save_pretrained(path, max_shard_size="150KB")
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(path, extra)):
            os.remove(os.path.join(path, extra))
    shards = sorted(glob.glob(os.path.join(path, "*.safetensors")))
    print("saved", [os.path.basename(s) for s in shards])
    if len(shards) < 2:
        sys.exit("save_pretrained wrote one file: the fixture must be sharded")
    # the reference: the saved bf16 weights read back in float32.  Loading
    # (rather than model.float()) recomputes the rotary inverse frequencies in
    # float32, as the real pipeline has them: .to(bfloat16) rounds that buffer.
    try:
        ref = Qwen3ForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    except TypeError:
        ref = Qwen3ForCausalLM.from_pretrained(
            path, torch_dtype=torch.float32, attn_implementation="eager"
        )
    inv = ref.model.rotary_emb.inv_freq
    print("rotary inv_freq dtype:", inv.dtype)
    return ref.eval()


def hidden_states(model, ids, mask):
    with torch.no_grad():
        o = model.model(
            input_ids=ids, attention_mask=mask, output_hidden_states=True, use_cache=False
        )
    return [h.float().contiguous() for h in o.hidden_states]


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_qwen3_fixtures.py OUTDIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    import transformers
    import tokenizers

    print("torch", torch.__version__, "transformers", transformers.__version__,
          "tokenizers", tokenizers.__version__)

    tok = make_tokenizer()
    tok.save(os.path.join(out, "tokenizer.json"))
    ids = [tok.encode(t).ids for t in TEXTS]
    with open(os.path.join(out, "tokenizer_ids.json"), "w") as f:
        json.dump({"texts": TEXTS, "ids": ids}, f, ensure_ascii=False, indent=0)
    for t, i in zip(TEXTS, ids):
        back = tok.decode(i, skip_special_tokens=False)
        print(repr(t)[:60], len(i), "ids; decodes back:", back == t)

    model = make_model(out)
    g = torch.Generator().manual_seed(SEED)
    T = 12
    ids2 = torch.randint(0, VOCAB, (2, T), generator=g, dtype=torch.int64)
    mask2 = torch.ones(2, T, dtype=torch.int64)
    mask2[1, 8:] = 0
    ids2[1, 8:] = 7  # a pad id
    hs = hidden_states(model, ids2, mask2)
    print("hidden states:", len(hs), tuple(hs[0].shape))
    t = {"input_ids": ids2, "attention_mask": mask2}
    for i, h in enumerate(hs):
        t["hidden_%d" % i] = h
    save_file(t, os.path.join(out, "qwen3_hidden.safetensors"))

    max_len = 48  # the prompt is 36 tokens: 12 of padding
    enc = tok.encode(TEMPLATE.format(PROMPT))
    n = min(len(enc.ids), max_len)
    pad = tok.token_to_id("<|endoftext|>")
    tids = torch.full((1, max_len), pad, dtype=torch.int64)
    tids[0, :n] = torch.tensor(enc.ids[:n])
    tmask = torch.zeros(1, max_len, dtype=torch.int64)
    tmask[0, :n] = 1
    hs = hidden_states(model, tids, tmask)
    feat = torch.cat([hs[1], hs[2], hs[3]], dim=-1).contiguous()
    print("text stage:", n, "tokens", tuple(feat.shape))
    save_file(
        {"input_ids": tids, "attention_mask": tmask, "features": feat},
        os.path.join(out, "flux2_text.safetensors"),
    )


if __name__ == "__main__":
    main()
