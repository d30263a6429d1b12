/* Rotary tables for an odd head dim. */
#include <tyr/tyr.h>
// expect: tyr_rotary_tables: the head dim D must be even and positive
enum { T = 16, D = 33 };
int f(void) {
  tyr_T(T, D / 2) c;
  tyr_T(T, D / 2) s;
  return tyr_rotary_tables(T, D, 10000.0, &c, &s);
}
