/* tyr/models/nanoproof.h - NanoProof: one transformer that proposes the next
 * proof step (policy: the GPT's language-model head) and estimates how
 * likely a proof state is to be solved (value: a head on the hidden state
 * at the value token, 64 bins over [0, 1]).
 *
 * The GPT is nanochat's (tyr_nanoproof_config_preset): rotary positions,
 * parameter-free RMSNorm (also on the embedding), QK-norm, ReLU² MLP,
 * grouped KV heads, no biases, zero-initialised projections into the
 * residual stream, untied embedding and head, logit softcap 15, and
 * per-layer residual and x0 lambdas (indexed per layer).  The value head is
 * Linear(E -> 4E, no bias) -> ReLU² -> Linear(4E -> 64, no bias, zero
 * init), its parameters "value.fc.weight" and "value.proj.weight" in the
 * GPT's collection (so optimizers and checkpoints see them).
 *
 * A training or prompting sequence is
 *     <|bos|><|user_start|>STATE<|user_end|><|assistant_start|>STEP<|assistant_end|>
 * the value is read at <|assistant_start|> (TYR_NANOPROOF_VALUE_TOKEN) and
 * a step ends with <|assistant_end|> (TYR_NANOPROOF_STOP_TOKEN).  The loss
 * is the policy's cross-entropy over the step tokens plus value_weight
 * times the value's cross-entropy against the target bin. */
#ifndef TYR_MODELS_NANOPROOF_H
#define TYR_MODELS_NANOPROOF_H
#include <stdint.h>

#include "tyr/nn.h"
#include "tyr/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TYR_NANOPROOF_BINS 64
#define TYR_NANOPROOF_VALUE_TOKEN "<|assistant_start|>"
#define TYR_NANOPROOF_STOP_TOKEN "<|assistant_end|>"
/* The metadata key of a NanoProof checkpoint's own settings (JSON). */
#define TYR_NANOPROOF_CONFIG_KEY "tyr.nanoproof.config"

/* The special tokens added to the BPE: <|pad|>, <|bos|>, <|eos|>, the chat
 * markers, the 64 value bins <|bin_00|> .. <|bin_63|>, Greek letters, math
 * operators, Lean keywords and tool markers.  *n receives their number. */
const char *const *tyr_nanoproof_special_tokens(int *n);

typedef struct tyr_nanoproof_config {
  tyr_gpt_config gpt;
  double value_weight; /* w in policy CE + w * value CE */
} tyr_nanoproof_config;

/* "tiny" (2 layers, 64 wide, 4 heads / 2 KV heads, block 128), "small" (4,
 * 128, 4 / 2, 256), "default" (12, 768, 6 / 6, 2048, vocab 50304), "full"
 * (26, 1664, 13 / 13, 2048, vocab 50304); vocab > 0 replaces the preset's
 * vocabulary (rounded up to a multiple of 64).  false for another name. */
bool tyr_nanoproof_config_preset(const char *name, int64_t vocab, tyr_nanoproof_config *out);

typedef struct tyr_nanoproof {
  tyr_nanoproof_config cfg;
  tyr_gpt gpt; /* owns every parameter, the value head's too */
  tyr_nn_linear value_fc, value_proj;
} tyr_nanoproof;

int tyr_nanoproof_init_at(tyr_site s, tyr_nanoproof *m, const tyr_nanoproof_config *cfg,
                          tyr_device dev);
void tyr_nanoproof_free(tyr_nanoproof *m);

/* h [.., E] -> value logits [.., 64] */
tyr_tensor *tyr_nanoproof_value_logits_at(tyr_site s, tyr_nanoproof *m, tyr_tensor *h);

/* The combined loss of a batch: idx, targets [B, T] (targets -1 where no
 * policy loss is taken); value_pos [B] (i64: the position of the value
 * token in each row) and value_bin [B] (i64: the target bin; -1: no value
 * loss for that row).  Returns policy CE + value_weight * value CE (a
 * scalar); *policy and *value (may be NULL) receive the two parts. */
tyr_tensor *tyr_nanoproof_loss_at(tyr_site s, tyr_nanoproof *m, tyr_tensor *idx,
                                  tyr_tensor *targets, tyr_tensor *value_pos, tyr_tensor *value_bin,
                                  bool training, tyr_tensor **policy, tyr_tensor **value);

/* The bin of a value in [0, 1] (clamped): floor(v * 64), 63 for v = 1. */
int tyr_nanoproof_value_bin(double v);
/* The expectation of the value under softmax(logits[64]) with bin b
 * standing for (b + 0.5) / 64; probs (may be NULL) receives the softmax. */
double tyr_nanoproof_value_expect(const float *logits, double *probs);

/* Checkpoints: the GPT's config (TYR_GPT_CONFIG_KEY) and value_weight
 * (TYR_NANOPROOF_CONFIG_KEY) with every parameter; load refuses a file
 * without them, or (want != NULL) one whose model differs from *want,
 * naming the field. */
int tyr_nanoproof_save_at(tyr_site s, tyr_nanoproof *m, const char *path);
int tyr_nanoproof_load_at(tyr_site s, tyr_nanoproof *m, const char *path, tyr_device dev,
                          const tyr_nanoproof_config *want);

#define tyr_nanoproof_init(m, cfg, dev) tyr_nanoproof_init_at(TYR_SITE, (m), (cfg), (dev))
#define tyr_nanoproof_value_logits(m, h) tyr_nanoproof_value_logits_at(TYR_SITE, (m), (h))
#define tyr_nanoproof_loss(...) tyr_nanoproof_loss_at(TYR_SITE, __VA_ARGS__)
#define tyr_nanoproof_save(m, path) tyr_nanoproof_save_at(TYR_SITE, (m), (path))
#define tyr_nanoproof_load(m, path, dev, want)                                                     \
  tyr_nanoproof_load_at(TYR_SITE, (m), (path), (dev), (want))

#ifdef __cplusplus
}
#endif
#endif
