/* tyr_prepare: text in, token shards out.
 *
 *   tyr_prepare --char -o data/shakespeare_char data/tinyshakespeare.txt
 *
 * Reads documents from text files (a whole file, each line or each
 * paragraph is a document: --docs) and Parquet files (each non-null, non-
 * empty value of a string column is a document: --column, default "text"),
 * encodes them, and writes llm.c token shards (or headerless uint16 files)
 * with a train/val split:
 *   OUT/NAME_train_000000.bin, ...   the first (1 - val) of the tokens
 *   OUT/NAME_val_000000.bin, ...     the rest
 * NAME defaults to the first input's file name without its extension.
 *
 * Encoders (exactly one):
 *   --char                 the distinct characters of all inputs, sorted by
 *                          code point, token id = index; saved as
 *                          OUT/meta.json (see tyr/charvocab.h).
 *   --tokenizer FILE       a tokenizer saved by tyr_tokenizer_save.
 *   --tiktoken FILE        a tiktoken rank file (--pattern, --special).
 *   --train-tokenizer N    a byte-level BPE tokenizer of N tokens trained on
 *                          all inputs first (with the chat special tokens),
 *                          saved as OUT/tokenizer.tok.
 * Token ids must fit uint16: vocabularies of at most 65536 tokens.
 *
 * The tokens go to a temporary file in OUT first; the split and the shards
 * are made from it once the total is known.  Progress goes to stderr, the
 * summary to stdout. */
#include <dirent.h>
#include <signal.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tyr/charvocab.h"
#include "tyr/data.h"
#include "tyr/parquet.h"
#include "tyr/tokenizer.h"

#define PROG "tyr_prepare"

typedef enum doc_mode { DOC_FILE, DOC_LINE, DOC_PARAGRAPH } doc_mode;
typedef enum split_mode { SPLIT_TOKENS, SPLIT_DOCS } split_mode;

typedef struct input {
  char *path;
  int64_t size;
  bool parquet; /* a Parquet file (by name or magic): one document per row */
} input;

typedef struct progress {
  const char *what;
  int64_t total, done;
  double start, last;
  bool on, tty;
} progress;

typedef struct prep {
  /* options */
  const char *out, *name, *column;
  bool use_char, raw, quiet, bos;
  const char *tokenizer_path, *tiktoken_path, *pattern, *bos_name;
  const char *specials[16];
  int nspecials;
  int train_vocab;
  int64_t bos_id; /* -1: none */
  double val;
  split_mode split;
  doc_mode docs;
  int64_t shard_tokens;
  /* inputs */
  input *in;
  int nin;
  int64_t in_bytes;
  /* encoders */
  tyr_char_vocab *vocab;
  tyr_tokenizer *tok;
  tyr_bpe_trainer *trainer;
  /* encoding state */
  FILE *tmp;
  int64_t ntokens, ndocs, doc_bytes;
  int64_t *doc_end; /* token count after each document */
  int64_t doc_cap;
  const char *cur_name; /* input being read, for messages */
  const char *cur_text; /* a text input's bytes (NULL for Parquet), for offsets in messages */
  int64_t cur_off;      /* input bytes before it */
  progress pg;
} prep;

static char g_tmp_path[4096]; /* removed at exit */
/* Every output is written to a staging directory inside the output
 * directory and moved into place only when all of them are complete: a run
 * that fails leaves no partial set (and removes the output directory when
 * it made it); a killed run's staging directory is removed by the next. */
static char g_stage[2048];
static char g_made_out[4096]; /* the output directory, when this run made it */

static void remove_tree_files(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  char path[8192];
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
      snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
      unlink(path);
    }
  closedir(d);
  rmdir(dir);
}

static void remove_tmp(void) {
  if (g_tmp_path[0]) unlink(g_tmp_path);
  g_tmp_path[0] = 0;
  if (g_stage[0]) remove_tree_files(g_stage);
  g_stage[0] = 0;
  if (g_made_out[0]) rmdir(g_made_out); /* only when empty */
  g_made_out[0] = 0;
}

/* A signal that ends the run (Ctrl-C, kill, a file size limit) removes the
 * token file and the directories this run made while they are empty (unlink
 * and rmdir are safe in a handler; listing the staging directory is not),
 * then ends the process as the signal would; shards already staged go with
 * the next run into the same directory (remove_stale_stages). */
static void on_fatal_signal(int sig) {
  if (g_tmp_path[0]) unlink(g_tmp_path);
  if (g_stage[0]) rmdir(g_stage);       /* when no shard was staged yet */
  if (g_made_out[0]) rmdir(g_made_out); /* when this run made it and it is empty */
  signal(sig, SIG_DFL);
  raise(sig);
}

