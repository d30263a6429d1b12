/* tyr/tokenizer.h - byte-level BPE tokenizer (tiktoken style).
 *
 * Text is first cut into chunks by a regular expression (PCRE2, UTF + UCP,
 * JIT compiled); each chunk is then encoded on its own by byte-pair merges.
 * Every ordinary token is a byte string with a rank, and the rank is also
 * its id.  A chunk starts as its single bytes; the adjacent pair whose
 * concatenation has the lowest rank is merged, leftmost first on a tie,
 * until no adjacent concatenation is a token.  A chunk that is itself a
 * token is encoded as that token.  This is tiktoken's rule, so a tokenizer
 * loaded from a tiktoken rank file with the same split pattern and special
 * tokens encodes text exactly as tiktoken does.
 *
 * Special tokens (for example "<|bos|>") have ids of their own outside the
 * ranks.  Encoding either recognises them in the text (allow_special) or
 * treats them as plain text.
 *
 * A tokenizer is immutable once made; encode and decode may be called from
 * several threads at once.  The file format is described in
 * docs/tokenizer.md. */
#ifndef TYR_TOKENIZER_H
#define TYR_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tyr/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The GPT-4 (cl100k_base) split pattern: the default. */
#define TYR_TOKENIZER_PATTERN_GPT4                                                                 \
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"                         \
  "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
/* The GPT-2 (r50k_base) split pattern. */
#define TYR_TOKENIZER_PATTERN_GPT2                                                                 \
  "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

/* Returned by encode and decode on failure. */
#define TYR_TOKENIZER_FAIL ((size_t)-1)
/* Ids are below this. */
#define TYR_TOKENIZER_MAX_ID (1u << 24)

/* The chat special tokens, in id order after the ranks of a trained
 * tokenizer: <|bos|>, <|user_start|>, <|user_end|>, <|assistant_start|>,
 * <|assistant_end|>, <|python_start|>, <|python_end|>, <|output_start|>,
 * <|output_end|>. */
#define TYR_TOKENIZER_N_CHAT_SPECIALS 9
extern const char *const tyr_tokenizer_chat_specials[TYR_TOKENIZER_N_CHAT_SPECIALS];

typedef struct tyr_tokenizer tyr_tokenizer;

/* ---- loading and saving -------------------------------------------------- */
/* Loads a tokenizer saved by tyr_tokenizer_save (see docs/tokenizer.md).
 * A file compressed with zstd is recognised by its magic number. */
tyr_tokenizer *tyr_tokenizer_load_at(tyr_site s, const char *path);
#define tyr_tokenizer_load(path) tyr_tokenizer_load_at(TYR_SITE, (path))
/* The same from memory; name is used in error messages. */
tyr_tokenizer *tyr_tokenizer_load_mem_at(tyr_site s, const void *data, size_t n, const char *name);
#define tyr_tokenizer_load_mem(data, n, name)                                                      \
  tyr_tokenizer_load_mem_at(TYR_SITE, (data), (n), (name))

/* Loads a tiktoken rank file (lines "base64token rank", possibly zstd
 * compressed) with the given split pattern (NULL: GPT-4) and special tokens.
 * special_ids may be NULL: the specials then take the ids after the largest
 * rank, in order.  n_specials may be 0. */
tyr_tokenizer *tyr_tokenizer_load_tiktoken_at(tyr_site s, const char *path, const char *pattern,
                                              const char *const *specials,
                                              const uint32_t *special_ids, int n_specials);
#define tyr_tokenizer_load_tiktoken(...) tyr_tokenizer_load_tiktoken_at(TYR_SITE, __VA_ARGS__)
/* The same from memory; name is used in error messages. */
tyr_tokenizer *tyr_tokenizer_load_tiktoken_mem_at(tyr_site s, const void *data, size_t n,
                                                  const char *name, const char *pattern,
                                                  const char *const *specials,
                                                  const uint32_t *special_ids, int n_specials);

