/* tyr/models/diffusion_lm_sample.h - generation with a masked diffusion
 * language model (tyr/models/diffusion_lm.h) and its live terminal view.
 *
 * A block of seq_len cells starts masked (after the prompt, or after the
 * last `overlap` characters of the block before).  At each step the model
 * predicts every cell; each masked cell draws a token from
 * softmax(logits / temperature) (the most likely one when temperature is
 * 0) and its confidence is that token's probability; then either the k most
 * confident masked cells are committed (TYR_DLM_COMMIT_TOPK) or every one
 * whose confidence is at least tau, and at least the most confident one
 * (TYR_DLM_COMMIT_THRESHOLD).  Committed cells never change.  The block is
 * done when no cell is masked.  Random draws come from Philox (seed, block,
 * step, cell): one seed gives one text. */
#ifndef TYR_MODELS_DIFFUSION_LM_SAMPLE_H
#define TYR_MODELS_DIFFUSION_LM_SAMPLE_H
#include <stdio.h>

#include "tyr/models/diffusion_lm.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tyr_dlm_commit_kind {
  TYR_DLM_COMMIT_TOPK,
  TYR_DLM_COMMIT_THRESHOLD
} tyr_dlm_commit_kind;
bool tyr_dlm_commit_kind_parse(const char *name, tyr_dlm_commit_kind *out);

typedef struct tyr_dlm_sample_opts {
  tyr_dlm_commit_kind commit;
  int64_t k;          /* topk: cells committed per step (>= 1) */
  double tau;         /* threshold: in (0, 1] */
  double temperature; /* >= 0; 0: the most likely token */
  uint64_t seed;
  int64_t blocks;  /* blocks of seq_len cells (>= 1) */
  int64_t overlap; /* characters a block takes from the one before (32) */
} tyr_dlm_sample_opts;
/* topk with k 4, tau 0.9, temperature 1, seed 0, 1 block, overlap 32 */
tyr_dlm_sample_opts tyr_dlm_sample_defaults(void);
/* Raises naming the option (k < 1, tau outside (0, 1], ...). */
int tyr_dlm_sample_opts_check_at(tyr_site s, const tyr_dlm_sample_opts *o, const tyr_dlm_config *c);
#define tyr_dlm_sample_opts_check(o, c) tyr_dlm_sample_opts_check_at(TYR_SITE, (o), (c))

/* For each masked cell i of ids [S] (ids[i] == 0): the drawn token pred[i]
 * and its probability conf[i] from logits [S, 128] (cells that are not
 * masked are left alone).  The draws use Philox (seed, counter0 + i). */
void tyr_dlm_predict(const float *logits, int64_t S, const int64_t *ids, double temperature,
                     uint64_t seed, uint64_t counter0, int64_t *pred, float *conf);
/* Commits masked cells of ids [S] by the rule of o: ids[i] = pred[i] and
 * cell_conf[i] = conf[i] for each cell chosen (ties: the lower index
 * first).  Returns how many were committed. */
int64_t tyr_dlm_commit(const tyr_dlm_sample_opts *o, int64_t S, int64_t *ids, const int64_t *pred,
                       const float *conf, float *cell_conf);

/* ---- the live view ------------------------------------------------------- */
typedef struct tyr_dlm_view {
  FILE *out;
  bool color;   /* ANSI colours, frames redrawn in place */
  int width;    /* cells per row (80) */
  int frame_ms; /* the least time between two frames in colour mode (60) */
  int lines;    /* lines of the frame on screen (redrawn over) */
  double last;  /* when the last frame was drawn */
} tyr_dlm_view;
void tyr_dlm_view_init(tyr_dlm_view *v, FILE *out, bool color, int width, int frame_ms);
/* One frame.  Colour mode: the frame replaces the one before, a header
 *   block b/N  step s/T [=====>    ] masked M
 * then the cells, `width` a row: masked cells as a block character and
 * decoded ones as their character ('↵' for a newline), green, yellow or red
 * by confidence (> 0.7, > 0.4, lower; for a masked cell its current
 * prediction's).  Plain mode: the header alone, one line a frame.
 * conf [S]: committed cells' confidence and masked cells' current one. */
void tyr_dlm_view_frame(tyr_dlm_view *v, const int64_t *ids, const float *conf, int64_t S,
                        int64_t block, int64_t nblocks, int64_t step, int64_t total,
                        int64_t masked);
/* Ends a block: its last frame stays; the next one is drawn below it. */
void tyr_dlm_view_end_block(tyr_dlm_view *v);

/* Generates o->blocks blocks after prompt (may be NULL or ""; ASCII 1..127,
 * at most seq_len characters) and returns the text (malloc'd: the prompt,
 * then the new characters), or NULL after raising.  view may be NULL. */
char *tyr_dlm_generate_at(tyr_site s, tyr_dlm *m, const tyr_dlm_sample_opts *o, const char *prompt,
                          tyr_dlm_view *view);
#define tyr_dlm_generate(m, o, prompt, view)                                                       \
  tyr_dlm_generate_at(TYR_SITE, (m), (o), (prompt), (view))

#ifdef __cplusplus
}
#endif
#endif