/* staging directories of killed runs: ".tyr_prepare-<pid>-*" of dead pids */
static void remove_stale_stages(const char *out) {
  DIR *d = opendir(out);
  if (!d) return;
  struct dirent *e;
  char path[8192];
  while ((e = readdir(d))) {
    long pid;
    if (sscanf(e->d_name, ".tyr_prepare-%ld-", &pid) != 1 || pid == (long)getpid()) continue;
    if (kill((pid_t)pid, 0) == 0 || errno == EPERM) continue;
    snprintf(path, sizeof path, "%s/%s", out, e->d_name);
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
      remove_tree_files(path);
    else
      unlink(path);
  }
  closedir(d);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, PROG ": ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(1);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) die("out of memory");
  return q;
}

static char *xstrdup(const char *s) {
  char *p = strdup(s);
  if (!p) die("out of memory");
  return p;
}

/* ---- progress ---------------------------------------------------------------- */
static void progress_begin(progress *pg, const char *what, int64_t total, bool quiet) {
  memset(pg, 0, sizeof *pg);
  pg->what = what;
  pg->total = total > 0 ? total : 1;
  pg->on = !quiet;
  pg->tty = isatty(2);
  pg->start = pg->last = now();
  if (pg->on && !pg->tty) fprintf(stderr, "%s...\n", what);
}

static void progress_draw(progress *pg, int64_t tokens, bool force) {
  if (!pg->on || !pg->tty) return;
  double t = now();
  if (!force && t - pg->last < 0.1) return;
  pg->last = t;
  double f = (double)pg->done / (double)pg->total;
  if (f > 1) f = 1;
  char bar[31];
  int fill = (int)(f * 30);
  for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
  bar[30] = 0;
  double el = t - pg->start;
  fprintf(stderr, "\r%-10s [%s] %5.1f%%  %7.1f MB/s  %lld tokens ", pg->what, bar, 100 * f,
          el > 0 ? (double)pg->done / el / 1e6 : 0.0, (long long)tokens);
}

static void progress_end(progress *pg, int64_t tokens) {
  pg->done = pg->total;
  progress_draw(pg, tokens, true);
  if (pg->on && pg->tty) fprintf(stderr, "\n");
}

/* ---- inputs -------------------------------------------------------------------- */
static int cmp_input(const void *a, const void *b) {
  return strcmp(((const input *)a)->path, ((const input *)b)->path);
}

static void add_input(prep *p, const char *path, int64_t size) {
  p->in = xrealloc(p->in, (size_t)(p->nin + 1) * sizeof *p->in);
  p->in[p->nin].path = xstrdup(path);
  p->in[p->nin].size = size;
  size_t n = strlen(path);
  bool pq = n >= 8 && strcmp(path + n - 8, ".parquet") == 0;
  if (!pq) {
    char magic[4];
    FILE *f = fopen(path, "rb");
    pq = f && fread(magic, 1, 4, f) == 4 && memcmp(magic, "PAR1", 4) == 0;
    if (f) fclose(f);
  }
  p->in[p->nin].parquet = pq;
  p->nin++;
  p->in_bytes += size;
}

static void collect_inputs(prep *p, char **args, int n) {
  for (int i = 0; i < n; i++) {
    struct stat st;
    if (stat(args[i], &st) != 0) die("%s: %s", args[i], strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
      /* a pipe or /proc file has no size to plan with (and read as empty) */
      if (!S_ISREG(st.st_mode))
        die("%s: not a regular file (a pipe or device: save it to a file first)", args[i]);
      add_input(p, args[i], (int64_t)st.st_size);
      continue;
    }
    DIR *d = opendir(args[i]);
    if (!d) die("%s: %s", args[i], strerror(errno));
    int first = p->nin;
    struct dirent *e;
    while ((e = readdir(d))) {
      if (e->d_name[0] == '.') continue;
      size_t len = strlen(args[i]) + strlen(e->d_name) + 2;
      char *path = xrealloc(NULL, len);
      snprintf(path, len, "%s/%s", args[i], e->d_name);
      if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) add_input(p, path, (int64_t)st.st_size);
      free(path);
    }
    closedir(d);
    if (p->nin == first) die("%s: no files in the directory", args[i]);
    qsort(p->in + first, (size_t)(p->nin - first), sizeof *p->in, cmp_input);
  }
}

/* ---- documents --------------------------------------------------------------------
 * Every pass calls fn on each document of every input, in order. */
typedef int (*doc_fn)(prep *p, const char *text, size_t len);

