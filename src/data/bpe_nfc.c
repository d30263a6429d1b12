/* Unicode NFC for tokenizers whose tokenizer.json normalizes with NFC
 * (Qwen2 and Qwen3): ICU's normalizer (libicu, Debian's libicu-dev) when
 * the build found it.  Tyr does not carry Unicode's composition tables
 * itself: a build without ICU encodes the text as it is (the same ids for
 * text already in NFC, which is what keyboards and most files produce) and
 * says so once on stderr the first time text outside ASCII meets an NFC
 * tokenizer. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "data/bpe_internal.h"

#ifdef TYR_HAVE_ICU
#include <unicode/unorm2.h>
#include <unicode/ustring.h>
#endif

int bpe_set_nfc(tyr_site s, const char *op, const char *name, tyr_tokenizer *t) {
  (void)s;
  (void)op;
  (void)name;
  t->nfc = true;
  return 0;
}

int bpe_nfc(tyr_site s, const char *op, const uint8_t *text, size_t len, uint8_t **out,
            size_t *out_len) {
  *out = NULL;
  *out_len = 0;
  size_t i = 0;
  while (i < len && text[i] < 0x80) i++;
  if (i == len) return 0; /* ASCII is NFC */
#ifdef TYR_HAVE_ICU
  if (len > (size_t)INT32_MAX / 4)
    return tyr_raise(TYR_ERR_ARG, s, op, "text of %zu bytes is too long to normalize", len);
  UErrorCode e = U_ZERO_ERROR;
  const UNormalizer2 *nfc = unorm2_getNFCInstance(&e);
  if (U_FAILURE(e)) return tyr_raise(TYR_ERR_STATE, s, op, "ICU: %s", u_errorName(e));
  /* UTF-8 -> UTF-16 (invalid bytes: U+FFFD, so such text is kept as it is) */
  int32_t n16 = 0;
  UChar *u = malloc(((size_t)len + 1) * sizeof *u);
  UChar *v = malloc(((size_t)len * 3 + 16) * sizeof *v);
  if (!u || !v) {
    free(u);
    free(v);
    return tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
  }
  int32_t nsub = 0;
  u_strFromUTF8WithSub(u, (int32_t)len + 1, &n16, (const char *)text, (int32_t)len, 0xfffd, &nsub,
                       &e);
  int rc = 0;
  if (U_FAILURE(e) || nsub > 0) goto keep; /* not valid UTF-8: normalized by nobody */
  if (unorm2_isNormalized(nfc, u, n16, &e) && U_SUCCESS(e)) goto keep;
  e = U_ZERO_ERROR;
  int32_t m16 = unorm2_normalize(nfc, u, n16, v, (int32_t)len * 3 + 16, &e);
  if (U_FAILURE(e)) {
    rc = tyr_raise(TYR_ERR_STATE, s, op, "ICU NFC: %s", u_errorName(e));
    goto keep;
  }
  int32_t n8 = 0;
  uint8_t *o = malloc((size_t)m16 * 3 + 1);
  if (!o) {
    rc = tyr_raise(TYR_ERR_MEMORY, s, op, "out of host memory");
    goto keep;
  }
  u_strToUTF8((char *)o, m16 * 3 + 1, &n8, v, m16, &e);
  if (U_FAILURE(e)) {
    free(o);
    rc = tyr_raise(TYR_ERR_STATE, s, op, "ICU: %s", u_errorName(e));
    goto keep;
  }
  *out = o;
  *out_len = (size_t)n8;
keep:
  free(u);
  free(v);
  return rc;
#else
  static atomic_flag said = ATOMIC_FLAG_INIT;
  if (!atomic_flag_test_and_set(&said))
    fprintf(stderr,
            "tyr: warning: %s: this tokenizer normalizes text to Unicode NFC, and Tyr was "
            "built without ICU (libicu-dev): text is encoded as it is, which gives the same ids "
            "only for text already in NFC\n",
            op);
  (void)s;
  return 0;
#endif
}
