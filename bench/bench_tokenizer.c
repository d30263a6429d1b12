/* Tokenizer throughput: encode and decode MB/s on Shakespeare (and on it
 * repeated to a few MB), for a trained 4096 vocabulary and for the GPT-2 and
 * cl100k rank files of the test fixtures; training time.
 *
 *   bench_tokenizer [--text FILE] [--train FILE --vocab N] [--threads N]
 *
 * --text: the text to measure on (default data/tinyshakespeare.txt under
 * $TYR_ROOT or the working directory).  --train: also time training a
 * vocabulary of N on FILE (read through the streaming trainer). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tyr/tokenizer.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU time of this thread: on a shared machine it shows what the code
 * costs when the wall clock also counts waiting for a core. */
static double cpu(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static char *read_all(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long sz = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)sz + 1);
  *n = fread(buf, 1, (size_t)sz, f);
  fclose(f);
  return buf;
}

static const char *root_path(const char *rel) {
  static char buf[4][1024];
  static int k;
  const char *root = getenv("TYR_ROOT");
  k = (k + 1) % 4;
  snprintf(buf[k], sizeof buf[k], "%s/%s", root ? root : ".", rel);
  return buf[k];
}

static char *repeat(const char *text, size_t n, int times) {
  char *out = malloc(n * (size_t)times);
  for (int i = 0; i < times; i++) memcpy(out + (size_t)i * n, text, n);
  return out;
}

/* Encodes and decodes text with t, printing MB/s.  The first encode starts
 * with an empty chunk cache and an empty id buffer; the second reuses both.
 * Decode is timed on its second run (the output buffer allocated). */
static void measure(const char *name, const tyr_tokenizer *t, const char *text, size_t n,
                    int threads) {
  uint32_t *ids = NULL;
  size_t cap = 0;
  double t0 = now(), c0 = cpu();
  size_t m = tyr_tokenizer_encode(t, text, n, false, &ids, &cap);
  double t1 = now(), c1 = cpu();
  size_t m2 = tyr_tokenizer_encode(t, text, n, false, &ids, &cap);
  double t2 = now(), c2 = cpu();
  char *out = NULL;
  size_t ocap = 0;
  tyr_tokenizer_decode(t, ids, m, &out, &ocap); /* the first one grows the buffer */
  double t2b = now(), c2b = cpu();
  size_t back = tyr_tokenizer_decode(t, ids, m, &out, &ocap);
  double t3 = now(), c3 = cpu();
  double mb = (double)n / 1e6;
  printf("  %-16s %6.2f MB %8zu ids %.2f B/id | encode cold %5.1f (cpu %5.1f), warm %5.1f (cpu "
         "%5.1f) | decode %6.0f (cpu %6.0f) MB/s | %s\n",
         name, mb, m, (double)n / (double)m, mb / (t1 - t0), mb / (c1 - c0), mb / (t2 - t1),
         mb / (c2 - c1), mb / (t3 - t2b), mb / (c3 - c2b),
         back == n && m2 == m && memcmp(out, text, n) == 0 ? "round trip ok" : "ROUND TRIP FAILED");
  if (threads > 1) {
    /* the text cut into pieces at newlines, encoded by several threads */
    int pieces = threads * 8;
    size_t *cut = malloc(sizeof *cut * (size_t)(pieces + 1));
    cut[0] = 0;
    for (int i = 1; i < pieces; i++) {
      size_t c = n / (size_t)pieces * (size_t)i;
      while (c < n && text[c] != '\n') c++;
      cut[i] = c < cut[i - 1] ? cut[i - 1] : c;
    }
    cut[pieces] = n;
    double p0 = now();
#pragma omp parallel for num_threads(threads) schedule(dynamic)
    for (int i = 0; i < pieces; i++) {
      uint32_t *pi = NULL;
      size_t pc = 0;
      tyr_tokenizer_encode(t, text + cut[i], cut[i + 1] - cut[i], false, &pi, &pc);
      free(pi);
    }
    double p1 = now();
    printf("  %-16s encode with %d threads %5.1f MB/s (wall)\n", "", threads, mb / (p1 - p0));
    free(cut);
  }
  free(ids);
  free(out);
}