static int text_docs(prep *p, const char *text, size_t len, doc_fn fn) {
  if (p->docs == DOC_FILE) return len ? fn(p, text, len) : 0;
  size_t i = 0;
  while (i < len) {
    size_t start = i, end;
    if (p->docs == DOC_LINE) {
      const char *nl = memchr(text + i, '\n', len - i);
      end = nl ? (size_t)(nl - text) : len;
      i = nl ? end + 1 : len;
    } else { /* paragraphs: up to a blank line */
      end = i;
      for (;;) {
        const char *nl = memchr(text + end, '\n', len - end);
        if (!nl) {
          end = len;
          i = len;
          break;
        }
        size_t k = (size_t)(nl - text) + 1, j = k;
        while (j < len && (text[j] == ' ' || text[j] == '\t' || text[j] == '\r')) j++;
        if (j >= len || text[j] == '\n') { /* blank line ends the paragraph */
          end = (size_t)(nl - text);
          i = j < len ? j + 1 : len;
          break;
        }
        end = k;
      }
    }
    while (end > start && (text[end - 1] == '\r' || text[end - 1] == '\n')) end--;
    bool blank = true;
    for (size_t k = start; k < end && blank; k++)
      blank = text[k] == ' ' || text[k] == '\t' || text[k] == '\r' || text[k] == '\n';
    if (!blank) {
      int rc = fn(p, text + start, end - start);
      if (rc) return rc;
      p->pg.done = p->cur_off + (int64_t)i;
      progress_draw(&p->pg, p->ntokens, false);
    }
  }
  return 0;
}

typedef struct pq_ctx {
  prep *p;
  doc_fn fn;
  int64_t rows, seen, size;
  int rc;
} pq_ctx;

static int pq_row(const char *str, size_t len, void *ctx) {
  pq_ctx *c = ctx;
  prep *p = c->p;
  c->seen++;
  if (len) c->rc = c->fn(p, str, len);
  p->pg.done = p->cur_off + (c->rows > 0 ? c->size * c->seen / c->rows : 0);
  progress_draw(&p->pg, p->ntokens, false);
  return c->rc;
}

static int parquet_docs(prep *p, const input *in, doc_fn fn) {
  tyr_parquet_file *f = tyr_parquet_open(in->path);
  if (!f) exit(1);
  pq_ctx c = {p, fn, tyr_parquet_num_rows(f), 0, in->size, 0};
  tyr_parquet_close(f);
  if (tyr_parquet_foreach_string(in->path, p->column, pq_row, &c)) exit(1);
  return c.rc;
}

static int foreach_doc(prep *p, const char *what, doc_fn fn) {
  progress_begin(&p->pg, what, p->in_bytes, p->quiet);
  int64_t base = 0;
  for (int i = 0; i < p->nin; i++) {
    const input *in = &p->in[i];
    p->cur_name = in->path;
    p->cur_text = NULL;
    p->cur_off = base;
    if (in->parquet) {
      int rc = parquet_docs(p, in, fn);
      if (rc) return rc;
    } else if (in->size > 0) {
      int fd = open(in->path, O_RDONLY | O_CLOEXEC);
      if (fd < 0) die("%s: %s", in->path, strerror(errno));
      void *m = mmap(NULL, (size_t)in->size, PROT_READ, MAP_PRIVATE, fd, 0);
      close(fd);
      if (m == MAP_FAILED) die("%s: cannot map: %s", in->path, strerror(errno));
      p->cur_text = m;
      int rc = text_docs(p, m, (size_t)in->size, fn);
      p->cur_text = NULL;
      munmap(m, (size_t)in->size);
      if (rc) return rc;
    }
    base += in->size;
    p->pg.done = base;
    progress_draw(&p->pg, p->ntokens, false);
  }
  progress_end(&p->pg, p->ntokens);
  return 0;
}

/* ---- passes ---------------------------------------------------------------------- */
static int scan_char(prep *p, const char *text, size_t len) {
  if (!p->cur_text || text == p->cur_text)
    return tyr_char_vocab_scan(p->vocab, p->cur_name, text, len);
  /* a line or paragraph: the scanner counts bytes from the document's start */
  char name[4200];
  snprintf(name, sizeof name, "%s (document from byte %lld)", p->cur_name,
           (long long)(text - p->cur_text));
  return tyr_char_vocab_scan(p->vocab, name, text, len);
}

static int train_doc(prep *p, const char *text, size_t len) {
  return tyr_bpe_trainer_add(p->trainer, text, len);
}

static void emit(prep *p, const uint16_t *tok, size_t n) {
  if (n && fwrite(tok, sizeof *tok, n, p->tmp) != n)
    die("%s: cannot write: %s", g_tmp_path, strerror(errno));
  p->ntokens += (int64_t)n;
}

/* Documents are encoded in batches, in parallel, and written in order. */
#define BATCH_BYTES ((size_t)32 << 20)
#define BATCH_DOCS 65536

typedef struct batch {
  char *text;
  size_t len, cap;
  size_t *off; /* BATCH_DOCS + 1 */
  const char **name;
  int n;
  uint16_t **out;
  size_t *nout;
} batch;

static batch g_batch;

