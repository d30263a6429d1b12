/* The README's first example, corrected: a linear layer's weight is
 * [out, in], so y = x wT maps [Batch, In] to [Batch, Out].  (Declaring the
 * weight tyr_T(In, Out) instead fails to compile with "tyr_linear: the
 * weight must be [out, in] ..."; see tests/compile/fail/readme_linear.c.) */
#include <stdio.h>
#include <tyr/tyr.h>

enum { Batch = 32, In = 768, Out = 512 };

int main(void) {
  TYR_SCOPE;
  tyr_T(Batch, In) x = tyr_randn(Batch, In);
  tyr_T(Out, In) w = tyr_randn(Out, In);
  tyr_T(Batch, Out) y = tyr_linear(x, w);
  char shape[64];
  printf("y = linear(x, w): %s\n",
         tyr_shape_str(tyr_erase(y)->shape, tyr_rank(y), shape, sizeof shape));
  return 0;
}
