/* Branch-time and deletion-time distributions on [0, 1]
 * (tyr/branching_flows.h): Uniform and Beta, optionally truncated, with
 * exact pdf, CDF, survival and quantile.
 *
 * The Beta CDF is the regularized incomplete beta function I_x(a, b),
 * evaluated with its continued fraction (modified Lentz), on the side
 * x < (a + 1) / (a + b + 2) where it converges fast and by the symmetry
 * I_x(a, b) = 1 - I_{1-x}(b, a) on the other.  The quantile bisects the
 * CDF (monotone) to 1e-14: slower than Newton, but it cannot diverge. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tyr/branching_flows.h"

/* Beta's shape parameters: below 1e-3 the CDF's symmetric branch, 1 -
   I_{1-x}(b, a), cancels to rounding noise (Beta(10, 5e-19) truncated to
   [0.1, 0.99] gave CDF values from -2 to 2.3), and such a distribution is
   a point mass at 0 or 1 for any use here. */
#define BETA_MIN 1e-3
#define BETA_MAX 1e6
static bool beta_ok(double a, double b) {
  return a >= BETA_MIN && b >= BETA_MIN && a <= BETA_MAX && b <= BETA_MAX;
}

tyr_bf_dist tyr_bf_uniform(void) {
  return (tyr_bf_dist){.kind = TYR_BF_DIST_UNIFORM, .a = 1, .b = 1, .lo = 0, .hi = 1};
}

tyr_bf_dist tyr_bf_beta(double a, double b) {
  return (tyr_bf_dist){.kind = TYR_BF_DIST_BETA, .a = a, .b = b, .lo = 0, .hi = 1};
}

tyr_bf_dist tyr_bf_truncated(tyr_bf_dist d, double lo, double hi) {
  d.lo = lo;
  d.hi = hi;
  return d;
}

int tyr_bf_dist_check_at(tyr_site s, const tyr_bf_dist *d, const char *what) {
  const char *op = "tyr_bf_dist_check";
  if (d->kind != TYR_BF_DIST_UNIFORM && d->kind != TYR_BF_DIST_BETA)
    return tyr_raise(TYR_ERR_ARG, s, op, "%s: unknown distribution kind %d", what, (int)d->kind);
  if (d->kind == TYR_BF_DIST_BETA && !beta_ok(d->a, d->b))
    return tyr_raise(TYR_ERR_ARG, s, op, "%s: Beta(%g, %g) needs a and b in [0.001, 1e6]", what,
                     d->a, d->b);
  if (!(d->lo >= 0 && d->lo < d->hi && d->hi <= 1))
    return tyr_raise(TYR_ERR_ARG, s, op, "%s: truncation [%g, %g] must satisfy 0 <= lo < hi <= 1",
                     what, d->lo, d->hi);
  return 0;
}

