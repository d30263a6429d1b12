/* A batch shape that differs from the declared handle type. */
#include <tyr/data.h>
// expect: tyr_loader_next: B and T differ from the dims in the type of x or y
enum { B = 4, T = 16 };
int f(tyr_loader *l) {
  tyr_T(B, 32) x, y;
  return tyr_loader_next(l, B, T, &x, &y);
}
