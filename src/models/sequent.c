/* Propositional sequents as text: parser, canonical printer, the G3c rule
 * checker, a complete prover and a random generator (tyr/models/sequent.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tyr/models/sequent.h"
#include "tyr/tyr.h"

/* ---- formula trees (a small arena, only while parsing or printing) -------- */
enum { F_ATOM, F_NOT, F_AND, F_OR, F_IMP };
#define ARENA_MAX 512
#define DEPTH_MAX 200     /* parser recursion */
#define TREE_DEPTH_MAX 48 /* formula nesting: its canonical text stays within DEPTH_MAX */

typedef struct fnode {
  int kind;
  char atom;
  int a, b;
} fnode;

typedef struct parser {
  const char *text;
  int pos, n_nodes, depth;
  fnode nodes[ARENA_MAX];
  char err[160];
} parser;

static void skip_blanks(parser *p) {
  while (p->text[p->pos] == ' ' || p->text[p->pos] == '\t') p->pos++;
}

static int fail_at(parser *p, const char *fmt, ...) {
  if (p->err[0]) return -1;
  char what[96];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  char c = p->text[p->pos];
  if (!c)
    snprintf(p->err, sizeof p->err, "position %d: %s, got the end of the text", p->pos, what);
  else if (c >= 32 && c < 127)
    snprintf(p->err, sizeof p->err, "position %d: %s, got '%c'", p->pos, what, c);
  else
    snprintf(p->err, sizeof p->err, "position %d: %s, got byte 0x%02x", p->pos, what,
             (unsigned char)c);
  return -1;
}

static int new_node(parser *p, int kind, char atom, int a, int b) {
  if (p->n_nodes >= ARENA_MAX) return fail_at(p, "formula too large (over %d nodes)", ARENA_MAX);
  p->nodes[p->n_nodes] = (fnode){kind, atom, a, b};
  return p->n_nodes++;
}

static int parse_imp(parser *p);

static int parse_unary(parser *p) {
  skip_blanks(p);
  char c = p->text[p->pos];
  if (++p->depth > DEPTH_MAX) return fail_at(p, "nesting deeper than %d", DEPTH_MAX);
  int r;
  if (c == '~') {
    p->pos++;
    int a = parse_unary(p);
    r = a < 0 ? -1 : new_node(p, F_NOT, 0, a, -1);
  } else if (c >= 'a' && c <= 'z') {
    p->pos++;
    r = new_node(p, F_ATOM, c, -1, -1);
  } else if (c == '(') {
    p->pos++;
    r = parse_imp(p);
    skip_blanks(p);
    if (r >= 0 && p->text[p->pos] != ')') r = fail_at(p, "expected ')'");
    if (r >= 0) p->pos++;
  } else {
    r = fail_at(p, "expected a formula (an atom a-z, '~' or '(')");
  }
  p->depth--;
  return r;
}

static int parse_and(parser *p) {
  int a = parse_unary(p);
  for (;;) {
    if (a < 0) return -1;
    skip_blanks(p);
    if (p->text[p->pos] != '&') return a;
    p->pos++;
    int b = parse_unary(p);
    a = b < 0 ? -1 : new_node(p, F_AND, 0, a, b);
  }
}

static int parse_or(parser *p) {
  int a = parse_and(p);
  for (;;) {
    if (a < 0) return -1;
    skip_blanks(p);
    if (p->text[p->pos] != '|' || p->text[p->pos + 1] == '-') return a;
    p->pos++;
    int b = parse_and(p);
    a = b < 0 ? -1 : new_node(p, F_OR, 0, a, b);
  }
}

static int parse_imp(parser *p) {
  if (++p->depth > DEPTH_MAX) return fail_at(p, "nesting deeper than %d", DEPTH_MAX);
  int a = parse_or(p);
  skip_blanks(p);
  if (a >= 0 && p->text[p->pos] == '-' && p->text[p->pos + 1] == '>') {
    p->pos += 2;
    int b = parse_imp(p);
    a = b < 0 ? -1 : new_node(p, F_IMP, 0, a, b);
  }
  p->depth--;
  return a;
}

