/* tyr/models/qwen3.h - the Qwen3 decoder as a text encoder (FLUX.2 [klein]'s
 * Qwen3-4B): transformers checkpoints read memory-mapped and kept in their
 * storage dtype, hidden states of chosen layers, and FLUX.2's text stage
 * (chat template, padding, the three stacked hidden states).
 *
 *   tyr_tokenizer *tok = tyr_tokenizer_load_hf("klein/tokenizer/tokenizer.json");
 *   tyr_qwen3 *m = tyr_qwen3_load("klein/text_encoder", TYR_FLUX2_TEXT_MAX_LAYER,
 *                                 TYR_DEVICE_CUDA(0));
 *   tyr_tensor *feat, *mask;
 *   if (tyr_flux2_text_encode(m, tok, "a cat on a windowsill", 512, &feat, &mask)) return 1;
 *   // feat [1, 512, 7680], mask [1, 512]
 *   tyr_qwen3_free(m);
 *
 * The architecture (transformers' Qwen3Model): token embedding; per layer
 *   h = x + o_proj(attn(q_norm(q_proj(rmsnorm(x))), k_norm(k_proj(..)), v_proj(..)))
 *   x = h + down_proj(silu(gate_proj(rmsnorm(h))) * up_proj(rmsnorm(h)))
 * with RMSNorm (learned weight, eps rms_eps) before attention and MLP and on
 * every query and key head (q_norm, k_norm over head_dim), rotary embedding
 * in the rotate-half convention (theta rope_theta, positions 0..T-1),
 * grouped KV heads, no biases, causal attention that also skips padded keys;
 * a final RMSNorm.
 *
 * Compute: on CUDA in the storage dtype (bf16 for the released weights); on
 * the CPU in f32, each layer's weights converted from their storage dtype as
 * the layer runs (the model stays in bf16 in memory). */
#ifndef TYR_MODELS_QWEN3_H
#define TYR_MODELS_QWEN3_H
#include <stdint.h>

#include "tyr/tensor.h"
#include "tyr/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- config ------------------------------------------------------------------ */
typedef struct tyr_qwen3_config {
  int64_t vocab_size, hidden, n_layer, n_head, n_kv_head, head_dim, intermediate;
  int64_t max_position; /* max_position_embeddings (informative; T may not exceed it) */
  double rms_eps, rope_theta;
  bool tie_word_embeddings; /* informative: the encoder has no head */
} tyr_qwen3_config;

/* Qwen3-4B as FLUX.2 [klein] 4B uses it: 36 layers, hidden 2560, 32 query / 8
 * KV heads of 128, MLP 9728, eps 1e-6, theta 1e6, vocab 151936, 40960
 * positions. */
tyr_qwen3_config tyr_qwen3_config_4b(void);
/* The test config: 4 layers, hidden 64, 4 query / 2 KV heads of 16, MLP 128,
 * eps 1e-6, theta 1e6, vocab 512, 1024 positions. */
tyr_qwen3_config tyr_qwen3_config_tiny(void);
/* Checks a config; raises naming the field.  0 or the status. */
int tyr_qwen3_config_check_at(tyr_site s, const tyr_qwen3_config *c);
#define tyr_qwen3_config_check(c) tyr_qwen3_config_check_at(TYR_SITE, (c))
/* Reads a transformers config.json (model_type "qwen3"; vocab_size,
 * hidden_size, num_hidden_layers, num_attention_heads, num_key_value_heads,
 * head_dim, intermediate_size, rms_norm_eps, rope_theta (or
 * rope_parameters.rope_theta), max_position_embeddings, hidden_act "silu",
 * attention_bias false).  Options the model cannot compute are refused by
 * name.  0 or the status, having raised naming the file. */
int tyr_qwen3_config_from_hf_at(tyr_site s, const char *config_json_path, tyr_qwen3_config *out);
#define tyr_qwen3_config_from_hf(path, out) tyr_qwen3_config_from_hf_at(TYR_SITE, (path), (out))

/* ---- the model --------------------------------------------------------------- */
typedef struct tyr_qwen3 tyr_qwen3;

/* Loads a transformers checkpoint directory: config.json and
 * model.safetensors or the shards model.safetensors.index.json names
 * (model-0000k-of-0000n.safetensors), memory-mapped; tensors keep their
 * stored dtype (bf16, f16 or f32).  Names with or without the "model."
 * prefix are read (Qwen3Model and Qwen3ForCausalLM); lm_head.weight and the
 * layers past max_layers are skipped.  max_layers 0 loads all layers;
 * otherwise only the first max_layers (the final norm is then not loaded
 * unless max_layers >= n_layer).  Every expected tensor's presence, shape and
 * dtype is checked before anything is used; the error lists the missing and
 * the unexpected names.  Returns NULL having raised. */
tyr_qwen3 *tyr_qwen3_load_at(tyr_site s, const char *dir, int64_t max_layers, tyr_device dev);
#define tyr_qwen3_load(dir, max_layers, dev) tyr_qwen3_load_at(TYR_SITE, (dir), (max_layers), (dev))

