/* The kernel profiler's hooks inside the run time (tyr/profile.h). */
#ifndef TYR_CORE_PROFILE_H
#define TYR_CORE_PROFILE_H
#include "core/backend.h"

typedef enum tyr__profile_phase {
  TYR_PROF_FORWARD, /* everything outside the two below */
  TYR_PROF_BACKWARD,
  TYR_PROF_OPTIMIZER,
  TYR_PROF_NPHASE
} tyr__profile_phase;

extern bool tyr__profile_on;
/* The timing copy of backend be (for CPU backends). */
const tyr_backend *tyr__profile_wrap(const tyr_backend *be);
/* Enters phase p and returns the phase it left (hand it back to leave p);
 * free when the profiler is off. */
int tyr__profile_phase_set(int p);
static inline int tyr__profile_enter(int p) {
  return tyr__profile_on ? tyr__profile_phase_set(p) : -1;
}
static inline void tyr__profile_leave(int prev) {
  if (prev >= 0 && tyr__profile_on) tyr__profile_phase_set(prev);
}
#endif