static int encode_one(const prep *p, const char *name, const char *text, size_t len, uint16_t **out,
                      size_t *nout, uint32_t **ids, size_t *ids_cap) {
  size_t extra = p->bos_id >= 0;
  size_t n;
  if (p->use_char) {
    uint16_t *o = malloc((len + extra) * sizeof *o + 1);
    if (!o) return 1;
    int64_t k = tyr_char_vocab_encode(p->vocab, name, text, len, o + extra);
    if (k < 0) {
      free(o);
      return 1;
    }
    *out = o;
    n = (size_t)k;
  } else {
    n = tyr_tokenizer_encode(p->tok, text, len, false, ids, ids_cap);
    if (n == TYR_TOKENIZER_FAIL) return 1;
    uint16_t *o = malloc((n + extra) * sizeof *o + 1);
    if (!o) return 1;
    for (size_t i = 0; i < n; i++) o[extra + i] = (uint16_t)(*ids)[i];
    *out = o;
  }
  if (extra) (*out)[0] = (uint16_t)p->bos_id;
  *nout = n + extra;
  return 0;
}

static void flush_batch(prep *p) {
  batch *b = &g_batch;
  int failed = 0;
#pragma omp parallel reduction(| : failed)
  {
    uint32_t *ids = NULL;
    size_t cap = 0;
#pragma omp for schedule(dynamic, 16)
    for (int i = 0; i < b->n; i++)
      failed |= encode_one(p, b->name[i], b->text + b->off[i], b->off[i + 1] - b->off[i],
                           &b->out[i], &b->nout[i], &ids, &cap);
    free(ids);
  }
  if (failed) exit(1);
  for (int i = 0; i < b->n; i++) {
    emit(p, b->out[i], b->nout[i]);
    free(b->out[i]);
    if (p->ndocs == p->doc_cap) {
      p->doc_cap = p->doc_cap ? 2 * p->doc_cap : 1024;
      p->doc_end = xrealloc(p->doc_end, (size_t)p->doc_cap * sizeof *p->doc_end);
    }
    p->doc_end[p->ndocs++] = p->ntokens;
    p->doc_bytes += (int64_t)(b->off[i + 1] - b->off[i]);
  }
  b->n = 0;
  b->len = 0;
}

static int encode_doc(prep *p, const char *text, size_t len) {
  batch *b = &g_batch;
  if (!b->off) {
    b->off = xrealloc(NULL, (BATCH_DOCS + 1) * sizeof *b->off);
    b->name = xrealloc(NULL, BATCH_DOCS * sizeof *b->name);
    b->out = xrealloc(NULL, BATCH_DOCS * sizeof *b->out);
    b->nout = xrealloc(NULL, BATCH_DOCS * sizeof *b->nout);
  }
  if (b->n == BATCH_DOCS || (b->n && b->len + len > BATCH_BYTES)) flush_batch(p);
  if (b->len + len > b->cap) {
    b->cap = b->len + len > BATCH_BYTES ? b->len + len : BATCH_BYTES;
    b->text = xrealloc(b->text, b->cap);
  }
  memcpy(b->text + b->len, text, len);
  b->off[b->n] = b->len;
  b->name[b->n] = p->cur_name;
  b->len += len;
  b->off[++b->n] = b->len;
  return 0;
}

static void free_batch(void) {
  free(g_batch.text);
  free(g_batch.off);
  free(g_batch.name);
  free(g_batch.out);
  free(g_batch.nout);
  memset(&g_batch, 0, sizeof g_batch);
}

/* ---- shards ------------------------------------------------------------------------ */
static void shard_path_in(const prep *p, const char *dir, const char *split, int i, char *buf,
                          size_t n) {
  snprintf(buf, n, "%s/%s_%s_%06d.bin", dir, p->name, split, i);
}
static void shard_path(const prep *p, const char *split, int i, char *buf, size_t n) {
  shard_path_in(p, p->out, split, i, buf, n);
}

/* Writes tokens [0, n) as shards of split into the staging directory;
 * returns the count. */
static int write_split(prep *p, const char *split, const uint16_t *tok, int64_t n) {
  int count = 0;
  char path[8192];
  for (int64_t off = 0; off < n; off += p->shard_tokens, count++) {
    int64_t k = n - off < p->shard_tokens ? n - off : p->shard_tokens;
    shard_path_in(p, g_stage, split, count, path, sizeof path);
    if (tyr_shard_write(path, tok + off, k, p->raw ? TYR_SHARD_U16 : TYR_SHARD_LLMC)) exit(1);
  }
  return count;
}

/* Moves the staged files into the output directory, then removes shards
 * of the same names left by an earlier run with more shards. */
static void commit_stage(prep *p, int ntr, int nva) {
  DIR *d = opendir(g_stage);
  if (!d) die("%s: %s", g_stage, strerror(errno));
  struct dirent *e;
  char from[8192], to[8192];
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(from, sizeof from, "%s/%s", g_stage, e->d_name);
    snprintf(to, sizeof to, "%s/%s", p->out, e->d_name);
    if (rename(from, to) != 0) die("%s: cannot move into place: %s", to, strerror(errno));
  }
  closedir(d);
  rmdir(g_stage);
  g_stage[0] = 0;
  g_made_out[0] = 0; /* the output is complete: keep the directory */
  const char *splits[2] = {"train", "val"};
  int counts[2] = {ntr, nva};
  for (int sp = 0; sp < 2; sp++) {
    for (int i = 0; i < counts[sp]; i++) {
      shard_path(p, splits[sp], i, to, sizeof to);
      if (!p->quiet) printf("  wrote %s\n", to);
    }
    for (int i = counts[sp];; i++) {
      shard_path(p, splits[sp], i, to, sizeof to);
      if (unlink(to) != 0) break;
    }
  }
  int dfd = open(p->out, O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
}

