/* The README's first example: a weight declared [In, Out] where linear
 * needs [out, in].  It must not compile, and the first error must say so. */
#include <tyr/tyr.h>
// expect: tyr_linear: the weight must be [out, in] with in equal to the last dim of x
enum { Batch = 32, In = 768, Out = 512 };
int main(void) {
  tyr_T(Batch, In) x = tyr_randn(Batch, In);
  tyr_T(In, Out) w = tyr_randn(In, Out);
  tyr_T(Batch, Out) y = tyr_linear(x, w);
  return tyr_item(tyr_sum(y)) != 0;
}
