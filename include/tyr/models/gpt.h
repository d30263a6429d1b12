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

/* ---- Tyr checkpoints that rebuild the model -------------------------------- */
/* The metadata key under which a checkpoint keeps the GPT's config (JSON). */
#define TYR_GPT_CONFIG_KEY "tyr.gpt.config"

/* The config as one line of JSON (every field, by name: "vocab_size",
 * "block_size", "n_layer", "n_head", "n_kv_head", "n_embd", "mlp_hidden",
 * "dropout", "bias", "tied_head", "learned_pos", "rope", "qk_norm",
 * "rope_base", "norm" ("layer"|"rms"), "act" (tyr_act_kind_parse's
 * names), "logit_softcap", "init_std", "norm_eps", "compute_dtype").
 * Returns the length written (at most n - 1 characters and a NUL), or a
 * negative value having raised when n is too small. */
int tyr_gpt_config_to_json_at(tyr_site s, const tyr_gpt_config *c, char *buf, size_t n);
#define tyr_gpt_config_to_json(c, buf, n) tyr_gpt_config_to_json_at(TYR_SITE, (c), (buf), (n))
/* Parses that JSON (fields absent take tyr_gpt_config_gpt2's values; an
 * unknown field or a value of the wrong type is an error naming it, and
 * the result is checked with tyr_gpt_config_check).  what names the text's
 * origin in messages (e.g. the file). */
int tyr_gpt_config_from_json_at(tyr_site s, const char *json, const char *what,
                                tyr_gpt_config *out);
#define tyr_gpt_config_from_json(json, what, out)                                                  \
  tyr_gpt_config_from_json_at(TYR_SITE, (json), (what), (out))

/* Writes g's parameters and config (TYR_GPT_CONFIG_KEY) to a safetensors
 * checkpoint (atomically, as tyr_checkpoint_save).  Returns 0 or a
 * non-zero status having raised. */
int tyr_gpt_save_at(tyr_site s, tyr_gpt *g, const char *path);
#define tyr_gpt_save(g, path) tyr_gpt_save_at(TYR_SITE, (g), (path))

/* Builds g on dev from a checkpoint that carries its config (tyr_gpt_save,
 * or train_gpt's checkpoints) and loads its weights; the optimizer state,
 * step and RNG state a training checkpoint also holds are ignored, and the
 * global RNG is left as it was.  Returns 0, or a non-zero status having
 * raised (g zeroed). */
int tyr_gpt_load_at(tyr_site s, tyr_gpt *g, const char *path, tyr_device dev);
#define tyr_gpt_load(g, path, dev) tyr_gpt_load_at(TYR_SITE, (g), (path), (dev))

/* ---- generation ----------------------------------------------------------- */
typedef struct tyr_gpt_sample_config {
  double temperature; /* > 0 scales the logits; 0: greedy (argmax) */
  int64_t top_k;      /* keep the k most likely tokens (ties kept); 0: all */
  double top_p;       /* keep the fewest most likely tokens whose mass reaches p; 1: all */
  uint64_t seed;      /* one seed, one text (per device) */
} tyr_gpt_sample_config;
/* temperature 1, top_k 0, top_p 1, seed 0 */
tyr_gpt_sample_config tyr_gpt_sample_defaults(void);

/* Continues prompt[0..n_prompt) by n_new tokens: out (room for n_prompt +
 * n_new ids) receives the prompt and then the tokens drawn.  The model
 * sees the last block_size tokens; the masks and the draw run on g's
 * device (only the chosen id comes back each step); no graph is recorded;
 * the draws use their own RNG stream from sc->seed and the global RNG is
 * left as it was.  sc NULL: tyr_gpt_sample_defaults().  Returns 0, or a
 * non-zero status having raised (a prompt id outside the vocabulary, a bad
 * sampling parameter, named). */
int tyr_gpt_generate_at(tyr_site s, tyr_gpt *g, const int64_t *prompt, int64_t n_prompt,
                        int64_t n_new, const tyr_gpt_sample_config *sc, int64_t *out);
#define tyr_gpt_generate(g, prompt, n_prompt, n_new, sc, out)                                      \
  tyr_gpt_generate_at(TYR_SITE, (g), (prompt), (n_prompt), (n_new), (sc), (out))

#ifdef __cplusplus
}
#endif
#endif