/* The first shard in the output directory that belongs to a data set of
 * another name (NAME_train_NNNNNN.bin or NAME_val_NNNNNN.bin), or false.
 * meta.json and tokenizer.tok describe every shard of the directory. */
static bool other_shards(const prep *p, char *found, size_t n) {
  DIR *d = opendir(p->out);
  if (!d) return false;
  struct dirent *e;
  bool any = false;
  size_t nl = strlen(p->name);
  while (!any && (e = readdir(d))) {
    const char *f = e->d_name;
    size_t len = strlen(f);
    for (int sp = 0; sp < 2 && !any; sp++) {
      const char *tail = sp ? "_val_" : "_train_";
      size_t tl = strlen(tail), need = tl + 6 + 4; /* _split_ NNNNNN .bin */
      if (len <= need || strcmp(f + len - 4, ".bin")) continue;
      const char *t = f + len - need;
      if (strncmp(t, tail, tl)) continue;
      bool digits = true;
      for (int k = 0; k < 6; k++) digits &= t[tl + k] >= '0' && t[tl + k] <= '9';
      if (!digits) continue;
      if ((size_t)(t - f) == nl && !strncmp(f, p->name, nl)) continue; /* ours */
      snprintf(found, n, "%s", f);
      any = true;
    }
  }
  closedir(d);
  return any;
}

static void make_out_dir(const prep *p) {
  struct stat st;
  if (g_stage[0]) return;
  if (!(stat(p->out, &st) == 0 && S_ISDIR(st.st_mode))) {
    if (mkdir(p->out, 0755) != 0)
      die("%s: cannot create the directory: %s", p->out, strerror(errno));
    snprintf(g_made_out, sizeof g_made_out, "%s", p->out);
  }
  remove_stale_stages(p->out);
  if (strlen(p->out) > sizeof g_stage - 64) die("%s: the path is too long", p->out);
  snprintf(g_stage, sizeof g_stage, "%s/.tyr_prepare-%ld-XXXXXX", p->out, (long)getpid());
  if (!mkdtemp(g_stage)) {
    g_stage[0] = 0;
    die("%s: cannot create a staging directory: %s", p->out, strerror(errno));
  }
  atexit(remove_tmp);
}

static void usage(FILE *f) {
  fprintf(f, "usage: " PROG " [options] -o DIR INPUT...\n"
             "Encodes text files into token shards with a train/val split.\n"
             "INPUT is a file or a directory (its files, sorted by name).  Files named\n"
             "*.parquet or starting with PAR1 are Parquet: one document per row.\n"
             "\n"
             "encoding:\n"
             "  --char               character level: the distinct characters of the input,\n"
             "                       sorted, token id = index; written to DIR/meta.json\n"
             "  --tokenizer FILE     a saved tokenizer (tyr_tokenizer_save)\n"
             "  --tiktoken FILE      a tiktoken rank file (may be zstd compressed)\n"
             "  --train-tokenizer N  train a BPE tokenizer of N tokens on the input first,\n"
             "                       saved as DIR/tokenizer.tok (chat special tokens last)\n"
             "  --pattern P          split pattern for --tiktoken and --train-tokenizer:\n"
             "                       gpt4 (default), gpt2, or a PCRE2 regular expression\n"
             "  --special NAME       a special token of the --tiktoken file, ids after the\n"
             "                       ranks in order (repeatable; default <|endoftext|>)\n"
             "  --bos                put a BOS token before each document: <|bos|>, or\n"
             "                       <|endoftext|> when the tokenizer has no <|bos|>\n"
             "  --bos-token NAME     the same with the given special token\n"
             "\n"
             "documents and split:\n"
             "  --docs MODE          in text files: file (default), line or paragraph\n"
             "                       (blank-line separated)\n"
             "  --column NAME        in Parquet files: the string column (default text)\n"
             "  --val FRACTION       fraction for validation, taken from the end (default 0.1)\n"
             "  --split tokens|docs  split by tokens (default) or by whole documents\n"
             "\n"
             "output:\n"
             "  -o, --out DIR        output directory (created if missing); DIR/meta.json or\n"
             "                       DIR/tokenizer.tok describes all its shards, so --char and\n"
             "                       --train-tokenizer refuse a DIR with shards of another name\n"
             "  --name NAME          shard name prefix (default: first input's name)\n"
             "  --shard-tokens N     tokens per shard (default 100000000)\n"
             "  --raw                headerless uint16 files instead of llm.c shards\n"
             "  -q, --quiet          no progress, no list of files\n"
             "  -h, --help\n");
}

