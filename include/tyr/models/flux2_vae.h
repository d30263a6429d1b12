/* tyr/models/flux2_vae.h - the FLUX.2 autoencoder's decoder: packed latents
 * (the transformer's [B, h w, 4 z] tokens) to RGB images.
 *
 *   z = tokens * sqrt(bn.running_var + 1e-4) + bn.running_mean   (BatchNorm undone)
 *   z = unpack 2x2: [B, h w, (c, i, j)] -> [B, z, 2h, 2w]
 *   post_quant_conv (1x1), conv_in (3x3 -> ch * mult[-1])
 *   mid: resnet, attention (one head over all pixels), resnet
 *   up levels from the deepest: (num_res_blocks + 1) resnets each, then a
 *   2x nearest upsample + 3x3 conv (all but the last level)
 *   GroupNorm, SiLU, conv_out (3x3 -> 3)                    [B, 3, 16h, 16w]
 *
 * A resnet is x + conv2(silu(gn2(conv1(silu(gn1(x)))))), with a 1x1
 * nin_shortcut on x where the width changes.  GroupNorm: 32 groups, eps
 * 1e-6.  Names follow BFL's ae.safetensors (bn.running_mean,
 * decoder.post_quant_conv.weight, decoder.conv_in.weight,
 * decoder.mid.block_1.norm1.weight, decoder.mid.attn_1.q.weight,
 * decoder.up.<level>.block.<j>.conv1.weight, decoder.up.<level>.upsample.conv.weight,
 * decoder.norm_out.weight, decoder.conv_out.weight, ...); diffusers' vae/
 * (decoder.mid_block.resnets.0..., decoder.up_blocks.<3 - level>...,
 * post_quant_conv, attention linears) is mapped onto them.  The encoder's
 * tensors in either file are skipped. */
#ifndef TYR_MODELS_FLUX2_VAE_H
#define TYR_MODELS_FLUX2_VAE_H
#include "tyr/params.h"
#include "tyr/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tyr_flux2_vae_config {
  char name[16];          /* "flux2" or "tiny" */
  int64_t z_channels;     /* 32 */
  int64_t ch;             /* 128 */
  int64_t ch_mult[4];     /* 1, 2, 4, 4: up levels 512, 512, 256, 128 */
  int64_t num_res_blocks; /* 2 (3 resnets per up level) */
  int64_t groups;         /* GroupNorm groups: 32 */
  double eps;             /* GroupNorm eps: 1e-6 */
  double bn_eps;          /* 1e-4 */
} tyr_flux2_vae_config;

/* "flux2" (the released decoder) or "tiny" (ch 16, mult 1, 1, 2, 2, one
 * resnet block, 8 groups: the tests' config).  False for another name. */
bool tyr_flux2_vae_config_named(const char *name, tyr_flux2_vae_config *out);

typedef struct tyr_flux2_vae {
  tyr_flux2_vae_config cfg;
  tyr_params params; /* BFL names; bn.running_mean and _var are f32 */
  tyr_dtype dtype;   /* of the weights */
  tyr_dtype compute; /* dtype, but f32 for bf16/f16 on the CPU */
  tyr_device device;
} tyr_flux2_vae;

/* Random weights from Philox(seed) (convs ~ N(0, 1/sqrt(fan in)), norms
 * 1 and 0, running_mean ~ N(0, 0.1), running_var ~ U(0.5, 1.5)). */
int tyr_flux2_vae_init_random_at(tyr_site s, tyr_flux2_vae *v, const tyr_flux2_vae_config *cfg,
                                 tyr_dtype dtype, tyr_device dev, uint64_t seed);
#define tyr_flux2_vae_init_random(v, cfg, dtype, dev, seed)                                        \
  tyr_flux2_vae_init_random_at(TYR_SITE, (v), (cfg), (dtype), (dev), (seed))
/* path: ae.safetensors (BFL), a diffusers vae/ directory, or a diffusers
 * root holding vae/.  Missing and unexpected tensors are listed. */
int tyr_flux2_vae_load_at(tyr_site s, tyr_flux2_vae *v, const char *path,
                          const tyr_flux2_vae_config *cfg, tyr_dtype dtype, tyr_device dev);
#define tyr_flux2_vae_load(v, path, cfg, dtype, dev)                                               \
  tyr_flux2_vae_load_at(TYR_SITE, (v), (path), (cfg), (dtype), (dev))
/* The decoder's config read from the weights at path (as load takes it):
 * z channels, width, multipliers, resnets per level; GroupNorm groups are
 * FLUX.2's 32 (ch / 2 for test models narrower than 64).  "flux2" when it is
 * the released one, "custom" otherwise.  0 or the status having raised. */
int tyr_flux2_vae_config_from_weights_at(tyr_site s, const char *path, tyr_flux2_vae_config *out);
#define tyr_flux2_vae_config_from_weights(path, out)                                               \
  tyr_flux2_vae_config_from_weights_at(TYR_SITE, (path), (out))
void tyr_flux2_vae_free(tyr_flux2_vae *v);

/* tokens [B, h w, 4 z] (any float dtype and device) -> images
 * [B, 3, 16 h, 16 w] in v's compute dtype on v's device (about [-1, 1]). */
tyr_tensor *tyr_flux2_vae_decode_at(tyr_site s, tyr_flux2_vae *v, tyr_tensor *tokens, int64_t h,
                                    int64_t w);
#define tyr_flux2_vae_decode(v, tokens, h, w)                                                      \
  tyr_flux2_vae_decode_at(TYR_SITE, (v), (tokens), (h), (w))
/* An image [3, H, W] (any float dtype or device) to H x W x 3 RGB bytes:
 * clamp(x, -1, 1) mapped to 0..255 as (x + 1) * 127.5, rounded.  rgb
 * holds 3 H W bytes.  0 or the error status. */
int tyr_flux2_image_rgb_at(tyr_site s, tyr_tensor *img, uint8_t *rgb);

#ifdef __cplusplus
}
#endif
#endif
