/* Sampling from a GPT on its own device: temperature, top-k and top-p
 * (nucleus) masks found by bisection with device reductions, and a
 * Gumbel-max draw, so that one token id per step is all that comes back to
 * the host.  (Sorting the vocabulary would need a sort op; the bisection
 * needs only elementwise ops and sums, and finds the same sets: the k
 * largest logits with ties at the k-th kept, as torch.topk then `<` masking
 * does, and the smallest set of most likely tokens whose mass reaches p.) */
#include <math.h>
#include <string.h>

#include "tyr/models/gpt.h"
#include "tyr/tyr.h"

static const char *const OP = "tyr_gpt_generate";

/* bisection steps: the thresholds converge to adjacent floats well before */
#define BISECT_STEPS 64

tyr_gpt_sample_config tyr_gpt_sample_defaults(void) {
  return (tyr_gpt_sample_config){.temperature = 1.0, .top_k = 0, .top_p = 1.0, .seed = 0};
}

/* a 0-d tensor broadcast to x's shape [V] */
static tyr_tensor *bcast(tyr_site s, tyr_tensor *scalar, const tyr_tensor *x) {
  return tyr_expand_at(s, tyr_reshape_at(s, scalar, 1, (int64_t[]){1}), 1, x->shape);
}

static tyr_tensor *scalar(tyr_site s, const tyr_tensor *like, double v) {
  return tyr_full_at(s, like->dtype, like->device, 0, NULL, v);
}

/* Largest t (up to float resolution) with weight(x >= t) >= need, where
 * weight is the count (w NULL) or the sum of w over those elements; lo
 * satisfies it and hi does not.  The result belongs to the caller (in no
 * scope); NULL having raised. */
static tyr_tensor *threshold(tyr_site s, tyr_tensor *x, tyr_tensor *w, double need, tyr_tensor *lo,
                             tyr_tensor *hi) {
  tyr_tensor *want = scalar(s, x, need);
  bool owned = false; /* lo and hi are ours (kept) rather than the caller's scope's */
  for (int i = 0; i < BISECT_STEPS && lo && hi; i++) {
    tyr_tensor *nlo, *nhi;
    {
      TYR_SCOPE;
      tyr_tensor *mid = tyr_mul_scalar_at(s, tyr_add_at(s, lo, hi), 0.5);
      tyr_tensor *in = tyr_ge_at(s, x, bcast(s, mid, x));
      tyr_tensor *mass =
          w ? tyr_sum_at(s,
                         tyr_where_at(s, in, w, tyr_zeros_at(s, w->dtype, w->device, 1, w->shape)))
            : tyr_sum_at(s, tyr_to_dtype_at(s, in, x->dtype));
      tyr_tensor *ok = tyr_ge_at(s, mass, want);
      nlo = tyr_where_at(s, ok, mid, lo);
      nhi = tyr_where_at(s, ok, hi, mid);
      if (nlo) tyr_keep_e(nlo);
      if (nhi) tyr_keep_e(nhi);
    }
    if (owned) {
      tyr_tensor_free(lo);
      tyr_tensor_free(hi);
    }
    lo = nlo;
    hi = nhi;
    owned = true;
  }
  if (!owned) return NULL;
  tyr_tensor_free(hi);
  return lo;
}