/* Loads a Hugging Face tokenizer.json holding a byte-level BPE (model type
 * "BPE" with vocab and merges, a ByteLevel pre-tokenizer, optionally after a
 * Split by a regular expression as Qwen2 and Llama 3 have, optionally an NFC
 * normalizer) and its added tokens, which become the special tokens (matched
 * in the text when encoding with allow_special, as the tokenizers library
 * always does).  Merges apply in the file's order, as the tokenizers library
 * applies them (not tiktoken's rule above).  Features the file may name that
 * Tyr does not compute (other normalizers or pre-tokenizers, byte fallback,
 * dropout, added tokens with lstrip/rstrip/single_word) are refused by name.
 * Such a tokenizer cannot be saved with tyr_tokenizer_save. */
tyr_tokenizer *tyr_tokenizer_load_hf_at(tyr_site s, const char *path);
#define tyr_tokenizer_load_hf(path) tyr_tokenizer_load_hf_at(TYR_SITE, (path))
/* The same from memory; name is used in error messages. */
tyr_tokenizer *tyr_tokenizer_load_hf_mem_at(tyr_site s, const void *data, size_t n,
                                            const char *name);
#define tyr_tokenizer_load_hf_mem(data, n, name)                                                   \
  tyr_tokenizer_load_hf_mem_at(TYR_SITE, (data), (n), (name))

/* Writes t to path (a temporary name in the same directory, then rename).
 * A path ending in ".zst" is written zstd compressed.  Returns 0 or the
 * error status. */
int tyr_tokenizer_save_at(tyr_site s, const tyr_tokenizer *t, const char *path);
#define tyr_tokenizer_save(t, path) tyr_tokenizer_save_at(TYR_SITE, (t), (path))

/* NULL is ignored. */
void tyr_tokenizer_free(tyr_tokenizer *t);

/* ---- encoding and decoding ------------------------------------------------ */
/* Encodes len bytes of text (any bytes; invalid UTF-8 is kept byte for
 * byte) into *ids, which is grown with realloc as needed (*ids may be NULL
 * with *cap 0).  With allow_special, the text of a special token becomes
 * its id; without, it is encoded as plain text.  Returns the number of ids,
 * or TYR_TOKENIZER_FAIL. */
size_t tyr_tokenizer_encode_at(tyr_site s, const tyr_tokenizer *t, const char *text, size_t len,
                               bool allow_special, uint32_t **ids, size_t *cap);
#define tyr_tokenizer_encode(t, text, len, allow_special, ids, cap)                                \
  tyr_tokenizer_encode_at(TYR_SITE, (t), (text), (len), (allow_special), (ids), (cap))
/* The same, appending after the first *n ids of *ids; *n is updated.
 * Returns 0 or the error status. */
int tyr_tokenizer_encode_append_at(tyr_site s, const tyr_tokenizer *t, const char *text, size_t len,
                                   bool allow_special, uint32_t **ids, size_t *cap, size_t *n);
#define tyr_tokenizer_encode_append(t, text, len, allow_special, ids, cap, n)                      \
  tyr_tokenizer_encode_append_at(TYR_SITE, (t), (text), (len), (allow_special), (ids), (cap), (n))

/* Decodes n ids into *out (grown with realloc, with some bytes to spare;
 * always NUL-terminated, the
 * NUL not counted).  Special tokens decode to their text.  Returns the
 * number of bytes, or TYR_TOKENIZER_FAIL on an id that is not a token. */
size_t tyr_tokenizer_decode_at(tyr_site s, const tyr_tokenizer *t, const uint32_t *ids, size_t n,
                               char **out, size_t *cap);
#define tyr_tokenizer_decode(t, ids, n, out, cap)                                                  \
  tyr_tokenizer_decode_at(TYR_SITE, (t), (ids), (n), (out), (cap))