static bool is_binary(int kind) {
  return kind == F_AND || kind == F_OR || kind == F_IMP;
}

static int tree_depth(const fnode *nodes, int i) {
  const fnode *f = &nodes[i];
  if (f->kind == F_ATOM) return 1;
  int a = tree_depth(nodes, f->a), b = is_binary(f->kind) ? tree_depth(nodes, f->b) : 0;
  return 1 + (a > b ? a : b);
}

/* appends node i's canonical text at buf[*len]; false when it does not fit */
static bool print_node(const fnode *nodes, int i, char *buf, int *len, int cap) {
  const fnode *f = &nodes[i];
  char tmp[8];
  const char *pre = "", *mid = "";
  switch (f->kind) {
  case F_ATOM:
    tmp[0] = f->atom, tmp[1] = 0;
    pre = tmp;
    break;
  case F_NOT:
    pre = "~";
    break;
  case F_AND:
    mid = " & ";
    break;
  case F_OR:
    mid = " | ";
    break;
  default:
    mid = " -> ";
    break;
  }
#define PUT(str)                                                                                   \
  do {                                                                                             \
    int l_ = (int)strlen(str);                                                                     \
    if (*len + l_ >= cap) return false;                                                            \
    memcpy(buf + *len, str, (size_t)l_ + 1);                                                       \
    *len += l_;                                                                                    \
  } while (0)
  PUT(pre);
  if (f->kind == F_ATOM) return true;
  int kids[2] = {f->a, f->b};
  for (int k = 0; k < (f->kind == F_NOT ? 1 : 2); k++) {
    if (k) PUT(mid);
    bool par = is_binary(nodes[kids[k]].kind);
    if (par) PUT("(");
    if (!print_node(nodes, kids[k], buf, len, cap)) return false;
    if (par) PUT(")");
  }
#undef PUT
  return true;
}

/* one formula of the list at p->pos into dst (canonical); false on error */
static bool parse_formula_into(parser *p, char *dst) {
  p->n_nodes = 0;
  p->depth = 0;
  int start = p->pos;
  int r = parse_imp(p);
  if (r < 0) return false;
  if (tree_depth(p->nodes, r) > TREE_DEPTH_MAX) {
    p->pos = start;
    fail_at(p, "formula nested deeper than %d", TREE_DEPTH_MAX);
    return false;
  }
  int len = 0;
  dst[0] = 0;
  if (!print_node(p->nodes, r, dst, &len, TYR_SEQUENT_MAX_LEN)) {
    p->pos = start;
    fail_at(p, "formula longer than %d characters", TYR_SEQUENT_MAX_LEN - 1);
    return false;
  }
  return true;
}

static bool at_turnstile(parser *p) {
  skip_blanks(p);
  return p->text[p->pos] == '|' && p->text[p->pos + 1] == '-';
}

/* a comma-separated list up to the turnstile (left) or the end (right) */
static bool parse_list(parser *p, char (*dst)[TYR_SEQUENT_MAX_LEN], int *n, bool left) {
  *n = 0;
  skip_blanks(p);
  if (left ? at_turnstile(p) : !p->text[p->pos]) return true;
  for (;;) {
    if (*n >= TYR_SEQUENT_MAX_FORMULAS) {
      fail_at(p, "more than %d formulas on one side", TYR_SEQUENT_MAX_FORMULAS);
      return false;
    }
    if (!parse_formula_into(p, dst[*n])) return false;
    (*n)++;
    skip_blanks(p);
    if (p->text[p->pos] == ',') {
      p->pos++;
      continue;
    }
    if (left && at_turnstile(p)) return true;
    if (!left && !p->text[p->pos]) return true;
    fail_at(p, left ? "expected ',' or '|-'" : "expected ',' or the end of the sequent");
    return false;
  }
}

