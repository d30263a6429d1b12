/* TrainGPT: shared declarations of the example program's files. */
#ifndef TRAIN_GPT_H
#define TRAIN_GPT_H
#include <tyr/nn.h>
#include <tyr/tyr.h>

/* The shakespeare_cpu preset, compiled with static shapes in model_static.c. */
enum {
  SC_LAYERS = 4,
  SC_HEADS = 4,
  SC_EMBD = 128,
  SC_BLOCK = 64,
  SC_BATCH = 12,
};

/* True when the model and batch match the compiled preset (vocab is the
 * only run-time size), so that the static forward can be used. */
bool static_model_matches(const tyr_gpt *g, int64_t B, int64_t T);
/* The shakespeare_cpu forward pass with every shape in the C types:
 * idx, targets [SC_BATCH, SC_BLOCK]; returns the mean loss (a scalar). */
tyr_tensor *static_model_loss(tyr_gpt *g, tyr_tensor *idx, tyr_tensor *targets);
#endif
