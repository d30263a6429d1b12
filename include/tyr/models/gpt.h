/* tyr/models/gpt.h - the GPT (tyr/nn.h) as a model one loads, saves and
 * samples from: transformers GPT-2 checkpoints, Tyr checkpoints that carry
 * their config, and generation.
 *
 *   tyr_gpt g;
 *   if (tyr_gpt_from_hf(&g, "path/to/gpt2", TYR_DEVICE_CPU)) return 1;
 *   int64_t out[64];
 *   tyr_gpt_sample_config sc = tyr_gpt_sample_defaults();
 *   sc.temperature = 0.8, sc.top_k = 40, sc.seed = 7;
 *   tyr_gpt_generate(&g, prompt_ids, n_prompt, 64, &sc, out);
 *   tyr_gpt_free(&g); */
#ifndef TYR_MODELS_GPT_H
#define TYR_MODELS_GPT_H
#include <stdint.h>

#include "tyr/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- transformers checkpoints ---------------------------------------------- */
/* Builds g on dev from a transformers GPT-2-family checkpoint directory:
 * config.json (model_type "gpt2": vocab_size, n_positions, n_embd, n_layer,
 * n_head, n_inner, layer_norm_epsilon, activation_function,
 * tie_word_embeddings) and model.safetensors or the shards that
 * model.safetensors.index.json names.  The Conv1D weights ([in, out]) are
 * transposed, the head is tied to wte (or read from lm_head.weight when the
 * config unties it), the attention buffers (attn.bias, attn.masked_bias)
 * are skipped, names with or without the "transformer." prefix are read, and
 * half-precision files are converted to g's dtype (the default dtype).
 * Options the GPT cannot honour (cross-attention, scale_attn_weights false,
 * attention scaled by the layer index) are refused by name.  Returns 0, or
 * a non-zero status having raised (g zeroed). */
int tyr_gpt_from_hf_at(tyr_site s, tyr_gpt *g, const char *dir, tyr_device dev);
#define tyr_gpt_from_hf(g, dir, dev) tyr_gpt_from_hf_at(TYR_SITE, (g), (dir), (dev))

/* The GPT config a transformers config.json describes (the same checks as
 * tyr_gpt_from_hf, nothing loaded). */
int tyr_gpt_config_from_hf_at(tyr_site s, const char *config_json, tyr_gpt_config *out);
#define tyr_gpt_config_from_hf(path, out) tyr_gpt_config_from_hf_at(TYR_SITE, (path), (out))

#ifdef __cplusplus
}
#endif
#endif
