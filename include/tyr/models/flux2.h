/* tyr/models/flux2.h - the FLUX.2 [klein] rectified-flow transformer (Black
 * Forest Labs, Apache-2.0) and its sampler.
 *
 * Inputs: packed image latents img [B, N, 128] (N = h w tokens, each a 2x2
 * patch of the VAE's 32-channel latent, flattened (c, i, j)), text features
 * txt [B, L, context_dim] (Qwen3 hidden states of layers 9, 18, 27 side by
 * side) and the time t [B] in [0, 1].  Output: the velocity [B, N, 128].
 *
 *   vec = time_in(timestep_embedding(1000 t, 256))        (MLP: linear, SiLU, linear)
 *   img = img_in(img), txt = txt_in(txt)
 *   5 double blocks: each stream x += g1 * attn((1 + s1) LN(x) + b1),
 *                                  x += g2 * mlp((1 + s2) LN(x) + b2),
 *                    the attention running over [txt, img] together
 *   20 single blocks on [txt, img]: x += g * linear2([attn(h), swiglu(h)])
 *                    with h = (1 + s) LN(x) + b, q, k, v and the MLP input
 *                    from one linear1
 *   out = final_linear((1 + scale) LN(img) + shift)
 *
 * The modulations (shift b, scale s, gate g) are computed once from vec by
 * three bias-free linears shared by all blocks (double_stream_modulation_img,
 * _txt: 6 vectors; single_stream_modulation: 3) and the final layer's
 * adaLN_modulation (shift, scale).  LN is LayerNorm without affine (eps
 * 1e-6); q and k pass an RMSNorm with a learned scale per head dim; the
 * MLPs are SwiGLU (silu(a) * b, a and b the two halves of the first
 * linear).  Rotary embeddings on 4 axes of 32 dims (theta 2000, each pair
 * of adjacent dims rotated): image token (i, j) has position (0, i, j, 0),
 * text token l has (0, 0, 0, l).  No linear has a bias.
 *
 * Parameter names are the BFL single-file layout's
 * (flux-2-klein-4b.safetensors): img_in.weight, txt_in.weight,
 * time_in.in_layer.weight, time_in.out_layer.weight,
 * double_stream_modulation_img.lin.weight, double_stream_modulation_txt.lin.weight,
 * single_stream_modulation.lin.weight,
 * double_blocks.N.{img,txt}_attn.qkv.weight, .._attn.norm.{query,key}_norm.scale,
 * .._attn.proj.weight, double_blocks.N.{img,txt}_mlp.{0,2}.weight,
 * single_blocks.N.linear1.weight, .linear2.weight, .norm.{query,key}_norm.scale,
 * final_layer.adaLN_modulation.1.weight, final_layer.linear.weight.
 * The diffusers layout (transformer/diffusion_pytorch_model*.safetensors)
 * is mapped onto them on loading (src/models/flux2.c lists the rules). */
#ifndef TYR_MODELS_FLUX2_H
#define TYR_MODELS_FLUX2_H
#include "tyr/params.h"
#include "tyr/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tyr_flux2_config {
  char name[16];        /* "klein-4b", "tiny" or "custom" */
  int64_t hidden;       /* 3072 */
  int64_t heads;        /* 24 (hidden = heads * head_dim) */
  int64_t depth;        /* double-stream blocks: 5 */
  int64_t depth_single; /* single-stream blocks: 20 */
  int64_t mlp_hidden;   /* SwiGLU width: 3 * hidden */
  int64_t in_channels;  /* 128: 32 latent channels x 2 x 2 */
  int64_t context_dim;  /* text feature width: 7680 = 3 x 2560 */
  int64_t axes_dim[4];  /* rotary dims per axis (sum = head dim): 32 each */
  double theta;         /* rotary base: 2000 */
  double eps;           /* LayerNorm and QK RMSNorm eps: 1e-6 */
} tyr_flux2_config;

/* "klein-4b" (the released model: 3072 wide, 24 heads, 5 + 20 blocks,
 * context 7680) or "tiny" (64 wide, 2 heads of 32, 1 + 2 blocks, context
 * 192, axes 8 each: the tests' config).  False for another name. */
bool tyr_flux2_config_named(const char *name, tyr_flux2_config *out);
/* Raises naming the field that is wrong (heads not dividing hidden, axes
 * not summing to the head dim, an odd axis, ...). */
int tyr_flux2_config_check_at(tyr_site s, const tyr_flux2_config *c);
#define tyr_flux2_config_check(c) tyr_flux2_config_check_at(TYR_SITE, (c))

typedef struct tyr_flux2 {
  tyr_flux2_config cfg;
  tyr_params params; /* BFL names, in the order listed above */
  tyr_dtype dtype;   /* of the parameters (bf16 for the released weights) */
  tyr_dtype compute; /* of the activations: dtype, but f32 for bf16/f16 on the CPU
                        (each weight converted as its block runs) */
  tyr_device device;
  /* the weight files mapped read-only (CPU loads): parameters whose stored
     dtype and shape are the model's are views of them, not copies */
  void **maps;
  size_t *map_sizes;
  int nmaps;
} tyr_flux2;

