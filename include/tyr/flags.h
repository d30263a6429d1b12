/* tyr/flags.h - command-line flags of example programs as a table: each
 * flag names a field of the program's config struct, its type and its help
 * text.  "--name value" sets an int64_t, double or string field, "--name"
 * and "--no-name" set an int field to 1 or 0.
 *
 *   static const tyr_flag FLAGS[] = {
 *       TYR_FLAG_INT(config, "iters", iters, "training steps"),
 *       TYR_FLAG_BOOL(config, "plot", plot, "write loss.png"), ...};
 *   bool neg;
 *   const tyr_flag *f = tyr_flags_find(FLAGS, n, argv[i], &neg);
 *   const char *err = tyr_flag_set(f, &cfg, f->type == TYR_FLAG_BOOLEAN ? NULL : argv[++i], neg);
 */
#ifndef TYR_FLAGS_H
#define TYR_FLAGS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tyr_flag_type {
  TYR_FLAG_INTEGER, /* int64_t */
  TYR_FLAG_REAL,    /* double, finite */
  TYR_FLAG_STRING,  /* char[size] */
  TYR_FLAG_BOOLEAN  /* int: --name 1, --no-name 0 */
} tyr_flag_type;

typedef struct tyr_flag {
  const char *name, *help;
  tyr_flag_type type;
  size_t offset, size;
} tyr_flag;

#define TYR_FLAG_INT(st, n, field, help)                                                           \
  { n, help, TYR_FLAG_INTEGER, offsetof(st, field), 0 }
#define TYR_FLAG_DOUBLE(st, n, field, help)                                                        \
  { n, help, TYR_FLAG_REAL, offsetof(st, field), 0 }
#define TYR_FLAG_STR(st, n, field, help)                                                           \
  { n, help, TYR_FLAG_STRING, offsetof(st, field), sizeof(((st *)0)->field) }
#define TYR_FLAG_BOOL(st, n, field, help)                                                          \
  { n, help, TYR_FLAG_BOOLEAN, offsetof(st, field), 0 }

/* The flag that arg ("--name", or "--no-name" for a boolean) names, or
 * NULL; *negated tells which form it was. */
const tyr_flag *tyr_flags_find(const tyr_flag *flags, size_t n, const char *arg, bool *negated);
/* Stores value (NULL for a boolean) into the flag's field of cfg.  Returns
 * NULL, or what is wrong ("not an integer", "not a number", "value too
 * long") without changing the field. */
const char *tyr_flag_set(const tyr_flag *f, void *cfg, const char *value, bool negated);
/* One line per flag: "  --name   help (default D)", D read from defaults
 * (a config struct); no "(default)" for an empty string. */
void tyr_flags_usage(FILE *out, const tyr_flag *flags, size_t n, const void *defaults);

#ifdef __cplusplus
}
#endif
#endif