int tyr_sequent_parse_quiet(const char *text, tyr_sequent *out, char *err, int err_n) {
  static _Thread_local parser p;
  memset(out, 0, sizeof *out);
  p.text = text ? text : "";
  p.pos = 0;
  p.err[0] = 0;
  bool ok = parse_list(&p, out->left, &out->n_left, true);
  if (ok) {
    p.pos += 2; /* the turnstile */
    ok = parse_list(&p, out->right, &out->n_right, false);
  }
  if (ok) return 0;
  if (err && err_n > 0) snprintf(err, (size_t)err_n, "%s", p.err);
  return -1;
}

int tyr_sequent_parse_at(tyr_site s, const char *text, tyr_sequent *out) {
  char err[200];
  if (!text) return tyr_raise(TYR_ERR_ARG, s, "tyr_sequent_parse", "text is NULL");
  if (tyr_sequent_parse_quiet(text, out, err, sizeof err) == 0) return 0;
  return tyr_raise(TYR_ERR_ARG, s, "tyr_sequent_parse", "'%.200s': %s", text, err);
}

int tyr_sequent_print(const tyr_sequent *q, char *buf, int n) {
  int len = 0;
  if (n <= 0) return 0;
  buf[0] = 0;
  for (int side = 0; side < 2; side++) {
    int m = side ? q->n_right : q->n_left;
    if (side) len += snprintf(buf + len, (size_t)(n - len), m ? "|- " : "|-");
    for (int i = 0; i < m && len < n - 1; i++)
      len += snprintf(buf + len, (size_t)(n - len), "%s%s", side ? q->right[i] : q->left[i],
                      i + 1 < m ? ", " : (side ? "" : " "));
    if (len > n - 1) len = n - 1;
  }
  return len;
}

/* ---- rules ------------------------------------------------------------------ */
static const char *const RULE_NAMES[TYR_RULE_COUNT] = {"ax",   "notL", "notR", "andL", "orR",
                                                       "impR", "andR", "orL",  "impL"};

const char *tyr_sequent_rule_name(tyr_sequent_rule r) {
  return r >= 0 && r < TYR_RULE_COUNT ? RULE_NAMES[r] : "?";
}

int tyr_sequent_step_print(tyr_sequent_step st, char *buf, int n) {
  if (st.rule == TYR_RULE_AX) return snprintf(buf, (size_t)n, "ax");
  return snprintf(buf, (size_t)n, "%s %d", tyr_sequent_rule_name(st.rule), st.index);
}

bool tyr_sequent_step_parse(const char *text, tyr_sequent_step *out, char *err, int err_n) {
  char name[16];
  int len = 0;
  while (*text == ' ') text++;
  while (text[len] && text[len] != ' ' && len < 15) name[len] = text[len], len++;
  name[len] = 0;
  const char *rest = text + len;
  for (int r = 0; r < TYR_RULE_COUNT; r++) {
    if (strcmp(name, RULE_NAMES[r])) continue;
    tyr_sequent_step st = {(tyr_sequent_rule)r, 0};
    if (r != TYR_RULE_AX) {
      while (*rest == ' ') rest++;
      if (*rest < '0' || *rest > '9') {
        snprintf(err, (size_t)err_n, "'%s' needs a formula index", name);
        return false;
      }
      int v = 0;
      while (*rest >= '0' && *rest <= '9' && v < 1000) v = v * 10 + (*rest++ - '0');
      st.index = v;
    }
    while (*rest == ' ') rest++;
    if (*rest) {
      snprintf(err, (size_t)err_n, "unexpected text after the step: '%.20s'", rest);
      return false;
    }
    *out = st;
    return true;
  }
  snprintf(err, (size_t)err_n, "unknown rule '%.15s'", name);
  return false;
}

