/* Internals of the BPE tokenizer shared by bpe.c (encode/decode),
 * bpe_io.c (files) and bpe_train.c (training).  Not installed. */
#ifndef TYR_DATA_BPE_INTERNAL_H
#define TYR_DATA_BPE_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdatomic.h>
#include <string.h>

#include "tyr/tokenizer.h"

/* ---- hashing ----------------------------------------------------------------- */
static inline uint64_t bpe_mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

static inline uint64_t bpe_hash(const void *data, size_t n) {
  const uint8_t *p = data;
  uint64_t h = 0x9e3779b97f4a7c15ull ^ ((uint64_t)n * 0xff51afd7ed558ccdull);
  while (n >= 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    h = (h ^ v) * 0xbf58476d1ce4e5b9ull;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
  return bpe_mix64(h ^ v);
}

/* ---- the regular-expression splitter ------------------------------------------
 * Yields the chunks of a text: each match of the pattern, and each run of
 * bytes between matches (which the GPT-2 and GPT-4 patterns only leave for
 * invalid UTF-8) as a chunk of its own, so every byte is in one chunk. */
typedef struct bpe_matcher {
  pcre2_match_data *md;
  pcre2_match_context *mc;
  pcre2_jit_stack *js;
} bpe_matcher;

typedef struct bpe_splitter {
  const pcre2_code *re;
  bool jit;
  bpe_matcher *m;
  const uint8_t *text;
  size_t len, pos;
  size_t pend_s, pend_e; /* a match found after a gap, returned next */
  int err;               /* PCRE2 error code, or 0 */
} bpe_splitter;

/* Compiles pattern (UTF, UCP, invalid UTF allowed) and JIT-compiles it when
 * JIT is available.  On failure raises and returns NULL. */
pcre2_code *bpe_regex_compile(tyr_site s, const char *op, const char *pattern, bool *jit);
/* The same without raising (and without JIT): NULL with PCRE2's message in
 * msg and the offset of the fault, for callers that name the file and line. */
pcre2_code *bpe_regex_try(const char *pattern, char *msg, size_t msg_size, size_t *offset);
bool bpe_matcher_init(bpe_matcher *m, const pcre2_code *re);
void bpe_matcher_free(bpe_matcher *m);
void bpe_split_begin(bpe_splitter *sp, const pcre2_code *re, bool jit, bpe_matcher *m,
                     const uint8_t *text, size_t len);
/* Next chunk [*b, *e); false at the end or on a match error (sp->err). */
bool bpe_split_next(bpe_splitter *sp, size_t *b, size_t *e);

/* ---- the tokenizer ----------------------------------------------------------- */
/* A per-thread workspace: matcher, chunk -> ids cache, merge scratch.  Each
 * tokenizer has a few; encode takes a free one or makes a temporary one. */
#define BPE_NCACHE 8
typedef struct bpe_cache_slot {
  uint64_t h;
  uint32_t off; /* entry offset in the arena + 1; 0 = empty */
  uint32_t len;
} bpe_cache_slot;

/* A direct-mapped cache of chunks of up to 8 bytes (most words) and their
 * ids (up to 5), compared without hashing or touching the token tables. */
#define BPE_FRONT 8192
typedef struct bpe_front {
  uint64_t key; /* the chunk's bytes, little end first */
  uint8_t len;  /* 0: empty */
  uint8_t nids;
  uint32_t ids[5];
} bpe_front;

typedef struct bpe_work {
  bool ready;
  bpe_matcher m;
  bpe_front *front;
  bpe_cache_slot *slots;
  size_t cap, n; /* slots (power of two), entries */
  uint32_t *arena;
  size_t aused, acap; /* in uint32 words */
  /* merge scratch */
  uint32_t *part, *rank, *next, *prev;
  uint64_t *heap;
  size_t scap;
} bpe_work;

typedef struct bpe_tok {
  uint32_t off, len;
} bpe_tok;

typedef struct bpe_tmap_slot {
  uint32_t id1; /* id + 1; 0: empty */
  uint32_t hhi; /* high half of the hash, to skip most compares */
} bpe_tmap_slot;

/* Token bytes are followed by this much padding, so short tokens can be
 * copied with fixed-size moves. */
#define BPE_PAD 16

struct tyr_tokenizer {
  char *pattern;
  pcre2_code *re;
  bool jit;
  /* tokens by id: bytes[tok[id].off ..][.. tok[id].len); len 0: no token */
  uint32_t n_ids;
  bpe_tok *tok;
  uint8_t *kind; /* BPE_NONE, BPE_RANK, BPE_SPECIAL */
  uint8_t *bytes;
  size_t nbytes;
  uint32_t n_ranks;
  uint32_t byte_id[256];
  /* ordinary tokens: bytes -> id (open addressing, id + 1; 0 empty) */
  bpe_tmap_slot *tmap;
  size_t tmap_cap;
  /* pairs: (a << 32 | b) -> id of the concatenation */
  uint64_t *pkeys;
  uint32_t *pvals;
  size_t pcap;
  /* Hugging Face merges (tyr_tokenizer_load_hf): pvals are merge ranks and
   * merge_id[rank] the id of the merged token; NULL: pvals are the ids
   * (tiktoken's rule).  ignore_merges: a chunk that is a token is encoded
   * as that token without merging (always so under tiktoken's rule). */
  uint32_t *merge_id;
  bool ignore_merges;
  /* text is put in Unicode NFC before splitting (tokenizer.json's NFC
   * normalizer; src/data/bpe_nfc.c) */
  bool nfc;
  /* specials, in the order given */
  int n_specials;
  uint32_t *special_ids;
  uint32_t *special_off; /* into bytes */
  uint32_t *special_len;
  uint8_t special_first[256];
  uint32_t special_min_len;
  /* workspaces */
  atomic_flag busy[BPE_NCACHE];
  bpe_work work[BPE_NCACHE];
};

enum { BPE_NONE = 0, BPE_RANK = 1, BPE_SPECIAL = 2 };

/* Builds a tokenizer.  Token i of the n ranked tokens has bytes
 * tok[i][0..tok_len[i]) and rank (= id) ranks[i]; specials as given.  Checks
 * everything (unique ranks and bytes, all 256 single bytes, ids in range,
 * special names) and raises with "name: ..." on failure.  Copies all. */
tyr_tokenizer *bpe_build(tyr_site s, const char *op, const char *name, const char *pattern,
                         const uint8_t *const *tok, const uint32_t *tok_len, const uint32_t *ranks,
                         size_t n, const char *const *specials, const uint32_t *special_lens,
                         const uint32_t *special_ids, int n_specials);

/* The same, with the file line of each ranked token for messages. */
tyr_tokenizer *bpe_build_lines(tyr_site s, const char *op, const char *name, const char *pattern,
                               const uint8_t *const *tok, const uint32_t *tok_len,
                               const uint32_t *ranks, const size_t *lines, size_t n,
                               const char *const *specials, const uint32_t *special_lens,
                               const uint32_t *special_ids, int n_specials);

/* Replaces t's pairs by Hugging Face merges: merge r joins tokens a[r]
 * and b[r] (a later duplicate wins, as in the tokenizers library); the
 * concatenation must be a token.  Raises "name: merge N ..." on failure. */
int bpe_set_merges(tyr_site s, const char *op, const char *name, tyr_tokenizer *t,
                   const uint32_t *a, const uint32_t *b, size_t n, bool ignore_merges);

/* Turns on NFC normalization of the text before encoding; 0 or the status. */
int bpe_set_nfc(tyr_site s, const char *op, const char *name, tyr_tokenizer *t);
/* text[0..len) in NFC in a malloc'd buffer (*out, *out_len), or *out NULL
 * when the text is NFC already.  0 or the status. */
int bpe_nfc(tyr_site s, const char *op, const uint8_t *text, size_t len, uint8_t **out,
            size_t *out_len);

/* Looks up the ordinary token with these bytes (hash h = bpe_hash). */
int64_t bpe_token_lookup(const tyr_tokenizer *t, const uint8_t *p, size_t n, uint64_t h);

/* Checks a special token's name: 1..256 bytes, none of them whitespace or
 * control characters.  Returns NULL or what is wrong. */
const char *bpe_special_name_problem(const char *name, size_t len);

/* The saved form of t (docs/tokenizer.md) in a malloc'd buffer. */
char *bpe_serialize(const tyr_tokenizer *t, size_t *len);

/* Base64 (standard alphabet, padded). */
size_t bpe_b64_encode(const uint8_t *in, size_t n, char *out);
/* Strict decode: returns the byte count or -1. out needs n/4*3 bytes. */
int64_t bpe_b64_decode(const char *in, size_t n, uint8_t *out);

/* Chunks longer than this are merged with a heap instead of by scanning
 * (the fuzzer compares the two). */
extern size_t tyr__bpe_scan_max;
/* Whether encode uses the chunk -> ids cache (the fuzzer turns it off). */
extern bool tyr__bpe_use_cache;
/* Bytes read by tyr_bpe_trainer_add_file per block (tests lower it). */
extern size_t tyr__bpe_file_block;
/* Largest tokenizer file, after decompression (the fuzzer lowers it). */
extern size_t tyr__bpe_max_file;
/* Longest split pattern a file may hold. */
#define BPE_MAX_PATTERN 65536

#endif