static void train_file(const char *path, int vocab) {
  double t0 = now(), c0 = cpu();
  tyr_bpe_trainer *tr = tyr_bpe_trainer_init(NULL);
  if (tyr_bpe_trainer_add_file(tr, path)) exit(1);
  double t1 = now(), c1 = cpu();
  tyr_bpe_trainer_set_verbose(tr, true);
  tyr_tokenizer *t =
      tyr_bpe_trainer_finish(tr, vocab, tyr_tokenizer_chat_specials, TYR_TOKENIZER_N_CHAT_SPECIALS);
  double t2 = now(), c2 = cpu();
  printf("train %s: %.1f MB, %llu distinct chunks, vocab %d: split+count %.2f s (cpu %.2f s), "
         "merges %.2f s (cpu %.2f s), total %.2f s\n",
         path, (double)tyr_bpe_trainer_n_bytes(tr) / 1e6,
         (unsigned long long)tyr_bpe_trainer_n_chunks(tr), tyr_tokenizer_vocab_size(t), t1 - t0,
         c1 - c0, t2 - t1, c2 - c1, t2 - t0);
  tyr_bpe_trainer_free(tr);
  tyr_tokenizer_free(t);
}

int main(int argc, char **argv) {
  const char *text_path = NULL, *train_path = NULL;
  int vocab = 4096, threads = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--text") && i + 1 < argc)
      text_path = argv[++i];
    else if (!strcmp(argv[i], "--train") && i + 1 < argc)
      train_path = argv[++i];
    else if (!strcmp(argv[i], "--vocab") && i + 1 < argc)
      vocab = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
      threads = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: %s [--text FILE] [--train FILE --vocab N] [--threads N]\n", argv[0]);
      return 2;
    }
  }
  if (threads <= 0) threads = omp_get_max_threads();
  if (train_path) {
    train_file(train_path, vocab);
    return 0;
  }
  if (!text_path) text_path = root_path("data/tinyshakespeare.txt");
  size_t n;
  char *text = read_all(text_path, &n);
  if (!text) {
    fprintf(stderr, "cannot read %s (set TYR_ROOT or pass --text)\n", text_path);
    return 1;
  }
  printf("text: %s, %.2f MB; %d threads available\n", text_path, (double)n / 1e6, threads);

  /* training */
  tyr_tokenizer *trained = NULL;
  for (int times = 1; times <= 4; times *= 4) {
    char *big = repeat(text, n, times);
    double t0 = now(), c0 = cpu();
    tyr_bpe_trainer *tr = tyr_bpe_trainer_init(NULL);
    tyr_bpe_trainer_add(tr, big, n * (size_t)times);
    double t1 = now(), c1 = cpu();
    tyr_tokenizer *t = tyr_bpe_trainer_finish(tr, 4096, tyr_tokenizer_chat_specials,
                                              TYR_TOKENIZER_N_CHAT_SPECIALS);
    double t2 = now(), c2 = cpu();
    printf("train vocab 4096 on %.2f MB (%llu distinct chunks): split+count %.3f s (cpu %.3f s), "
           "merges %.3f s (cpu %.3f s), total %.3f s\n",
           (double)n * times / 1e6, (unsigned long long)tyr_bpe_trainer_n_chunks(tr), t1 - t0,
           c1 - c0, t2 - t1, c2 - c1, t2 - t0);
    tyr_bpe_trainer_free(tr);
    if (!trained)
      trained = t;
    else
      tyr_tokenizer_free(t);
    free(big);
  }

  /* encode / decode */
  char *big = repeat(text, n, 8);
  const char *names[3] = {"trained-4096 (GPT-4 split)", "gpt2", "cl100k_base"};
  tyr_tokenizer *toks[3] = {trained, NULL, NULL};
  const char *gpt2 = root_path("tests/data/tokenizer/gpt2.tiktoken.zst");
  const char *cl100k = root_path("tests/data/tokenizer/cl100k_base.tiktoken.zst");
  const char *eot[1] = {"<|endoftext|>"};
  double l0 = now();
  FILE *probe = fopen(gpt2, "rb");
  if (probe) {
    fclose(probe);
    toks[1] = tyr_tokenizer_load_tiktoken(gpt2, TYR_TOKENIZER_PATTERN_GPT2, eot, NULL, 1);
    double l1 = now();
    toks[2] = tyr_tokenizer_load_tiktoken(cl100k, TYR_TOKENIZER_PATTERN_GPT4, eot, NULL, 1);
    double l2 = now();
    printf("load: gpt2 ranks %.3f s, cl100k ranks %.3f s (zstd text, with the pair table)\n",
           l1 - l0, l2 - l1);
  } else {
    printf("(no rank files under %s: gpt2 and cl100k skipped)\n", gpt2);
  }
  for (int k = 0; k < 3; k++) {
    if (!toks[k]) continue;
    printf("%s (vocab %d):\n", names[k], tyr_tokenizer_vocab_size(toks[k]));
    measure("shakespeare", toks[k], text, n, 1);
    measure("shakespeare x8", toks[k], big, n * 8, threads);
    tyr_tokenizer_free(toks[k]);
  }
  free(big);
  free(text);
  return 0;
}