/* A model of config c with random weights (uniform with mean 0 and std
 * 0.02; norm weights mean 1, std 0.1), a hash of seed and each weight's
 * index made on the host (the same weights on every device and thread
 * count; the global RNG is not used), stored in storage (TYR_F32, TYR_BF16
 * or TYR_F16) on dev.  Returns NULL having raised. */
tyr_qwen3 *tyr_qwen3_init_random_at(tyr_site s, const tyr_qwen3_config *c, int64_t max_layers,
                                    uint64_t seed, tyr_dtype storage, tyr_device dev);
#define tyr_qwen3_init_random(c, max_layers, seed, storage, dev)                                   \
  tyr_qwen3_init_random_at(TYR_SITE, (c), (max_layers), (seed), (storage), (dev))

/* Writes the model's weights as a transformers checkpoint (config.json and
 * model.safetensors, Qwen3Model names without prefix; files written under
 * temporary names, then renamed).  A model holding only its first layers
 * writes those (and no final norm) with the config of the whole model:
 * tyr_qwen3_load with max_layers up to the layers held reads it back.
 * 0 or the status. */
int tyr_qwen3_save_hf_at(tyr_site s, const tyr_qwen3 *m, const char *dir);
#define tyr_qwen3_save_hf(m, dir) tyr_qwen3_save_hf_at(TYR_SITE, (m), (dir))

/* NULL is ignored. */
void tyr_qwen3_free(tyr_qwen3 *m);

const tyr_qwen3_config *tyr_qwen3_config_of(const tyr_qwen3 *m);
/* Number of decoder layers held (<= config n_layer). */
int64_t tyr_qwen3_n_loaded(const tyr_qwen3 *m);
tyr_device tyr_qwen3_device(const tyr_qwen3 *m);
/* The weights' storage dtype. */
tyr_dtype tyr_qwen3_storage(const tyr_qwen3 *m);

/* Hidden states after the given layers, in transformers' numbering
 * (hidden_states[0] is the embeddings, hidden_states[i] the output of layer
 * i - 1 counted from 0, and hidden_states[n_layer] the output of the final
 * norm), concatenated on the last dim in the order given:
 *   ids [B, T] (i32 or i64), mask [B, T] (any int or bool dtype, 1 = token,
 *   0 = padding; NULL: all tokens) -> [B, T, n * hidden]
 * Only the layers up to the largest index are run.  Padded keys are never
 * attended to (a padded query still sees the tokens before it, as in
 * transformers).  The result is f32 on the CPU and the storage dtype on
 * CUDA, on the model's device, owned like any new tensor (the innermost
 * open scope).  Runs without recording gradients.  NULL having raised (an
 * index past the loaded layers, an id outside the vocabulary, shapes). */
tyr_tensor *tyr_qwen3_hidden_states_at(tyr_site s, tyr_qwen3 *m, tyr_tensor *ids, tyr_tensor *mask,
                                       const int *layers, int n);
#define tyr_qwen3_hidden_states(m, ids, mask, layers, n)                                           \
  tyr_qwen3_hidden_states_at(TYR_SITE, (m), (ids), (mask), (layers), (n))

/* ---- FLUX.2 [klein]'s text stage -------------------------------------------- */
/* The default sequence length the prompt is padded to. */
#define TYR_FLUX2_TEXT_LEN 512
/* The layers the 4B uses (9, 18, 27) and so the layers to load. */
#define TYR_FLUX2_TEXT_MAX_LAYER 27

/* The hidden-state indices FLUX.2 stacks for a text encoder of n_layer
 * layers: ceil(k * n_layer / 4) for k = 1, 2, 3 (9, 18, 27 for the 36-layer
 * 4B; 1, 2, 3 for the 4-layer test config). */
void tyr_flux2_text_layers(int64_t n_layer, int layers[3]);

/* The prompt in Qwen3's chat template with one user turn, the generation
 * prompt and thinking disabled:
 *   "<|im_start|>user\n" prompt "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
 * A malloc'd string (free it), or NULL when out of memory. */
char *tyr_qwen3_chat_prompt(const char *prompt);

/* prompt -> chat template -> ids (special tokens recognised) padded on the
 * right with <|endoftext|> to max_len (<= 0: TYR_FLUX2_TEXT_LEN), truncated
 * to max_len with a warning on stderr when longer -> the hidden states of
 * tyr_flux2_text_layers stacked on the last dim:
 *   *features [1, max_len, 3 * hidden] (7680 wide for the 4B; f32 on the
 *   CPU, the storage dtype on CUDA), *mask [1, max_len] i64 (1 = token,
 *   0 = padding), both on the model's device and owned like new tensors.
 * *n_tokens (may be NULL) gets the unpadded length.  An empty prompt is an
 * error.  0 or the status having raised (*features, *mask NULL). */
int tyr_flux2_text_encode_at(tyr_site s, tyr_qwen3 *m, const tyr_tokenizer *tok, const char *prompt,
                             int64_t max_len, tyr_tensor **features, tyr_tensor **mask,
                             int64_t *n_tokens);
#define tyr_flux2_text_encode(m, tok, prompt, max_len, features, mask)                             \
  tyr_flux2_text_encode_at(TYR_SITE, (m), (tok), (prompt), (max_len), (features), (mask), NULL)

#ifdef __cplusplus
}
#endif
#endif
