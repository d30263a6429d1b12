/* Shared inside src/branching: the forest and the deletion padding without
 * the checks of their public forms (the batch checks each target once,
 * before its parallel loop, where nothing may raise).  Both return 0 or -1
 * (out of memory). */
#ifndef TYR_BRANCHING_INTERNAL_H
#define TYR_BRANCHING_INTERNAL_H
#include "tyr/branching_flows.h"

int tyr__bf_pad(const tyr_bf_config *c, const tyr_bf_target *x1, tyr_bf_rng *r, tyr_bf_seq *out);
int tyr__bf_forest(const tyr_bf_config *c, const tyr_bf_target *x1, tyr_bf_rng *r,
                   tyr_bf_forest *out);
#endif