/* ---- queries --------------------------------------------------------------- */
/* One more than the largest id (ranks and specials). */
int tyr_tokenizer_vocab_size(const tyr_tokenizer *t);
/* Number of ordinary (ranked) tokens. */
int tyr_tokenizer_n_ranks(const tyr_tokenizer *t);
int tyr_tokenizer_n_specials(const tyr_tokenizer *t);
/* Name and id of special i (0 <= i < n_specials), in the order given. */
const char *tyr_tokenizer_special(const tyr_tokenizer *t, int i, uint32_t *id);
/* Id of the special token with this name ("<|bos|>"), or -1. */
int64_t tyr_tokenizer_special_id(const tyr_tokenizer *t, const char *name);
/* Id of the ordinary token with these bytes, or -1. */
int64_t tyr_tokenizer_token_id(const tyr_tokenizer *t, const void *bytes, size_t len);
/* Bytes of token id (ordinary or special), or NULL if id is no token. */
const uint8_t *tyr_tokenizer_token_bytes(const tyr_tokenizer *t, uint32_t id, size_t *len);
bool tyr_tokenizer_is_special(const tyr_tokenizer *t, uint32_t id);
const char *tyr_tokenizer_pattern(const tyr_tokenizer *t);

/* ---- training ---------------------------------------------------------------
 * Streaming: init, add any number of texts or files, finish.  Texts are cut
 * into chunks as they are added and only the count of each distinct chunk
 * is kept; finish then merges the most frequent pair (ties: the smallest
 * pair of ids) until the vocabulary is full, updating pair counts only in
 * the chunks that contain the merged pair.  Ids 0..255 are the single
 * bytes; the special tokens take the last ids. */
typedef struct tyr_bpe_trainer tyr_bpe_trainer;

/* pattern NULL: TYR_TOKENIZER_PATTERN_GPT4. */
tyr_bpe_trainer *tyr_bpe_trainer_init_at(tyr_site s, const char *pattern);
#define tyr_bpe_trainer_init(pattern) tyr_bpe_trainer_init_at(TYR_SITE, (pattern))
/* Adds one text (chunks never cross texts).  Returns 0 or the status. */
int tyr_bpe_trainer_add_at(tyr_site s, tyr_bpe_trainer *tr, const char *text, size_t len);
#define tyr_bpe_trainer_add(tr, text, len) tyr_bpe_trainer_add_at(TYR_SITE, (tr), (text), (len))
/* Adds a file (decompressed on the fly when it is zstd), read in blocks of
 * 16 MiB so that a file of any size needs little memory.  A chunk is
 * counted only when 64 KiB of text follow it in the block, and the next
 * block starts where it stopped: the counts are those of the whole file in
 * one text unless a chunk or the pattern's look-ahead spans 64 KiB. */
int tyr_bpe_trainer_add_file_at(tyr_site s, tyr_bpe_trainer *tr, const char *path);
#define tyr_bpe_trainer_add_file(tr, path) tyr_bpe_trainer_add_file_at(TYR_SITE, (tr), (path))
/* Prints progress to stderr while finishing. */
void tyr_bpe_trainer_set_verbose(tyr_bpe_trainer *tr, bool on);
/* Bytes added so far, and distinct chunks seen. */
uint64_t tyr_bpe_trainer_n_bytes(const tyr_bpe_trainer *tr);
uint64_t tyr_bpe_trainer_n_chunks(const tyr_bpe_trainer *tr);
/* Learns vocab_size - n_specials ranks (fewer if the text runs out of
 * pairs) and appends the specials (which may be NULL with n_specials 0).
 * The trainer can be finished again with another size. */
tyr_tokenizer *tyr_bpe_trainer_finish_at(tyr_site s, tyr_bpe_trainer *tr, int vocab_size,
                                         const char *const *specials, int n_specials);
#define tyr_bpe_trainer_finish(tr, vocab_size, specials, n_specials)                               \
  tyr_bpe_trainer_finish_at(TYR_SITE, (tr), (vocab_size), (specials), (n_specials))
void tyr_bpe_trainer_free(tyr_bpe_trainer *tr);

/* One call: trains on n texts with the chat specials.  lens may be NULL for
 * NUL-terminated texts; pattern NULL is GPT-4. */
tyr_tokenizer *tyr_tokenizer_train_at(tyr_site s, const char *const *texts, const size_t *lens,
                                      size_t n, int vocab_size, const char *pattern);
#define tyr_tokenizer_train(texts, lens, n, vocab_size, pattern)                                   \
  tyr_tokenizer_train_at(TYR_SITE, (texts), (lens), (n), (vocab_size), (pattern))

#ifdef __cplusplus
}
#endif
#endif
