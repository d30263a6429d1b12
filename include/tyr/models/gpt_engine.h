/* tyr/models/gpt_engine.h - batched inference for tyr_gpt with a KV cache.
 *
 * The engine keeps, per layer, the keys and values of every position seen so
 * far for `batch` rows ([batch, n_kv_head, max_len, head_dim] on the model's
 * device, in its compute dtype), so that each new token costs one token's
 * forward instead of the whole prefix's.  Prefill runs a prompt (one row
 * shared by all rows, or one per row) in one forward; decode then runs one
 * token per row per step.  Everything goes through the ordinary ops, so it
 * runs wherever the model runs (CPU or CUDA).
 *
 *   tyr_gpt_engine e;
 *   tyr_gpt_engine_init(&e, &g, 64, 256);           64 rows, 256 positions
 *   tyr_gpt_engine_sample sc = tyr_gpt_engine_sample_defaults();
 *   sc.temperature = 0.8, sc.top_k = 20, sc.stop = &eos, sc.n_stop = 1;
 *   tyr_gpt_engine_generate(&e, prompt, n_prompt, 32, &sc, out, out_len, logp, NULL);
 *   tyr_gpt_engine_free(&e); */
#ifndef TYR_MODELS_GPT_ENGINE_H
#define TYR_MODELS_GPT_ENGINE_H
#include <stdint.h>

#include "tyr/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tyr_gpt_engine {
  tyr_gpt *g;
  int64_t batch, max_len; /* rows; positions the cache holds (<= block_size) */
  int64_t len;            /* positions cached so far (the same in every row) */
  tyr_tensor **k, **v;    /* per layer [batch, n_kv_head, max_len, head_dim] */
} tyr_gpt_engine;

/* An engine for g (which must outlive it) with room for batch rows of
 * max_len positions (max_len <= block_size).  0 or the status. */
int tyr_gpt_engine_init_at(tyr_site s, tyr_gpt_engine *e, tyr_gpt *g, int64_t batch,
                           int64_t max_len);
void tyr_gpt_engine_free(tyr_gpt_engine *e);
/* Forgets the cached positions (len = 0); the memory is kept. */
void tyr_gpt_engine_reset(tyr_gpt_engine *e);

/* Runs idx [b, T] (i32/i64 on any device) at positions len .. len+T-1,
 * caching their keys and values, and returns the final hidden states
 * [batch, T, n_embd] (after the last norm; in the innermost scope).  b is
 * batch, or 1 when len is 0 (a prompt shared by every row: run once, its
 * cache copied to every row).  Raises naming the engine when len + T would
 * pass max_len.  No graph is recorded. */
tyr_tensor *tyr_gpt_engine_forward_at(tyr_site s, tyr_gpt_engine *e, tyr_tensor *idx);
/* The head on hidden states h [.., n_embd] -> logits [.., vocab] (with the
 * logit softcap), as tyr_gpt_forward computes them. */
tyr_tensor *tyr_gpt_head_at(tyr_site s, tyr_gpt *g, tyr_tensor *h);

typedef struct tyr_gpt_engine_sample {
  double temperature;  /* > 0 scales the logits; 0: greedy */
  int64_t top_k;       /* keep the k most likely tokens; 0: all */
  double top_p;        /* keep the fewest most likely tokens whose mass reaches p; 1: all */
  uint64_t seed;       /* row r draws from the stream (seed, r) */
  const int64_t *stop; /* a row ends after drawing one of these (may be NULL) */
  int n_stop;
} tyr_gpt_engine_sample;
/* temperature 1, top_k 0, top_p 1, seed 0, no stop tokens */
tyr_gpt_engine_sample tyr_gpt_engine_sample_defaults(void);

/* Resets e, prefills the prompt (shared by all rows) and decodes up to
 * max_new tokens per row.  out [batch * max_new] receives row r's tokens at
 * out[r * max_new ..], out_len[r] their number (a stop token included when
 * drawn); logp (may be NULL) [batch] the sum of the drawn tokens'
 * log-probabilities under the model (temperature 1, no masks).
 * last_hidden (may be NULL) receives the prompt's last hidden state [1,
 * n_embd], kept: the caller frees it with tyr_tensor_free.  Rows that
 * stopped are no longer drawn for; decoding ends when every row has
 * stopped.  The global RNG is left as it was.  0 or the status. */
int tyr_gpt_engine_generate_at(tyr_site s, tyr_gpt_engine *e, const int64_t *prompt,
                               int64_t n_prompt, int64_t max_new, const tyr_gpt_engine_sample *sc,
                               int64_t *out, int64_t *out_len, double *logp,
                               tyr_tensor **last_hidden);

#define tyr_gpt_engine_init(e, g, batch, max_len)                                                  \
  tyr_gpt_engine_init_at(TYR_SITE, (e), (g), (batch), (max_len))
#define tyr_gpt_engine_forward(e, idx) tyr_gpt_engine_forward_at(TYR_SITE, (e), (idx))
#define tyr_gpt_head(g, h) tyr_gpt_head_at(TYR_SITE, (g), (h))
#define tyr_gpt_engine_generate(e, prompt, n_prompt, max_new, sc, out, out_len, logp, hidden)      \
  tyr_gpt_engine_generate_at(TYR_SITE, (e), (prompt), (n_prompt), (max_new), (sc), (out),          \
                             (out_len), (logp), (hidden))

#ifdef __cplusplus
}
#endif
#endif