static int64_t parse_int(const char *opt, const char *s, int64_t lo, int64_t hi) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi || !(*s == '-' || (*s >= '0' && *s <= '9')))
    die("%s: '%s' is not an integer in [%lld, %lld]", opt, s, (long long)lo, (long long)hi);
  return v;
}

static char *default_name(const char *path) {
  char *t = xstrdup(path); /* "dir/" names the shards after dir */
  for (size_t n = strlen(t); n > 1 && t[n - 1] == '/'; n--) t[n - 1] = 0;
  const char *b = strrchr(t, '/');
  b = b ? b + 1 : t;
  char *n = xstrdup(*b && *b != '.' ? b : "data"); /* "./", "../", ".hidden": data */
  free(t);
  char *dot = strrchr(n, '.');
  if (dot && dot != n) *dot = 0;
  return n;
}

/* The library's errors as the tool's own: "tyr_prepare: what is wrong",
   without the tool's source line the library's message starts with. */
static void on_error(const tyr_error *e, void *ctx) {
  (void)ctx;
  const char *m = e->message;
  char pre[600];
  snprintf(pre, sizeof pre, "%s:%d: ", e->site.file ? e->site.file : "", e->site.line);
  if (e->site.file && strncmp(m, pre, strlen(pre)) == 0) m += strlen(pre);
  fprintf(stderr, PROG ": %s\n", m);
  exit(1);
}