/* Allocates the parameters (dtype on dev) and fills them from Philox(seed):
 * linears ~ N(0, 1/sqrt(in)), norm scales 1 (for tests and for speed runs
 * without weights).  Returns 0 or the error status (m is then empty). */
int tyr_flux2_init_random_at(tyr_site s, tyr_flux2 *m, const tyr_flux2_config *cfg, tyr_dtype dtype,
                             tyr_device dev, uint64_t seed);
#define tyr_flux2_init_random(m, cfg, dtype, dev, seed)                                            \
  tyr_flux2_init_random_at(TYR_SITE, (m), (cfg), (dtype), (dev), (seed))
/* Loads released weights: path is a .safetensors file (BFL's
 * flux-2-klein-4b.safetensors), a diffusers "transformer" directory
 * (diffusion_pytorch_model.safetensors or its sharded index), or a
 * diffusers model root holding transformer/.  The layout is recognised by
 * its names; diffusers' to_q/to_k/to_v are merged into qkv and the halves
 * of norm_out.linear swapped (diffusers stores scale before shift).
 * Every tensor is checked against cfg before anything is read: the error
 * names the file and lists the missing and unexpected tensors and wrong
 * shapes.  Tensors are cast to dtype (bf16 from the file stays bf16).  On
 * the CPU the files are memory-mapped and every tensor that needs no
 * conversion (all of them for a BFL bf16 file and dtype bf16) is used where
 * it lies, without a copy. */
int tyr_flux2_load_at(tyr_site s, tyr_flux2 *m, const char *path, const tyr_flux2_config *cfg,
                      tyr_dtype dtype, tyr_device dev);
#define tyr_flux2_load(m, path, cfg, dtype, dev)                                                   \
  tyr_flux2_load_at(TYR_SITE, (m), (path), (cfg), (dtype), (dev))
/* The config of the weights at path (as tyr_flux2_load takes it), read from
 * their shapes: width, heads (head dim from the query norms, in 4 equal
 * rotary axes), block counts, MLP width, context width; theta and eps are
 * FLUX.2's.  Named "klein-4b" when it is that one, "custom" otherwise (the
 * 9B, or a test model).  0 or the status having raised. */
int tyr_flux2_config_from_weights_at(tyr_site s, const char *path, tyr_flux2_config *out);
#define tyr_flux2_config_from_weights(path, out)                                                   \
  tyr_flux2_config_from_weights_at(TYR_SITE, (path), (out))
void tyr_flux2_free(tyr_flux2 *m);
/* The parameter called name (NULL when absent). */
tyr_tensor *tyr_flux2_param(const tyr_flux2 *m, const char *name);

/* img [B, h w, in_channels], txt [B, L, context_dim] (any float dtype, on
 * m's device), t [B] (any device) -> the velocity [B, h w, in_channels] in
 * m's compute dtype (h, w: the latent grid in tokens, image height / 16 and
 * width / 16).  t is rounded to m's dtype first, as the reference does. */
tyr_tensor *tyr_flux2_forward_at(tyr_site s, tyr_flux2 *m, tyr_tensor *img, tyr_tensor *txt,
                                 tyr_tensor *t, int64_t h, int64_t w);
#define tyr_flux2_forward(m, img, txt, t, h, w)                                                    \
  tyr_flux2_forward_at(TYR_SITE, (m), (img), (txt), (t), (h), (w))

/* ---- the sampler ----------------------------------------------------------
 * FLUX.2's schedule: t_i = linspace(1, 0, steps + 1) shifted by
 *   t' = e^mu / (e^mu + (1/t - 1))
 * with the empirical mu: for more than 4300 image tokens a2 n + b2, else the
 * line through (10 steps, a1 n + b1) and (200 steps, a2 n + b2) at steps
 * (a1 8.73809524e-5, b1 1.89833333, a2 1.6927e-4, b2 0.45666666). */
double tyr_flux2_empirical_mu(int64_t image_tokens, int steps);
/* Writes steps + 1 times (from 1 down to 0) to t; returns mu. */
double tyr_flux2_schedule(int steps, int64_t image_tokens, double *t);
/* The start latents [B, h w, in_channels] ~ N(0, 1) from Philox(seed): the
 * same numbers on every device (drawn on the CPU in f32, then cast to the
 * compute dtype and copied).  The global generator is left as it was. */
tyr_tensor *tyr_flux2_noise_at(tyr_site s, const tyr_flux2 *m, int64_t B, int64_t h, int64_t w,
                               uint64_t seed);
#define tyr_flux2_noise(m, B, h, w, seed) tyr_flux2_noise_at(TYR_SITE, (m), (B), (h), (w), (seed))
/* One Euler step: x + (t_next - t_cur) * v(x, t_cur), a new tensor. */
tyr_tensor *tyr_flux2_euler_step_at(tyr_site s, tyr_flux2 *m, tyr_tensor *x, tyr_tensor *txt,
                                    double t_cur, double t_next, int64_t h, int64_t w);
#define tyr_flux2_euler_step(m, x, txt, tc, tn, h, w)                                              \
  tyr_flux2_euler_step_at(TYR_SITE, (m), (x), (txt), (tc), (tn), (h), (w))

#ifdef __cplusplus
}
#endif
#endif