/* the main connective of canonical formula f and its children's texts */
static int split(const char *f, char *a, char *b) {
  static _Thread_local parser p;
  p.text = f;
  p.pos = 0;
  p.err[0] = 0;
  p.n_nodes = 0;
  p.depth = 0;
  int r = parse_imp(&p);
  if (r < 0) return -1;
  const fnode *n = &p.nodes[r];
  int len = 0;
  a[0] = b[0] = 0;
  if (n->kind != F_ATOM) print_node(p.nodes, n->a, a, &len, TYR_SEQUENT_MAX_LEN);
  len = 0;
  if (is_binary(n->kind)) print_node(p.nodes, n->b, b, &len, TYR_SEQUENT_MAX_LEN);
  return n->kind;
}

static bool has(char (*side)[TYR_SEQUENT_MAX_LEN], int n, const char *f) {
  for (int i = 0; i < n; i++)
    if (!strcmp(side[i], f)) return true;
  return false;
}

/* adds f to a side unless there; false when the side is full */
static bool add(char (*side)[TYR_SEQUENT_MAX_LEN], int *n, const char *f) {
  if (has(side, *n, f)) return true;
  if (*n >= TYR_SEQUENT_MAX_FORMULAS) return false;
  snprintf(side[(*n)++], TYR_SEQUENT_MAX_LEN, "%s", f);
  return true;
}

static void drop(char (*side)[TYR_SEQUENT_MAX_LEN], int *n, int i) {
  memmove(side[i], side[i + 1], (size_t)(*n - i - 1) * TYR_SEQUENT_MAX_LEN);
  (*n)--;
}

int tyr_sequent_apply(const tyr_sequent *q, tyr_sequent_step st, tyr_sequent out[2], char *err,
                      int err_n) {
  static const int want[TYR_RULE_COUNT] = {0, F_NOT, F_NOT, F_AND, F_OR, F_IMP, F_AND, F_OR, F_IMP};
  static const char *const what[] = {"an atom", "a negation", "a conjunction", "a disjunction",
                                     "an implication"};
  const char *rn = tyr_sequent_rule_name(st.rule);
  if (st.rule < 0 || st.rule >= TYR_RULE_COUNT) {
    snprintf(err, (size_t)err_n, "unknown rule %d", (int)st.rule);
    return -1;
  }
  if (st.rule == TYR_RULE_AX) {
    for (int i = 0; i < q->n_left; i++)
      if (has((char(*)[TYR_SEQUENT_MAX_LEN])q->right, q->n_right, q->left[i])) return 0;
    snprintf(err, (size_t)err_n, "ax: no formula is on both sides");
    return -1;
  }
  bool left = st.rule == TYR_RULE_NOT_L || st.rule == TYR_RULE_AND_L || st.rule == TYR_RULE_OR_L ||
              st.rule == TYR_RULE_IMP_L;
  int n = left ? q->n_left : q->n_right;
  if (st.index < 0 || st.index >= n) {
    snprintf(err, (size_t)err_n, "%s %d: the %s side has %d formula%s", rn, st.index,
             left ? "left" : "right", n, n == 1 ? "" : "s");
    return -1;
  }
  const char *f = left ? q->left[st.index] : q->right[st.index];
  char a[TYR_SEQUENT_MAX_LEN], b[TYR_SEQUENT_MAX_LEN];
  int kind = split(f, a, b);
  if (kind != want[st.rule]) {
    snprintf(err, (size_t)err_n, "%s %d: '%s' is not %s", rn, st.index, f, what[want[st.rule]]);
    return -1;
  }
  out[0] = *q;
  if (left)
    drop(out[0].left, &out[0].n_left, st.index);
  else
    drop(out[0].right, &out[0].n_right, st.index);
  int goals =
      (st.rule == TYR_RULE_AND_R || st.rule == TYR_RULE_OR_L || st.rule == TYR_RULE_IMP_L) ? 2 : 1;
  if (goals == 2) out[1] = out[0];
  tyr_sequent *g0 = &out[0], *g1 = &out[1];
  bool ok = true;
  switch (st.rule) {
  case TYR_RULE_NOT_L:
    ok = add(g0->right, &g0->n_right, a);
    break;
  case TYR_RULE_NOT_R:
    ok = add(g0->left, &g0->n_left, a);
    break;
  case TYR_RULE_AND_L:
    ok = add(g0->left, &g0->n_left, a) && add(g0->left, &g0->n_left, b);
    break;
  case TYR_RULE_OR_R:
    ok = add(g0->right, &g0->n_right, a) && add(g0->right, &g0->n_right, b);
    break;
  case TYR_RULE_IMP_R:
    ok = add(g0->left, &g0->n_left, a) && add(g0->right, &g0->n_right, b);
    break;
  case TYR_RULE_AND_R:
    ok = add(g0->right, &g0->n_right, a) && add(g1->right, &g1->n_right, b);
    break;
  case TYR_RULE_OR_L:
    ok = add(g0->left, &g0->n_left, a) && add(g1->left, &g1->n_left, b);
    break;
  case TYR_RULE_IMP_L:
    ok = add(g0->right, &g0->n_right, a) && add(g1->left, &g1->n_left, b);
    break;
  default:
    break;
  }
  if (!ok) {
    snprintf(err, (size_t)err_n, "%s %d: a side would hold more than %d formulas", rn, st.index,
             TYR_SEQUENT_MAX_FORMULAS);
    return -1;
  }
  return goals;
}

