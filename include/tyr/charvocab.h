/* tyr/charvocab.h - a character-level vocabulary: the distinct Unicode
 * characters of a text, sorted by code point, token id = index.  This is
 * what `tyr_prepare --char` builds and what a character-level model decodes
 * its samples with.
 *
 * Text is UTF-8; an invalid sequence is an error naming the input and the
 * byte offset.  At most 65536 characters (token ids are uint16).
 *
 * Saved as JSON (`meta.json` next to the shards):
 *   {"format": "tyr-char-vocab", "version": 1, "vocab_size": 65,
 *    "chars": ["\n", " ", "!", ...]}
 * where chars[i] is the one-character string of token i. */
#ifndef TYR_CHARVOCAB_H
#define TYR_CHARVOCAB_H

#include <stddef.h>
#include <stdint.h>

#include "tyr/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TYR_CHAR_VOCAB_MAX 65536

typedef struct tyr_char_vocab tyr_char_vocab;

/* An empty vocabulary; add text with tyr_char_vocab_scan. */
tyr_char_vocab *tyr_char_vocab_new_at(tyr_site s);
#define tyr_char_vocab_new() tyr_char_vocab_new_at(TYR_SITE)
/* Frees v; NULL is ignored. */
void tyr_char_vocab_free(tyr_char_vocab *v);

/* Adds the characters of text (len bytes of UTF-8); name is used in
 * messages.  Ids are renumbered in code point order.  Returns 0 or the
 * status (the vocabulary is then unchanged). */
int tyr_char_vocab_scan_at(tyr_site s, tyr_char_vocab *v, const char *name, const char *text,
                           size_t len);
#define tyr_char_vocab_scan(v, name, text, len)                                                    \
  tyr_char_vocab_scan_at(TYR_SITE, (v), (name), (text), (len))

/* Number of characters (ids are 0 .. size - 1). */
int tyr_char_vocab_size(const tyr_char_vocab *v);
/* Code point of token id, or -1. */
int32_t tyr_char_vocab_char(const tyr_char_vocab *v, int id);
/* Token id of code point cp, or -1. */
int tyr_char_vocab_id(const tyr_char_vocab *v, int32_t cp);

/* Encodes text into out (room for len ids is always enough).  Returns the
 * number of ids, or -1 with an error for invalid UTF-8 or a character not
 * in the vocabulary. */
int64_t tyr_char_vocab_encode_at(tyr_site s, const tyr_char_vocab *v, const char *name,
                                 const char *text, size_t len, uint16_t *out);
#define tyr_char_vocab_encode(v, name, text, len, out)                                             \
  tyr_char_vocab_encode_at(TYR_SITE, (v), (name), (text), (len), (out))

/* Writes the UTF-8 text of n ids into out (cap bytes, NUL-terminated when
 * cap > 0); an unknown id becomes U+FFFD.  Returns the length the whole
 * text needs, without the NUL (like snprintf). */
size_t tyr_char_vocab_decode(const tyr_char_vocab *v, const int64_t *ids, int64_t n, char *out,
                             size_t cap);

/* Saves atomically / loads the JSON form.  NULL or non-zero on error. */
int tyr_char_vocab_save_at(tyr_site s, const tyr_char_vocab *v, const char *path);
#define tyr_char_vocab_save(v, path) tyr_char_vocab_save_at(TYR_SITE, (v), (path))
/* A vocabulary read from a file tyr_char_vocab_save wrote (the caller frees
 * it with tyr_char_vocab_free); NULL after raising. */
tyr_char_vocab *tyr_char_vocab_load_at(tyr_site s, const char *path);
#define tyr_char_vocab_load(path) tyr_char_vocab_load_at(TYR_SITE, (path))

#ifdef __cplusplus
}
#endif
#endif
