/* Ways of writing dims that must keep compiling: const variables, dims
 * read from other handles, conditional dims, handles in structs, arrays
 * and loops, functions returning handles, run-time dims that change from
 * one iteration to the next, and configuration by the preprocessor. */
#include <tyr/tyr.h>
enum { C = 8, V = 16, USE_BIAS = 0 };

typedef struct {
  tyr_T(C, C) w[2];
  tyr_T(C) b;
} layer;

static tyr_T(C, C) square(void) { return tyr_eye(C); }

tyr_tensor *f(layer *l, int steps) {
  TYR_SCOPE;
  const int n = 4;
  tyr_T(n, C) x = tyr_randn(n, C);
  tyr_T(tyr_dim(x, 0), tyr_dim(x, 1)) x2 = tyr_relu(x);
  tyr_T(USE_BIAS ? C : 2 * C) wide = tyr_zeros(USE_BIAS ? C : 2 * C);
  for (int i = 0; i < 2; i++) x2 = tyr_linear(x2, l->w[i]);
#if USE_BIAS
  x2 = tyr_add_row(x2, wide);
#else
  x2 = tyr_add_row(x2, l->b);
#endif
  x2 = tyr_matmul(x2, square());
  for (int t = 1; t <= steps; t++) {
    tyr_T(t, C) h = tyr_randn(t, C);
    tyr_T(t, t) a = tyr_softmax(tyr_matmul(h, tyr_transpose(h, 0, 1)), -1);
    tyr_T(t, C) o = tyr_matmul(a, h);
    tyr_T(C) last = tyr_squeeze(tyr_narrow(o, 0, t - 1, 1), 0);
    x2 = tyr_add_row(x2, last);
  }
  tyr_T(n, V) logits = tyr_linear(x2, tyr_randn(V, C));
  tyr_T(n) pred = tyr_argmax(logits, 1);
  return tyr_erase(wide) && tyr_erase(pred) ? tyr_keep(tyr_erase(x2)) : NULL;
}