int tyr_gpt_generate_at(tyr_site s, tyr_gpt *g, const int64_t *prompt, int64_t n_prompt,
                        int64_t n_new, const tyr_gpt_sample_config *sc, int64_t *out) {
  if (!g || !out || (n_prompt > 0 && !prompt))
    return tyr_raise(TYR_ERR_ARG, s, OP, "%s is NULL", !g ? "g" : !out ? "out" : "prompt");
  tyr_gpt_sample_config c = sc ? *sc : tyr_gpt_sample_defaults();
  int64_t V = g->cfg.vocab_size;
  if (n_prompt < 1)
    return tyr_raise(TYR_ERR_ARG, s, OP, "the prompt needs at least one token, got %lld",
                     (long long)n_prompt);
  if (n_new < 0)
    return tyr_raise(TYR_ERR_ARG, s, OP, "n_new must not be negative, got %lld", (long long)n_new);
  if (!(c.temperature >= 0) || !isfinite(c.temperature))
    return tyr_raise(TYR_ERR_ARG, s, OP, "temperature must be >= 0 (0: greedy), got %g",
                     c.temperature);
  if (c.top_k < 0)
    return tyr_raise(TYR_ERR_ARG, s, OP, "top_k must be >= 0 (0: all), got %lld",
                     (long long)c.top_k);
  if (!(c.top_p > 0 && c.top_p <= 1))
    return tyr_raise(TYR_ERR_ARG, s, OP, "top_p must be in (0, 1], got %g", c.top_p);
  for (int64_t i = 0; i < n_prompt; i++)
    if (prompt[i] < 0 || prompt[i] >= V)
      return tyr_raise(TYR_ERR_ARG, s, OP,
                       "prompt[%lld] = %lld is outside the vocabulary [0, %lld)", (long long)i,
                       (long long)prompt[i], (long long)V);
  memmove(out, prompt, sizeof *out * (size_t)n_prompt);
  /* the draws come from the sampler's own stream: the caller's RNG is left
     as it was, and one seed gives one text */
  tyr_rng_state caller = tyr_rng_get_state();
  tyr_rng_set_state((tyr_rng_state){c.seed, 0});
  bool grad = tyr_set_grad_enabled(false);
  int st = 0;
  int64_t n = n_prompt;
  for (int64_t k = 0; k < n_new && !st; k++) {
    TYR_SCOPE;
    int64_t T = n < g->cfg.block_size ? n : g->cfg.block_size;
    tyr_tensor *x = tyr_from_host_at(s, out + n - T, TYR_I64, g->device, 2, (int64_t[]){1, T});
    tyr_tensor *logits = x ? tyr_gpt_forward_at(s, g, x, NULL, NULL, false) : NULL;
    if (!logits) {
      st = TYR_ERR_ARG;
      break;
    }
    tyr_tensor *l = tyr_reshape_at(s, tyr_narrow_at(s, logits, 1, T - 1, 1), 1, (int64_t[]){V});
    l = tyr_to_dtype_at(s, l, TYR_F32);
    tyr_tensor *pick;
    if (c.temperature == 0 || c.top_k == 1) {
      pick = tyr_argmax_all_at(s, l);
    } else {
      l = tyr_div_scalar_at(s, l, c.temperature);
      tyr_tensor *ninf = tyr_full_at(s, TYR_F32, l->device, 1, l->shape, -INFINITY);
      if (c.top_k > 0 && c.top_k < V) {
        tyr_tensor *lo = tyr_min_at(s, l), *hi = tyr_add_scalar_at(s, tyr_max_at(s, l), 1.0);
        tyr_tensor *kth = threshold(s, l, NULL, (double)c.top_k, lo, hi);
        l = kth ? tyr_where_at(s, tyr_ge_at(s, l, bcast(s, kth, l)), l, ninf) : NULL;
        tyr_tensor_free(kth);
      }
      if (c.top_p < 1) {
        tyr_tensor *p = tyr_softmax_at(s, l, 0);
        tyr_tensor *lo = scalar(s, p, 0.0), *hi = scalar(s, p, 1.5);
        tyr_tensor *pt = threshold(s, p, p, c.top_p, lo, hi);
        l = pt ? tyr_where_at(s, tyr_ge_at(s, p, bcast(s, pt, p)), l, ninf) : NULL;
        tyr_tensor_free(pt);
      }
      /* Gumbel-max: argmax(l + G), G = -log(-log(U)), draws from softmax(l) */
      tyr_tensor *u = tyr_rand_at(s, TYR_F32, l->device, 1, l->shape, 0.0, 1.0);
      u = tyr_clamp_at(s, u, 1e-30, 1.0);
      tyr_tensor *gum = tyr_neg_at(s, tyr_log_at(s, tyr_neg_at(s, tyr_log_at(s, u))));
      pick = tyr_argmax_all_at(s, tyr_add_at(s, l, gum));
    }
    int64_t id = -1;
    tyr_tensor *pi =
        pick ? tyr_to_dtype_at(s, tyr_to_device_at(s, pick, TYR_DEVICE_CPU), TYR_I64) : NULL;
    if (!pi || tyr_to_host_at(s, pi, &id, sizeof id) || id < 0 || id >= V) {
      st = pi ? tyr_raise(TYR_ERR_ARG, s, OP, "sampling gave token %lld", (long long)id)
              : TYR_ERR_ARG;
      break;
    }
    out[n++] = id;
  }
  tyr_set_grad_enabled(grad);
  tyr_rng_set_state(caller);
  return st;
}