bool tyr_sequent_first_step(const tyr_sequent *q, tyr_sequent_step *st) {
  char err[8];
  tyr_sequent tmp[2];
  for (int r = 0; r < TYR_RULE_COUNT; r++) {
    bool left =
        r == TYR_RULE_NOT_L || r == TYR_RULE_AND_L || r == TYR_RULE_OR_L || r == TYR_RULE_IMP_L;
    int n = r == TYR_RULE_AX ? 1 : left ? q->n_left : q->n_right;
    for (int i = 0; i < n; i++) {
      tyr_sequent_step s = {(tyr_sequent_rule)r, i};
      if (tyr_sequent_apply(q, s, tmp, err, sizeof err) >= 0) {
        *st = s;
        return true;
      }
    }
  }
  return false;
}

/* ---- the complete prover ------------------------------------------------------ */
static bool proof_push(tyr_sequent_proof *p, const tyr_sequent *g, tyr_sequent_step st) {
  if (p->n == p->cap) {
    int cap = p->cap ? 2 * p->cap : 16;
    tyr_sequent *gs = realloc(p->goals, sizeof *gs * (size_t)cap);
    if (gs) p->goals = gs;
    tyr_sequent_step *ss = realloc(p->steps, sizeof *ss * (size_t)cap);
    if (ss) p->steps = ss;
    int *rm = realloc(p->remaining, sizeof *rm * (size_t)cap);
    if (rm) p->remaining = rm;
    if (!gs || !ss || !rm) return false;
    p->cap = cap;
  }
  p->goals[p->n] = *g;
  p->steps[p->n] = st;
  p->remaining[p->n] = 1;
  p->n++;
  return true;
}

/* 1 proved, 0 refuted, -1 out of steps or memory; *used counts steps */
static int prove_rec(const tyr_sequent *q, int max_steps, int *used, tyr_sequent_proof *p) {
  tyr_sequent_step st;
  if (!tyr_sequent_first_step(q, &st)) return 0;
  if (++*used > max_steps) return -1;
  int at = p ? p->n : 0;
  if (p && !proof_push(p, q, st)) return -1;
  tyr_sequent sub[2];
  char err[8];
  int goals = tyr_sequent_apply(q, st, sub, err, sizeof err);
  for (int k = 0; k < goals; k++) {
    int r = prove_rec(&sub[k], max_steps, used, p);
    if (r != 1) return r;
  }
  if (p) p->remaining[at] = p->n - at;
  return 1;
}

