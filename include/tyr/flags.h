/* tyr/flags.h - command-line flags for the example programs: a table of
 * flags with their types, ranges and help, parsed in one call.
 *
 *     int64_t epochs = 5; double lr = 1e-3; char dev[32] = "cpu"; bool plot = true;
 *     const tyr_flag flags[] = {
 *         TYR_FLAG_INT("epochs", &epochs, 1, 10000, "passes over the data"),
 *         TYR_FLAG_DOUBLE("lr", &lr, 0, 10, "learning rate"),
 *         TYR_FLAG_STRING("device", dev, "cpu, cuda or cuda:N"),
 *         TYR_FLAG_BOOL("plot", &plot, "write plots (--no-plot: don't)"),
 *     };
 *     tyr_flags_parse("train", "usage: train [--flag value ...]", flags, 4, argc, argv, 1);
 *
 * Flags are `--name value` (booleans: `--name` and `--no-name`).  `--help`
 * (or -h) prints the usage text (head, then every flag with its help and
 * current value, i.e. the default) to stdout and exits 0.  Any error (an
 * unknown flag, a missing value, a value that is not a number, out of its
 * range, or too long) prints "prog: --name value: what is wrong (see
 * --help)" to stderr and exits 2 before the program has done anything
 * else.  Values given twice: the last wins. */
#ifndef TYR_FLAGS_H
#define TYR_FLAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tyr_flag_type {
  TYR_FLAG_T_INT,    /* int64_t, in [min, max] */
  TYR_FLAG_T_DOUBLE, /* double, finite, in [min, max] */
  TYR_FLAG_T_STRING, /* char[size] */
  TYR_FLAG_T_BOOL    /* bool */
} tyr_flag_type;

typedef struct tyr_flag {
  const char *name; /* without the dashes */
  tyr_flag_type type;
  void *ptr;
  size_t size; /* strings: the buffer's size */
  double min, max;
  const char *help;
} tyr_flag;

/* p itself, which must point to T: an int * for an int64_t flag is a
 * compile error (pointer type mismatch), not an 8-byte write into 4 bytes */
#define TYR__FLAG_PTR(p, T) (1 ? (p) : (T *)0)
#define TYR_FLAG_INT(name, p, lo, hi, help)                                                        \
  { (name), TYR_FLAG_T_INT, TYR__FLAG_PTR(p, int64_t), 0, (double)(lo), (double)(hi), (help) }
#define TYR_FLAG_DOUBLE(name, p, lo, hi, help)                                                     \
  { (name), TYR_FLAG_T_DOUBLE, TYR__FLAG_PTR(p, double), 0, (lo), (hi), (help) }
/* buf must be a char array (its size is taken with sizeof) */
#define TYR_FLAG_STRING(name, buf, help)                                                           \
  { (name), TYR_FLAG_T_STRING, (buf), sizeof(buf), 0, 0, (help) }
#define TYR_FLAG_BOOL(name, p, help)                                                               \
  { (name), TYR_FLAG_T_BOOL, TYR__FLAG_PTR(p, bool), 0, 0, 0, (help) }

/* Parses argv[first..argc) into the flags' variables; exits as described
 * above on --help and on any error.  Returns 0. */
int tyr_flags_parse(const char *prog, const char *head, const tyr_flag *flags, int n, int argc,
                    char **argv, int first);
/* The usage text (what --help prints). */
void tyr_flags_usage(FILE *f, const char *head, const tyr_flag *flags, int n);
/* The pieces, for programs with arguments of their own (a positional
 * argument, a preset read first): the flag that arg ("--name", or
 * "--no-name" for a boolean) names, or NULL (*negated: which form it was);
 * and storing value (NULL for a boolean) into it, checked against its type
 * and range: 0, or -1 with what is wrong in err ("not an integer", "must
 * be in [1, 100]", ...) and the variable unchanged. */
const tyr_flag *tyr_flags_find(const tyr_flag *flags, int n, const char *arg, bool *negated);
int tyr_flag_set(const tyr_flag *f, const char *value, bool negated, char *err, size_t err_size);
/* Parses without exiting: 0, 1 for --help (nothing printed), or 2 with
 * the message in err (err_size bytes). */
int tyr_flags_try_parse(const char *prog, const tyr_flag *flags, int n, int argc, char **argv,
                        int first, char *err, size_t err_size);

#ifdef __cplusplus
}
#endif
#endif
