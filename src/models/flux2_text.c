/* FLUX.2 [klein]'s text stage (tyr/models/qwen3.h): the prompt in Qwen3's
 * chat template, tokenized and padded on the right, through the Qwen3
 * encoder to three stacked hidden states. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tyr/models/qwen3.h"
#include "tyr/tyr.h"

static const char *const OP = "tyr_flux2_text_encode";

void tyr_flux2_text_layers(int64_t n_layer, int layers[3]) {
  for (int k = 1; k <= 3; k++) layers[k - 1] = (int)((k * n_layer + 3) / 4);
}

char *tyr_qwen3_chat_prompt(const char *prompt) {
  static const char pre[] = "<|im_start|>user\n";
  static const char post[] = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n";
  if (!prompt) return NULL;
  size_t n = strlen(prompt);
  char *out = malloc(sizeof pre + n + sizeof post);
  if (!out) return NULL;
  memcpy(out, pre, sizeof pre - 1);
  memcpy(out + sizeof pre - 1, prompt, n);
  memcpy(out + sizeof pre - 1 + n, post, sizeof post); /* with the NUL */
  return out;
}

int tyr_flux2_text_encode_at(tyr_site s, tyr_qwen3 *m, const tyr_tokenizer *tok, const char *prompt,
                             int64_t max_len, tyr_tensor **features, tyr_tensor **mask,
                             int64_t *n_tokens) {
  if (features) *features = NULL;
  if (mask) *mask = NULL;
  if (!m || !tok || !prompt || !features || !mask)
    return tyr_raise(TYR_ERR_ARG, s, OP, "%s is NULL",
                     !m          ? "the model"
                     : !tok      ? "the tokenizer"
                     : !prompt   ? "the prompt"
                     : !features ? "features"
                                 : "mask");
  if (!prompt[0]) return tyr_raise(TYR_ERR_ARG, s, OP, "the prompt is empty");
  if (max_len <= 0) max_len = TYR_FLUX2_TEXT_LEN;
  if (max_len > (1 << 20))
    return tyr_raise(TYR_ERR_ARG, s, OP, "max_len %lld is too large", (long long)max_len);
  int64_t pad = tyr_tokenizer_special_id(tok, "<|endoftext|>");
  if (pad < 0)
    return tyr_raise(TYR_ERR_ARG, s, OP,
                     "the tokenizer has no <|endoftext|> token to pad with: not Qwen's tokenizer");
  const char *need[] = {"<|im_start|>", "<|im_end|>"};
  for (int i = 0; i < 2; i++)
    if (tyr_tokenizer_special_id(tok, need[i]) < 0)
      return tyr_raise(TYR_ERR_ARG, s, OP,
                       "the tokenizer has no %s token: the chat template needs it", need[i]);
  char *text = tyr_qwen3_chat_prompt(prompt);
  if (!text) return tyr_raise(TYR_ERR_MEMORY, s, OP, "out of host memory");
  uint32_t *ids = NULL;
  size_t cap = 0;
  size_t n = tyr_tokenizer_encode_at(s, tok, text, strlen(text), true, &ids, &cap);
  free(text);
  if (n == TYR_TOKENIZER_FAIL) {
    free(ids);
    return tyr_error_last() ? (int)tyr_error_last()->status : TYR_ERR_ARG;
  }
  if ((int64_t)n > max_len) {
    fprintf(stderr,
            "tyr: warning: %s: the prompt is %zu tokens in the chat template, more than %lld: "
            "truncated to %lld tokens\n",
            OP, n, (long long)max_len, (long long)max_len);
    n = (size_t)max_len;
  }
  int64_t *hid = malloc((size_t)max_len * sizeof *hid * 2);
  if (!hid) {
    free(ids);
    return tyr_raise(TYR_ERR_MEMORY, s, OP, "out of host memory");
  }
  int64_t *hmask = hid + max_len;
  for (int64_t i = 0; i < max_len; i++) {
    hid[i] = i < (int64_t)n ? (int64_t)ids[i] : pad;
    hmask[i] = i < (int64_t)n;
  }
  free(ids);
  int st = 0;
  tyr_device dev = tyr_qwen3_device(m);
  tyr_tensor *f = NULL, *mk = NULL;
  {
    TYR_SCOPE;
    tyr_tensor *tid = tyr_from_host_at(s, hid, TYR_I64, dev, 2, (int64_t[]){1, max_len});
    mk = tyr_from_host_at(s, hmask, TYR_I64, dev, 2, (int64_t[]){1, max_len});
    int layers[3];
    tyr_flux2_text_layers(tyr_qwen3_config_of(m)->n_layer, layers);
    if (tid && mk) f = tyr_qwen3_hidden_states_at(s, m, tid, mk, layers, 3);
    if (f && mk) {
      tyr_keep_e(f);
      tyr_keep_e(mk);
    } else {
      f = mk = NULL;
      st = tyr_error_last() ? (int)tyr_error_last()->status : TYR_ERR_ARG;
    }
  }
  free(hid);
  if (st) return st;
  /* hand both to the caller's scope, like any new tensor */
  *features = tyr_clone_at(s, f);
  *mask = tyr_clone_at(s, mk);
  tyr_tensor_free(f);
  tyr_tensor_free(mk);
  if (!*features || !*mask) {
    *features = *mask = NULL;
    return TYR_ERR_MEMORY;
  }
  if (n_tokens) *n_tokens = (int64_t)n;
  return 0;
}
