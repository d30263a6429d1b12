/* Command-line flags of the example programs (see tyr/flags.h). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tyr/flags.h"

const tyr_flag *tyr_flags_find(const tyr_flag *flags, int n, const char *arg, bool *negated) {
  *negated = false;
  if (strncmp(arg, "--", 2) != 0) return NULL;
  const char *name = arg + 2;
  for (int i = 0; i < n; i++)
    if (!strcmp(flags[i].name, name)) return &flags[i];
  if (!strncmp(name, "no-", 3))
    for (int i = 0; i < n; i++)
      if (flags[i].type == TYR_FLAG_T_BOOL && !strcmp(flags[i].name, name + 3)) {
        *negated = true;
        return &flags[i];
      }
  return NULL;
}

int tyr_flag_set(const tyr_flag *f, const char *value, bool negated, char *err, size_t err_size) {
  if (f->type == TYR_FLAG_T_BOOL) {
    *(bool *)f->ptr = !negated;
    return 0;
  }
  const char *v = value ? value : "";
  char *end;
  errno = 0;
  if (f->type == TYR_FLAG_T_INT) {
    long long x = strtoll(v, &end, 10);
    if (end == v || *end || errno) return snprintf(err, err_size, "not an integer"), -1;
    if ((double)x < f->min || (double)x > f->max)
      return snprintf(err, err_size, "must be in [%.0f, %.0f]", f->min, f->max), -1;
    *(int64_t *)f->ptr = x;
  } else if (f->type == TYR_FLAG_T_DOUBLE) {
    double x = strtod(v, &end);
    if (end == v || *end || errno || !isfinite(x))
      return snprintf(err, err_size, "not a number"), -1;
    if (x < f->min || x > f->max)
      return snprintf(err, err_size, "must be in [%g, %g]", f->min, f->max), -1;
    *(double *)f->ptr = x;
  } else {
    if (strlen(v) >= f->size)
      return snprintf(err, err_size, "the value is too long (at most %zu characters)", f->size - 1),
             -1;
    memcpy(f->ptr, v, strlen(v) + 1);
  }
  return 0;
}

int tyr_flags_try_parse(const char *prog, const tyr_flag *flags, int n, int argc, char **argv,
                        int first, char *err, size_t err_size) {
#define FAIL(...)                                                                                  \
  do {                                                                                             \
    int k_ = snprintf(err, err_size, "%s: ", prog);                                                \
    if (k_ >= 0 && (size_t)k_ < err_size) snprintf(err + k_, err_size - (size_t)k_, __VA_ARGS__);  \
    return 2;                                                                                      \
  } while (0)
  for (int i = first; i < argc; i++)
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
  for (int i = first; i < argc; i++) {
    const char *a = argv[i];
    if (strncmp(a, "--", 2) != 0) FAIL("unexpected argument '%s' (see --help)", a);
    bool neg;
    const tyr_flag *f = tyr_flags_find(flags, n, a, &neg);
    if (!f) FAIL("unknown flag %s (see --help)", a);
    if (f->type != TYR_FLAG_T_BOOL && i + 1 >= argc) FAIL("%s: missing value (see --help)", a);
    const char *v = f->type == TYR_FLAG_T_BOOL ? NULL : argv[++i];
    char why[160];
    if (tyr_flag_set(f, v, neg, why, sizeof why)) {
      if (f->type == TYR_FLAG_T_STRING)
        FAIL("%s: %s (see --help)", a, why);
      else
        FAIL("%s %s: %s (see --help)", a, v, why);
    }
  }
  return 0;
#undef FAIL
}

void tyr_flags_usage(FILE *out, const char *head, const tyr_flag *flags, int n) {
  if (head) fprintf(out, "%s\n\n", head);
  for (int i = 0; i < n; i++) {
    const tyr_flag *f = &flags[i];
    char def[96];
    switch (f->type) {
    case TYR_FLAG_T_INT:
      snprintf(def, sizeof def, "%" PRId64, *(const int64_t *)f->ptr);
      break;
    case TYR_FLAG_T_DOUBLE:
      snprintf(def, sizeof def, "%g", *(const double *)f->ptr);
      break;
    case TYR_FLAG_T_STRING:
      snprintf(def, sizeof def, "%s", *(const char *)f->ptr ? (const char *)f->ptr : "none");
      break;
    default:
      snprintf(def, sizeof def, "%s", *(const bool *)f->ptr ? "on" : "off");
    }
    fprintf(out, "  --%-14s %s (default %s)\n", f->name, f->help, def);
  }
  fprintf(out, "  --%-14s %s\n", "help", "this text");
}

int tyr_flags_parse(const char *prog, const char *head, const tyr_flag *flags, int n, int argc,
                    char **argv, int first) {
  char err[512];
  int rc = tyr_flags_try_parse(prog, flags, n, argc, argv, first, err, sizeof err);
  if (rc == 1) {
    tyr_flags_usage(stdout, head, flags, n);
    exit(0);
  }
  if (rc == 2) {
    fprintf(stderr, "%s\n", err);
    exit(2);
  }
  return 0;
}
