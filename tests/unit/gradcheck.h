/* Finite-difference gradient checks in f64.
 *
 * tyr_gradcheck(fn, ctx, n, inputs, eps, tol) evaluates loss = sum(fn(inputs)
 * * w) for a fixed random weight w of the output's shape (so every output
 * element matters), computes d loss / d input with backward, and compares
 * it with central differences for every element of every input that
 * requires grad.  Returns the largest relative error seen and fails the
 * test (with the op, input and element) past tol. */
#ifndef TYR_GRADCHECK_H
#define TYR_GRADCHECK_H
#include "testutil.h"
#include "tyr/tyr.h"

typedef tyr_tensor *(*tyr_test_fn)(tyr_tensor **inputs, void *ctx);
double tyr_gradcheck(const char *name, tyr_test_fn fn, void *ctx, int n, tyr_tensor **inputs,
                     double eps, double tol);
/* A random f64 leaf tensor that requires grad (owned by the caller). */
tyr_tensor *tyr_test_leaf(int rank, const int64_t *shape, double lo, double hi);
#define TYR_TEST_LEAF(lo, hi, ...)                                                                 \
  tyr_test_leaf(TYR__NARGS(__VA_ARGS__), (const int64_t[]){__VA_ARGS__}, (lo), (hi))
#endif