int tyr_sequent_prove(const tyr_sequent *q, int max_steps, tyr_sequent_proof *proof) {
  int used = 0;
  if (proof) proof->n = 0;
  return prove_rec(q, max_steps, &used, proof);
}

void tyr_sequent_proof_free(tyr_sequent_proof *p) {
  free(p->goals);
  free(p->steps);
  free(p->remaining);
  memset(p, 0, sizeof *p);
}

/* checks steps[*k..] as the proof of q, depth first */
static int check_rec(const tyr_sequent *q, const tyr_sequent_step *steps, int n, int *k, char *err,
                     int err_n) {
  if (*k >= n) {
    char b[TYR_SEQUENT_TEXT_MAX];
    tyr_sequent_print(q, b, sizeof b);
    snprintf(err, (size_t)err_n, "the goal '%.200s' is left open", b);
    return -1;
  }
  tyr_sequent sub[2];
  int at = *k, goals = tyr_sequent_apply(q, steps[(*k)++], sub, err, err_n);
  if (goals < 0) {
    char msg[160];
    snprintf(msg, sizeof msg, "%s", err);
    snprintf(err, (size_t)err_n, "step %d: %s", at, msg);
    return -1;
  }
  for (int g = 0; g < goals; g++)
    if (check_rec(&sub[g], steps, n, k, err, err_n)) return -1;
  return 0;
}

int tyr_sequent_check_proof(const tyr_sequent *q, const tyr_sequent_step *steps, int n, char *err,
                            int err_n) {
  int k = 0;
  if (check_rec(q, steps, n, &k, err, err_n)) return -1;
  if (k != n) {
    snprintf(err, (size_t)err_n, "%d steps after the proof closed", n - k);
    return -1;
  }
  return 0;
}

/* ---- generator ------------------------------------------------------------------ */
static uint64_t next_u64(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static int rnd(uint64_t *s, int n) {
  return (int)(next_u64(s) % (uint64_t)n);
}

static int gen_node(parser *p, uint64_t *rng, int n_atoms, int size) {
  if (size <= 0 || p->n_nodes >= ARENA_MAX - 2)
    return new_node(p, F_ATOM, (char)('a' + rnd(rng, n_atoms)), -1, -1);
  int r = rnd(rng, 10);
  if (r < 2) {
    int a = gen_node(p, rng, n_atoms, size - 1);
    return new_node(p, F_NOT, 0, a, -1);
  }
  int kind = r < 5 ? F_IMP : r < 8 ? F_AND : F_OR;
  int la = rnd(rng, size);
  int a = gen_node(p, rng, n_atoms, la), b = gen_node(p, rng, n_atoms, size - 1 - la);
  return new_node(p, kind, 0, a, b);
}

void tyr_sequent_random(uint64_t *rng, int n_atoms, int size, tyr_sequent *out) {
  static _Thread_local parser p;
  memset(out, 0, sizeof *out);
  if (n_atoms < 1) n_atoms = 1;
  if (n_atoms > 26) n_atoms = 26;
  if (size > 14) size = 14; /* keeps every formula well inside TYR_SEQUENT_MAX_LEN */
  int nh = rnd(rng, 3), left = size;
  for (int i = 0; i <= nh; i++) {
    int sz = i == nh ? left : rnd(rng, left / 2 + 1);
    left -= sz;
    p.n_nodes = 0;
    int r = gen_node(&p, rng, n_atoms, sz);
    char buf[TYR_SEQUENT_MAX_LEN];
    int len = 0;
    if (!print_node(p.nodes, r, buf, &len, sizeof buf)) snprintf(buf, sizeof buf, "a");
    if (i == nh)
      add(out->right, &out->n_right, buf);
    else
      add(out->left, &out->n_left, buf);
  }
}

int tyr_sequent_level(int steps) {
  if (steps >= 1 && steps <= 3) return 1;
  if (steps >= 4 && steps <= 7) return 2;
  if (steps >= 8 && steps <= 13) return 3;
  if (steps >= 14 && steps <= 24) return 4;
  return 0;
}