/* the continued fraction of I_x(a, b) (x below the switch point) */
static double betacf(double a, double b, double x) {
  const double tiny = 1e-300, eps = 1e-16;
  double qab = a + b, qap = a + 1, qam = a - 1, c = 1, d = 1 - qab * x / qap;
  if (fabs(d) < tiny) d = tiny;
  d = 1 / d;
  double h = d;
  for (int m = 1; m <= 1000; m++) {
    int m2 = 2 * m;
    double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (fabs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (fabs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (fabs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (fabs(c) < tiny) c = tiny;
    d = 1 / d;
    double del = d * c;
    h *= del;
    if (fabs(del - 1) < eps) break;
  }
  return h;
}

static double lbeta(double a, double b) {
  return lgamma(a) + lgamma(b) - lgamma(a + b);
}

/* I_x(a, b), kept in [0, 1] against rounding */
static double betainc(double a, double b, double x) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  double front = exp(a * log(x) + b * log1p(-x) - lbeta(a, b));
  double v =
      x < (a + 1) / (a + b + 2) ? front * betacf(a, b, x) / a : 1 - front * betacf(b, a, 1 - x) / b;
  return v < 0 ? 0 : v > 1 ? 1 : v;
}

/* the untruncated distribution */
static double base_cdf(const tyr_bf_dist *d, double t) {
  if (t <= 0) return 0;
  if (t >= 1) return 1;
  return d->kind == TYR_BF_DIST_UNIFORM ? t : betainc(d->a, d->b, t);
}

static double base_pdf(const tyr_bf_dist *d, double t) {
  if (t < 0 || t > 1) return 0;
  if (d->kind == TYR_BF_DIST_UNIFORM) return 1;
  if ((t == 0 && d->a < 1) || (t == 1 && d->b < 1)) return INFINITY;
  if ((t == 0 && d->a > 1) || (t == 1 && d->b > 1)) return 0;
  if (t == 0 || t == 1) return exp(-lbeta(d->a, d->b)); /* a or b is 1 there */
  return exp((d->a - 1) * log(t) + (d->b - 1) * log1p(-t) - lbeta(d->a, d->b));
}

static double base_quantile(const tyr_bf_dist *d, double p) {
  if (p <= 0) return 0;
  if (p >= 1) return 1;
  if (d->kind == TYR_BF_DIST_UNIFORM) return p;
  double lo = 0, hi = 1;
  for (int i = 0; i < 200 && hi - lo > 1e-14; i++) {
    double mid = 0.5 * (lo + hi);
    if (betainc(d->a, d->b, mid) < p)
      lo = mid;
    else
      hi = mid;
  }
  return 0.5 * (lo + hi);
}

static bool truncated(const tyr_bf_dist *d) {
  return d->lo > 0 || d->hi < 1;
}

double tyr_bf_dist_cdf(const tyr_bf_dist *d, double t) {
  if (!truncated(d)) return base_cdf(d, t);
  if (t <= d->lo) return 0;
  if (t >= d->hi) return 1;
  double flo = base_cdf(d, d->lo), z = base_cdf(d, d->hi) - flo;
  double v = z > 0 ? (base_cdf(d, t) - flo) / z : 0;
  return v < 0 ? 0 : v > 1 ? 1 : v;
}

double tyr_bf_dist_survival(const tyr_bf_dist *d, double t) {
  if (!truncated(d)) {
    if (t <= 0) return 1;
    if (t >= 1) return 0;
    if (d->kind == TYR_BF_DIST_UNIFORM) return 1 - t;
    return betainc(d->b, d->a, 1 - t); /* exact in the upper tail */
  }
  return 1 - tyr_bf_dist_cdf(d, t);
}

double tyr_bf_dist_pdf(const tyr_bf_dist *d, double t) {
  if (!truncated(d)) return base_pdf(d, t);
  if (t < d->lo || t > d->hi) return 0;
  double z = base_cdf(d, d->hi) - base_cdf(d, d->lo);
  return z > 0 ? base_pdf(d, t) / z : 0;
}

double tyr_bf_dist_quantile(const tyr_bf_dist *d, double p) {
  if (!truncated(d)) return base_quantile(d, p);
  if (p <= 0) return d->lo;
  if (p >= 1) return d->hi;
  double flo = base_cdf(d, d->lo), fhi = base_cdf(d, d->hi);
  double q = base_quantile(d, flo + p * (fhi - flo));
  return q < d->lo ? d->lo : q > d->hi ? d->hi : q;
}

double tyr_bf_dist_hazard(const tyr_bf_dist *d, double t) {
  double sv = tyr_bf_dist_survival(d, t);
  return sv > 0 ? tyr_bf_dist_pdf(d, t) / sv : 0;
}

bool tyr_bf_dist_parse(const char *text, tyr_bf_dist *out) {
  if (!text) return false;
  tyr_bf_dist d;
  const char *rest;
  if (!strncmp(text, "uniform", 7)) {
    d = tyr_bf_uniform();
    rest = text + 7;
  } else if (!strncmp(text, "beta:", 5)) {
    char *end;
    double a = strtod(text + 5, &end);
    if (end == text + 5 || *end != ',') return false;
    const char *p = end + 1;
    double b = strtod(p, &end);
    if (end == p) return false;
    d = tyr_bf_beta(a, b);
    rest = end;
  } else {
    return false;
  }
  if (*rest == '@') {
    char *end;
    const char *p = rest + 1;
    double lo = strtod(p, &end);
    if (end == p || *end != ',') return false;
    p = end + 1;
    double hi = strtod(p, &end);
    if (end == p) return false;
    d = tyr_bf_truncated(d, lo, hi);
    rest = end;
  }
  if (*rest) return false;
  if (d.kind == TYR_BF_DIST_BETA && !beta_ok(d.a, d.b)) return false;
  if (!(d.lo >= 0 && d.lo < d.hi && d.hi <= 1)) return false;
  *out = d;
  return true;
}
