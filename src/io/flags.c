/* Command-line flags of example programs (tyr/flags.h). */
#include "tyr/flags.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

const tyr_flag *tyr_flags_find(const tyr_flag *flags, size_t n, const char *arg, bool *negated) {
  *negated = false;
  if (!arg || strncmp(arg, "--", 2) != 0) return NULL;
  const char *name = arg + 2;
  for (size_t k = 0; k < n; k++)
    if (strcmp(flags[k].name, name) == 0) return &flags[k];
  if (strncmp(name, "no-", 3) == 0)
    for (size_t k = 0; k < n; k++)
      if (flags[k].type == TYR_FLAG_BOOLEAN && strcmp(flags[k].name, name + 3) == 0) {
        *negated = true;
        return &flags[k];
      }
  return NULL;
}

const char *tyr_flag_set(const tyr_flag *f, void *cfg, const char *v, bool negated) {
  void *p = (char *)cfg + f->offset;
  char *end;
  errno = 0;
  switch (f->type) {
  case TYR_FLAG_BOOLEAN:
    *(int *)p = !negated;
    return NULL;
  case TYR_FLAG_INTEGER: {
    long long x = strtoll(v, &end, 10);
    if (*end || end == v || errno) return "not an integer";
    *(int64_t *)p = x;
    return NULL;
  }
  case TYR_FLAG_REAL: {
    double x = strtod(v, &end);
    if (*end || end == v || errno || !isfinite(x)) return "not a number";
    *(double *)p = x;
    return NULL;
  }
  case TYR_FLAG_STRING:
    if (strlen(v) >= f->size) return "value too long";
    memcpy(p, v, strlen(v) + 1);
    return NULL;
  }
  return "unknown flag type";
}

void tyr_flags_usage(FILE *out, const tyr_flag *flags, size_t n, const void *defaults) {
  for (size_t i = 0; i < n; i++) {
    const tyr_flag *fl = &flags[i];
    char def[96];
    const void *p = (const char *)defaults + fl->offset;
    switch (fl->type) {
    case TYR_FLAG_INTEGER:
      snprintf(def, sizeof def, "%" PRId64, *(const int64_t *)p);
      break;
    case TYR_FLAG_REAL:
      snprintf(def, sizeof def, "%g", *(const double *)p);
      break;
    case TYR_FLAG_STRING:
      snprintf(def, sizeof def, "%s", (const char *)p);
      break;
    case TYR_FLAG_BOOLEAN:
      snprintf(def, sizeof def, "%s", *(const int *)p ? "on" : "off");
      break;
    }
    if (def[0])
      fprintf(out, "  --%-15s %s (default %s)\n", fl->name, fl->help, def);
    else
      fprintf(out, "  --%-15s %s\n", fl->name, fl->help);
  }
}