int main(int argc, char **argv) {
  prep P, *p = &P;
  memset(p, 0, sizeof *p);
  tyr_error_set_handler(on_error, NULL);
  const int fatal[] = {SIGINT, SIGTERM, SIGHUP, SIGXFSZ};
  for (size_t i = 0; i < sizeof fatal / sizeof *fatal; i++) {
    struct sigaction old;
    /* a signal ignored by the caller (nohup, a background job) stays ignored */
    if (sigaction(fatal[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue;
    signal(fatal[i], on_fatal_signal);
  }
  p->val = 0.1;
  p->shard_tokens = 100000000;
  char *name_alloc = NULL;
  p->bos_id = -1;
  p->column = "text";
  enum {
    O_CHAR = 256,
    O_DOCS,
    O_VAL,
    O_SPLIT,
    O_NAME,
    O_SHARD,
    O_RAW,
    O_TOKENIZER,
    O_TIKTOKEN,
    O_TRAIN,
    O_PATTERN,
    O_SPECIAL,
    O_BOS,
    O_BOS_TOKEN,
    O_COLUMN
  };
  static const struct option opts[] = {
      {"char", no_argument, 0, O_CHAR},
      {"tokenizer", required_argument, 0, O_TOKENIZER},
      {"tiktoken", required_argument, 0, O_TIKTOKEN},
      {"train-tokenizer", required_argument, 0, O_TRAIN},
      {"pattern", required_argument, 0, O_PATTERN},
      {"special", required_argument, 0, O_SPECIAL},
      {"bos", no_argument, 0, O_BOS},
      {"bos-token", required_argument, 0, O_BOS_TOKEN},
      {"docs", required_argument, 0, O_DOCS},
      {"column", required_argument, 0, O_COLUMN},
      {"val", required_argument, 0, O_VAL},
      {"split", required_argument, 0, O_SPLIT},
      {"out", required_argument, 0, 'o'},
      {"name", required_argument, 0, O_NAME},
      {"shard-tokens", required_argument, 0, O_SHARD},
      {"raw", no_argument, 0, O_RAW},
      {"quiet", no_argument, 0, 'q'},
      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0},
  };
  int c;
  while ((c = getopt_long(argc, argv, "o:qh", opts, NULL)) != -1) {
    switch (c) {
    case O_CHAR:
      p->use_char = true;
      break;
    case O_TOKENIZER:
      p->tokenizer_path = optarg;
      break;
    case O_TIKTOKEN:
      p->tiktoken_path = optarg;
      break;
    case O_TRAIN:
      p->train_vocab = (int)parse_int("--train-tokenizer", optarg, 256 + 9, 65536);
      break;
    case O_PATTERN:
      p->pattern = !strcmp(optarg, "gpt4")   ? TYR_TOKENIZER_PATTERN_GPT4
                   : !strcmp(optarg, "gpt2") ? TYR_TOKENIZER_PATTERN_GPT2
                                             : optarg;
      break;
    case O_SPECIAL:
      if (p->nspecials == (int)(sizeof p->specials / sizeof *p->specials))
        die("--special: at most %d special tokens",
            (int)(sizeof p->specials / sizeof *p->specials));
      p->specials[p->nspecials++] = optarg;
      break;
    case O_BOS:
      p->bos = true;
      break;
    case O_BOS_TOKEN:
      p->bos = true;
      p->bos_name = optarg;
      break;
    case O_COLUMN:
      p->column = optarg;
      break;
    case O_DOCS:
      if (!strcmp(optarg, "file"))
        p->docs = DOC_FILE;
      else if (!strcmp(optarg, "line"))
        p->docs = DOC_LINE;
      else if (!strcmp(optarg, "paragraph"))
        p->docs = DOC_PARAGRAPH;
      else
        die("--docs: '%s' is not file, line or paragraph", optarg);
      break;
    case O_VAL: {
      char *end;
      p->val = strtod(optarg, &end);
      if (end == optarg || *end || !(p->val >= 0 && p->val < 1))
        die("--val: '%s' is not a fraction in [0, 1)", optarg);
      break;
    }
    case O_SPLIT:
      if (!strcmp(optarg, "tokens"))
        p->split = SPLIT_TOKENS;
      else if (!strcmp(optarg, "docs"))
        p->split = SPLIT_DOCS;
      else
        die("--split: '%s' is not tokens or docs", optarg);
      break;
    case 'o':
      p->out = optarg;
      break;
    case O_NAME:
      p->name = optarg;
      break;
    case O_SHARD:
      p->shard_tokens = parse_int("--shard-tokens", optarg, 1, TYR_SHARD_MAX_TOKENS);
      break;
    case O_RAW:
      p->raw = true;
      break;
    case 'q':
      p->quiet = true;
      break;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 2;
    }
  }
  if (!p->out) {
    usage(stderr);
    die("no output directory (-o DIR)");
  }
  if (!p->out[0]) die("-o: the output directory's name is empty");
  if (optind >= argc) {
    usage(stderr);
    die("no input files");
  }
  int nenc = p->use_char + !!p->tokenizer_path + !!p->tiktoken_path + (p->train_vocab > 0);
  if (nenc != 1)
    die("%s: give exactly one of --char, --tokenizer, --tiktoken, --train-tokenizer",
        nenc ? "more than one encoder" : "no encoder");
  if (p->bos && p->use_char) die("--bos needs a tokenizer with a BOS token (not --char)");
  if (p->nspecials && !p->tiktoken_path) die("--special goes with --tiktoken");
  if (p->pattern && (p->use_char || p->tokenizer_path))
    die("--pattern goes with --tiktoken or --train-tokenizer (--char and --tokenizer bring "
        "their own splitting)");
  if (!p->name) p->name = name_alloc = default_name(argv[optind]);
  if (strchr(p->name, '/') || !p->name[0]) die("--name: '%s' is not a plain file name", p->name);

  collect_inputs(p, argv + optind, argc - optind);
  char other[512];
  bool others = other_shards(p, other, sizeof other);
  if (others && (p->use_char || p->train_vocab))
    die("%s holds shards of another data set (%s): its %s would no longer describe them; "
        "write to another directory (-o)",
        p->out, other, p->use_char ? "meta.json" : "tokenizer.tok");
  double t0 = now();

  /* the vocabulary first */
  char vocab_path[4096] = "";
  if (p->use_char) {
    p->vocab = tyr_char_vocab_new();
    if (foreach_doc(p, "vocabulary", scan_char)) exit(1);
    if (tyr_char_vocab_size(p->vocab) == 0) die("the input has no text");
    snprintf(vocab_path, sizeof vocab_path, "%s/meta.json", p->out);
  } else if (p->tokenizer_path) {
    if (!(p->tok = tyr_tokenizer_load(p->tokenizer_path))) exit(1);
    snprintf(vocab_path, sizeof vocab_path, "%s", p->tokenizer_path);
  } else if (p->tiktoken_path) {
    static const char *const eot[1] = {"<|endoftext|>"};
    p->tok =
        tyr_tokenizer_load_tiktoken(p->tiktoken_path, p->pattern, p->nspecials ? p->specials : eot,
                                    NULL, p->nspecials ? p->nspecials : 1);
    if (!p->tok) exit(1);
    snprintf(vocab_path, sizeof vocab_path, "%s", p->tiktoken_path);
  } else {
    if (!(p->trainer = tyr_bpe_trainer_init(p->pattern))) exit(1);
    if (foreach_doc(p, "training", train_doc)) exit(1);
    if (!p->quiet) fprintf(stderr, "merging to %d tokens...\n", p->train_vocab);
    p->tok = tyr_bpe_trainer_finish(p->trainer, p->train_vocab, tyr_tokenizer_chat_specials,
                                    TYR_TOKENIZER_N_CHAT_SPECIALS);
    tyr_bpe_trainer_free(p->trainer);
    p->trainer = NULL;
    if (!p->tok) exit(1);
    make_out_dir(p);
    snprintf(vocab_path, sizeof vocab_path, "%s/tokenizer.tok", g_stage);
    if (tyr_tokenizer_save(p->tok, vocab_path)) exit(1);
    snprintf(vocab_path, sizeof vocab_path, "%s/tokenizer.tok", p->out);
  }
  int vocab_size = p->vocab ? tyr_char_vocab_size(p->vocab) : tyr_tokenizer_vocab_size(p->tok);
  if (vocab_size > 65536)
    die("a vocabulary of %d tokens does not fit uint16 token shards (at most 65536)", vocab_size);
  if (p->bos) {
    const char *name = p->bos_name;
    if (!name)
      name = tyr_tokenizer_special_id(p->tok, "<|bos|>") >= 0 ? "<|bos|>" : "<|endoftext|>";
    p->bos_id = tyr_tokenizer_special_id(p->tok, name);
    if (p->bos_id < 0)
      die("%s: the tokenizer has no special token %s", p->bos_name ? "--bos-token" : "--bos", name);
  }

  /* encode into a temporary file */
  make_out_dir(p);
  snprintf(g_tmp_path, sizeof g_tmp_path, "%s/.tokens-XXXXXX", g_stage);
  int fd = mkstemp(g_tmp_path);
  if (fd < 0) {
    g_tmp_path[0] = 0;
    die("%s: cannot create a temporary file: %s", p->out, strerror(errno));
  }
  p->tmp = fdopen(fd, "w+b");
  if (!p->tmp) die("%s: %s", g_tmp_path, strerror(errno));
  if (foreach_doc(p, "encoding", encode_doc)) exit(1);
  flush_batch(p);
  free_batch();
  if (fflush(p->tmp) != 0) die("%s: cannot write: %s", g_tmp_path, strerror(errno));
  if (p->ntokens == 0) die("the input has no documents");

  /* the split */
  int64_t ntrain;
  if (p->split == SPLIT_TOKENS) {
    ntrain = (int64_t)floor((double)p->ntokens * (1 - p->val) + 1e-9);
  } else {
    int64_t dtrain = (int64_t)floor((double)p->ndocs * (1 - p->val) + 1e-9);
    if (p->val > 0 && dtrain == p->ndocs)
      die("--val %g of %lld documents is no document: use more documents or --split tokens", p->val,
          (long long)p->ndocs);
    if (dtrain == 0)
      die("--val %g of %lld document%s leaves no document for training", p->val,
          (long long)p->ndocs, p->ndocs == 1 ? "" : "s");
    ntrain = p->doc_end[dtrain - 1];
  }
  int64_t nval = p->ntokens - ntrain;
  if (ntrain <= 0)
    die("the train split is empty (%lld token%s in all)", (long long)p->ntokens,
        p->ntokens == 1 ? "" : "s");
  if (p->val > 0 && nval <= 0)
    die("the val split is empty (%lld token%s in all)", (long long)p->ntokens,
        p->ntokens == 1 ? "" : "s");

  /* the shards, from the temporary file */
  size_t maplen = (size_t)p->ntokens * sizeof(uint16_t);
  void *m = mmap(NULL, maplen, PROT_READ, MAP_PRIVATE, fileno(p->tmp), 0);
  if (m == MAP_FAILED) die("%s: cannot map: %s", g_tmp_path, strerror(errno));
  const uint16_t *tok = m;
  int ntr = write_split(p, "train", tok, ntrain);
  int nva = write_split(p, "val", tok + ntrain, nval);
  munmap(m, maplen);
  fclose(p->tmp);
  unlink(g_tmp_path);
  g_tmp_path[0] = 0;

  if (p->use_char) {
    char staged[8192];
    snprintf(staged, sizeof staged, "%s/meta.json", g_stage);
    if (tyr_char_vocab_save(p->vocab, staged)) exit(1);
  }
  commit_stage(p, ntr, nva);

  double el = now() - t0;
  printf("%s: %d file%s, %lld document%s, %lld bytes in %.2f s\n", PROG, p->nin,
         p->nin == 1 ? "" : "s", (long long)p->ndocs, p->ndocs == 1 ? "" : "s",
         (long long)p->doc_bytes, el);
  printf("  tokens: %lld (train %lld in %d shard%s, val %lld in %d shard%s)\n",
         (long long)p->ntokens, (long long)ntrain, ntr, ntr == 1 ? "" : "s", (long long)nval, nva,
         nva == 1 ? "" : "s");
  printf("  bytes per token: %.3f\n", (double)p->doc_bytes / (double)p->ntokens);
  if (p->use_char)
    printf("  vocabulary: %d character%s, %s\n", vocab_size, vocab_size == 1 ? "" : "s",
           vocab_path);
  else
    printf("  vocabulary: %d tokens, %s%s\n", vocab_size, vocab_path,
           p->train_vocab ? " (trained)" : "");
  if (p->bos_id >= 0) printf("  BOS token: %lld before each document\n", (long long)p->bos_id);

  tyr_char_vocab_free(p->vocab);
  tyr_tokenizer_free(p->tok);
  for (int i = 0; i < p->nin; i++) free(p->in[i].path);
  free(p->in);
  free(p->doc_end);
  free(name_alloc);
  return 0;
}
