/* tyr/ops_conv.h - convolutions and image ops: conv1d, conv2d, conv3d and
 * conv_transpose2d (stride, padding, dilation, groups, optional bias),
 * max / average / adaptive average pooling, batch norm (training with
 * running statistics, evaluation), group norm and instance norm.
 *
 * Layouts are PyTorch's: images [N, C, H, W], sequences [N, C, L];
 * conv weights [K, C / groups, R, S] (conv1d [K, C / groups, R]);
 * conv_transpose weights [C, K / groups, R, S].
 *
 * The output size of a convolution or pooling along one dim is
 *   out = (in + 2 pad - dil (k - 1) - 1) / stride + 1
 * (TYR_CONV_OUT), and for a transposed convolution
 *   out = (in - 1) stride - 2 pad + dil (k - 1) + 1.
 * The typed forms compute it in the result's C type: a constant when the
 * operands' dims and the stride, padding and dilation are constants.  The
 * rules (stride >= 1, kernel no larger than the padded input, channels
 * divisible by groups, ...) fail the build when the compiler can decide
 * them and are checked at the call at run time otherwise.
 *
 * f32 and f64 everywhere, bf16/f16 on the CPU computed in f32.  Every op is
 * differentiable in its float operands (running statistics are buffers:
 * they take no gradient).  Kernels: src/cpu/conv.c (im2col + GEMM, direct
 * loops, OpenMP), src/cuda/conv.cu (cuDNN); shape rules, dispatch and
 * backward: src/ops/conv.c. */
#ifndef TYR_OPS_CONV_H
#define TYR_OPS_CONV_H
#include "tyr/ops_create.h"
#include "tyr/ops_nn.h" /* TYR__OPTIONAL, TYR__CLAIM_OPT */
#include "tyr/typed.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Stride, padding and dilation per spatial dim ([0] is H, [1] is W; conv1d
 * reads [0]) and the number of groups.  A NULL
 * options pointer means stride 1, padding 0, dilation 1, one group. */
typedef struct tyr_conv_opts {
  int64_t stride[2], padding[2], dilation[2];
  int64_t groups;
  int64_t output_padding[2]; /* conv_transpose only: extra size on the high side */
} tyr_conv_opts;
/* Options with the same value on both spatial dims. */
#define TYR_CONV_OPTS(stride_, pad_, dil_, groups_)                                                \
  ((tyr_conv_opts){.stride = {(stride_), (stride_)},                                               \
                   .padding = {(pad_), (pad_)},                                                    \
                   .dilation = {(dil_), (dil_)},                                                   \
                   .groups = (groups_)})

/* conv3d's options: [0] is D, [1] H, [2] W. */
typedef struct tyr_conv3d_opts {
  int64_t stride[3], padding[3], dilation[3];
  int64_t groups;
} tyr_conv3d_opts;
#define TYR_CONV3D_OPTS(stride_, pad_, dil_, groups_)                                              \
  ((tyr_conv3d_opts){.stride = {(stride_), (stride_), (stride_)},                                  \
                     .padding = {(pad_), (pad_), (pad_)},                                          \
                     .dilation = {(dil_), (dil_), (dil_)},                                         \
                     .groups = (groups_)})

/* ---- erased layer ------------------------------------------------------ */
/* x [N, C, D, H, W], w [K, C/g, KD, R, S], b [K] or NULL -> [N, K, OD, OH, OW]
 * (each from TYR_CONV_OUT).  Built from conv2d over depth slices
 * (src/ops/conv3d.c): every backend, dtype and gradient conv2d has. */
tyr_tensor *tyr_conv3d_at(tyr_site s, tyr_tensor *x, tyr_tensor *w, tyr_tensor *b,
                          const tyr_conv3d_opts *o);
/* x [N, C, H, W], w [K, C/g, R, S], b [K] or NULL -> [N, K, P, Q] */
tyr_tensor *tyr_conv2d_at(tyr_site s, tyr_tensor *x, tyr_tensor *w, tyr_tensor *b,
                          const tyr_conv_opts *o);
/* x [N, C, L], w [K, C/g, R], b [K] or NULL -> [N, K, L'] (opts [0] used) */
tyr_tensor *tyr_conv1d_at(tyr_site s, tyr_tensor *x, tyr_tensor *w, tyr_tensor *b,
                          const tyr_conv_opts *o);
/* x [N, C, H, W], w [C, K/g, R, S], b [K] or NULL -> [N, K, H', W'] with
 * H' = (H - 1) stride - 2 pad + dil (R - 1) + output_padding + 1: the
 * gradient of conv2d with respect to its input, as an op. */
tyr_tensor *tyr_conv_transpose2d_at(tyr_site s, tyr_tensor *x, tyr_tensor *w, tyr_tensor *b,
                                    const tyr_conv_opts *o);
/* x [N, C, L], w [C, K/g, R], b [K] or NULL -> [N, K, L'] (options [0]) */
tyr_tensor *tyr_conv_transpose1d_at(tyr_site s, tyr_tensor *x, tyr_tensor *w, tyr_tensor *b,
                                    const tyr_conv_opts *o);

/* Pooling windows of kernel[i], stride[i], padding[i] (padding at most half
 * the kernel).  max_pool2d: the largest element of each window (padding
 * never wins); its backward sends the gradient to the element that won (the
 * first on ties).  avg_pool2d: the mean over the window, padding counted as
 * zeros (PyTorch's count_include_pad).  x [N, C, H, W] -> [N, C, P, Q]. */
tyr_tensor *tyr_max_pool2d_at(tyr_site s, tyr_tensor *x, const int64_t kernel[2],
                              const int64_t stride[2], const int64_t padding[2]);
tyr_tensor *tyr_avg_pool2d_at(tyr_site s, tyr_tensor *x, const int64_t kernel[2],
                              const int64_t stride[2], const int64_t padding[2]);
/* x [N, C, H, W] -> [N, C, OH, OW]: output cell (i, j) is the mean of rows
 * floor(i H / OH) .. ceil((i + 1) H / OH) - 1 and the same for columns. */
tyr_tensor *tyr_adaptive_avg_pool2d_at(tyr_site s, tyr_tensor *x, int64_t oh, int64_t ow);

/* Batch norm over x [N, C, ...] (rank 2 to 5) per channel C:
 *   y = (x - mean) / sqrt(var + eps) * w + b          (w, b [C] or NULL)
 * training: mean and the biased var of this batch; running_mean and
 * running_var ([C], or NULL) are updated in place as
 *   r = (1 - momentum) r + momentum * stat   (var unbiased there),
 * like PyTorch.  Otherwise the running statistics are used (they must be
 * given).  The running statistics are f32 (f64 for f64 x, also f32 for
 * bf16/f16 x), contiguous, and take no gradient. */
tyr_tensor *tyr_batch_norm_at(tyr_site s, tyr_tensor *x, tyr_tensor *w, tyr_tensor *b,
                              tyr_tensor *running_mean, tyr_tensor *running_var, bool training,
                              double momentum, double eps);
/* Group norm: x [N, C, ...] with C divisible by groups; each sample's
 * channels in groups of C / groups are normalised together, then scaled
 * and shifted per channel by w, b ([C] or NULL). */
tyr_tensor *tyr_group_norm_at(tyr_site s, tyr_tensor *x, int64_t groups, tyr_tensor *w,
                              tyr_tensor *b, double eps);
/* Instance norm: group norm with one group per channel. */
tyr_tensor *tyr_instance_norm_at(tyr_site s, tyr_tensor *x, tyr_tensor *w, tyr_tensor *b,
                                 double eps);

/* ---- rearrangements and resampling (src/ops/image.c) ---------------------
 * pixel_shuffle: [N, C r^2, H, W] -> [N, C, H r, W r] (channel c r^2 + i r + j
 * goes to row h r + i, column w r + j); pixel_unshuffle is its inverse.
 * patchify: [N, C, H, W] -> [N, (H/p)(W/p), C p p], patches in row-major
 * order, each flattened as (c, i, j) (Flux packs latents so with p = 2);
 * unpatchify(x, H, W, p) is its inverse. */
tyr_tensor *tyr_pixel_shuffle_at(tyr_site s, tyr_tensor *x, int64_t r);
tyr_tensor *tyr_pixel_unshuffle_at(tyr_site s, tyr_tensor *x, int64_t r);
tyr_tensor *tyr_patchify_at(tyr_site s, tyr_tensor *x, int64_t p);
tyr_tensor *tyr_unpatchify_at(tyr_site s, tyr_tensor *x, int64_t H, int64_t W, int64_t p);
/* Pads the last two dims of x [..., H, W] by pad = {left, right, top,
 * bottom}: with value (constant) or by reflection without repeating the
 * edge (reflect; each pad smaller than its dim), as PyTorch's F.pad. */
typedef enum tyr_pad_mode { TYR_PAD_CONSTANT, TYR_PAD_REFLECT } tyr_pad_mode;
tyr_tensor *tyr_pad2d_at(tyr_site s, tyr_tensor *x, const int64_t pad[4], tyr_pad_mode mode,
                         double value);
/* Resizes x [N, C, H, W] to [N, C, oh, ow]: nearest (source floor(i in /
 * out), PyTorch's 'nearest') or bilinear (align_corners as PyTorch's). */
typedef enum tyr_interp_mode { TYR_INTERP_NEAREST, TYR_INTERP_BILINEAR } tyr_interp_mode;
tyr_tensor *tyr_interpolate_at(tyr_site s, tyr_tensor *x, int64_t oh, int64_t ow,
                               tyr_interp_mode mode, bool align_corners);
#define tyr_pixel_shuffle_e(x, r) tyr_pixel_shuffle_at(TYR_SITE, (x), (r))
#define tyr_pixel_unshuffle_e(x, r) tyr_pixel_unshuffle_at(TYR_SITE, (x), (r))
#define tyr_patchify_e(x, p) tyr_patchify_at(TYR_SITE, (x), (p))
#define tyr_unpatchify_e(x, H, W, p) tyr_unpatchify_at(TYR_SITE, (x), (H), (W), (p))
#define tyr_pad2d_e(x, l, r, t, b, mode, value)                                                    \
  tyr_pad2d_at(TYR_SITE, (x), (const int64_t[4]){(l), (r), (t), (b)}, (mode), (value))
#define tyr_interpolate_e(x, oh, ow, mode, align_corners)                                          \
  tyr_interpolate_at(TYR_SITE, (x), (oh), (ow), (mode), (align_corners))

#define tyr_conv2d_e(x, w, b, ...) tyr_conv2d_at(TYR_SITE, (x), (w), (b), (__VA_ARGS__))
#define tyr_conv1d_e(x, w, b, ...) tyr_conv1d_at(TYR_SITE, (x), (w), (b), (__VA_ARGS__))
#define tyr_conv3d_e(x, w, b, ...) tyr_conv3d_at(TYR_SITE, (x), (w), (b), (__VA_ARGS__))
#define tyr_conv_transpose1d_e(x, w, b, ...)                                                       \
  tyr_conv_transpose1d_at(TYR_SITE, (x), (w), (b), (__VA_ARGS__))
#define tyr_conv_transpose2d_e(x, w, b, ...)                                                       \
  tyr_conv_transpose2d_at(TYR_SITE, (x), (w), (b), (__VA_ARGS__))
/* square windows: kernel k, stride st, padding p on both dims */
#define tyr_max_pool2d_e(x, k, st, p)                                                              \
  tyr_max_pool2d_at(TYR_SITE, (x), (const int64_t[2]){(k), (k)}, (const int64_t[2]){(st), (st)},   \
                    (const int64_t[2]){(p), (p)})
#define tyr_avg_pool2d_e(x, k, st, p)                                                              \
  tyr_avg_pool2d_at(TYR_SITE, (x), (const int64_t[2]){(k), (k)}, (const int64_t[2]){(st), (st)},   \
                    (const int64_t[2]){(p), (p)})
#define tyr_adaptive_avg_pool2d_e(x, oh, ow) tyr_adaptive_avg_pool2d_at(TYR_SITE, (x), (oh), (ow))
#define tyr_batch_norm_e(x, w, b, rm, rv, training, momentum, eps)                                 \
  tyr_batch_norm_at(TYR_SITE, (x), (w), (b), (rm), (rv), (training), (momentum), (eps))
#define tyr_group_norm_e(x, groups, w, b, eps)                                                     \
  tyr_group_norm_at(TYR_SITE, (x), (groups), (w), (b), (eps))
#define tyr_instance_norm_e(x, w, b, eps) tyr_instance_norm_at(TYR_SITE, (x), (w), (b), (eps))

/* ---- typed layer -------------------------------------------------------- */
/* Output size of a convolution or pooling along one dim (1 where the
 * arguments are invalid; the op's checks reject those). */
#define TYR_CONV_OUT(in, k, stride, pad, dil)                                                      \
  ((stride) > 0 && (in) + 2 * (pad) - (dil) * ((k)-1) - 1 >= 0                                     \
       ? ((in) + 2 * (pad) - (dil) * ((k)-1) - 1) / (stride) + 1                                   \
       : 1)
#define TYR_CONV_TRANSPOSE_OUT(in, k, stride, pad, dil)                                            \
  (((in)-1) * (stride)-2 * (pad) + (dil) * ((k)-1) + 1 > 0                                         \
       ? ((in)-1) * (stride)-2 * (pad) + (dil) * ((k)-1) + 1                                       \
       : 1)

#define tyr__ct_conv2d_rank_msg "tyr_conv2d: x must be [N, C, H, W] and w [K, C/groups, R, S]"
TYR_CT_ERROR(tyr__ct_conv2d_rank, tyr__ct_conv2d_rank_msg);
#define tyr__ct_conv2d_args_msg                                                                    \
  "tyr_conv2d: stride and dilation must be >= 1, padding >= 0, groups >= 1"
TYR_CT_ERROR(tyr__ct_conv2d_args, tyr__ct_conv2d_args_msg);
#define tyr__ct_conv2d_groups_msg                                                                  \
  "tyr_conv2d: channels (C of x, K of w) must be divisible by groups, and w of the dim 1 must "    \
  "be C/groups"
TYR_CT_ERROR(tyr__ct_conv2d_groups, tyr__ct_conv2d_groups_msg);
#define tyr__ct_conv2d_kernel_msg "tyr_conv2d: the kernel (dilated) is larger than the padded input"
TYR_CT_ERROR(tyr__ct_conv2d_kernel, tyr__ct_conv2d_kernel_msg);
#define tyr__ct_conv2d_bias_msg "tyr_conv2d: b must be [K] for w [K, C/groups, R, S]"
TYR_CT_ERROR(tyr__ct_conv2d_bias, tyr__ct_conv2d_bias_msg);
#define tyr__ct_conv3d_rank_msg                                                                    \
  "tyr_conv3d: x must be [N, C, D, H, W] and w [K, C/groups, KD, R, S]"
TYR_CT_ERROR(tyr__ct_conv3d_rank, tyr__ct_conv3d_rank_msg);
#define tyr__ct_conv3d_args_msg                                                                    \
  "tyr_conv3d: stride and dilation must be >= 1, padding >= 0, groups >= 1"
TYR_CT_ERROR(tyr__ct_conv3d_args, tyr__ct_conv3d_args_msg);
#define tyr__ct_conv3d_groups_msg                                                                  \
  "tyr_conv3d: channels (C of x, K of w) must be divisible by groups, and dim 1 of w must be "     \
  "C/groups"
TYR_CT_ERROR(tyr__ct_conv3d_groups, tyr__ct_conv3d_groups_msg);
#define tyr__ct_conv3d_kernel_msg "tyr_conv3d: the kernel (dilated) is larger than the padded input"
TYR_CT_ERROR(tyr__ct_conv3d_kernel, tyr__ct_conv3d_kernel_msg);
#define tyr__ct_conv3d_bias_msg "tyr_conv3d: b must be [K] for w [K, C/groups, KD, R, S]"
TYR_CT_ERROR(tyr__ct_conv3d_bias, tyr__ct_conv3d_bias_msg);
#define tyr__ct_conv1d_rank_msg "tyr_conv1d: x must be [N, C, L] and w [K, C/groups, R]"
TYR_CT_ERROR(tyr__ct_conv1d_rank, tyr__ct_conv1d_rank_msg);
#define tyr__ct_conv1d_args_msg                                                                    \
  "tyr_conv1d: stride and dilation must be >= 1, padding >= 0, groups >= 1"
TYR_CT_ERROR(tyr__ct_conv1d_args, tyr__ct_conv1d_args_msg);
#define tyr__ct_conv1d_groups_msg                                                                  \
  "tyr_conv1d: channels (C of x, K of w) must be divisible by groups, and w of the dim 1 must "    \
  "be C/groups"
TYR_CT_ERROR(tyr__ct_conv1d_groups, tyr__ct_conv1d_groups_msg);
#define tyr__ct_conv1d_kernel_msg "tyr_conv1d: the kernel (dilated) is larger than the padded input"
TYR_CT_ERROR(tyr__ct_conv1d_kernel, tyr__ct_conv1d_kernel_msg);
#define tyr__ct_conv1d_bias_msg "tyr_conv1d: b must be [K] for w [K, C/groups, R]"
TYR_CT_ERROR(tyr__ct_conv1d_bias, tyr__ct_conv1d_bias_msg);
#define tyr__ct_max_pool2d_msg                                                                     \
  "tyr_max_pool2d: x must be [N, C, H, W], kernel and stride >= 1, padding at most half the "      \
  "kernel, the window within the padded input"
TYR_CT_ERROR(tyr__ct_max_pool2d, tyr__ct_max_pool2d_msg);
#define tyr__ct_avg_pool2d_msg                                                                     \
  "tyr_avg_pool2d: x must be [N, C, H, W], kernel and stride >= 1, padding at most half the "      \
  "kernel, the window within the padded input"
TYR_CT_ERROR(tyr__ct_avg_pool2d, tyr__ct_avg_pool2d_msg);
#define tyr__ct_adaptive_avg_pool2d_msg                                                            \
  "tyr_adaptive_avg_pool2d: x must be [N, C, H, W] and the output size positive"
TYR_CT_ERROR(tyr__ct_adaptive_avg_pool2d, tyr__ct_adaptive_avg_pool2d_msg);
#define tyr__ct_batch_norm_msg                                                                     \
  "tyr_batch_norm: x must be [N, C, ...] and w, b, running_mean, running_var [C]"
TYR_CT_ERROR(tyr__ct_batch_norm, tyr__ct_batch_norm_msg);
#define tyr__ct_group_norm_msg                                                                     \
  "tyr_group_norm: x must be [N, C, ...] with C divisible by groups and w, b [C]"
TYR_CT_ERROR(tyr__ct_group_norm, tyr__ct_group_norm_msg);

/* The conv rules on handles x [N, C, H, W] and w [K, C/g, R, S] */
#define TYR__TCONV2D_CHECKS(x, w, st, pad, dil, g)                                                 \
  TYR_RULE(tyr_rank(x) == 4 && tyr_rank(w) == 4, tyr__ct_conv2d_rank);                             \
  TYR_RULE((st) >= 1 && (dil) >= 1 && (pad) >= 0 && (g) >= 1, tyr__ct_conv2d_args);                \
  TYR_RULE((g) >= 1 && TYR__D1(x) % (g) == 0 && TYR__D0(w) % (g) == 0 &&                           \
               TYR__D1(w) * (g) == TYR__D1(x),                                                     \
           tyr__ct_conv2d_groups);                                                                 \
  TYR_RULE(TYR__D2(x) + 2 * (pad) >= (dil) * (TYR__D2(w) - 1) + 1 &&                               \
               TYR__D3(x) + 2 * (pad) >= (dil) * (TYR__D3(w) - 1) + 1,                             \
           tyr__ct_conv2d_kernel)

/* x [N, C, H, W], w [K, C/groups, R, S], b [K] or NULL; square stride,
 * padding and dilation -> [N, K, P, Q] with P, Q from TYR_CONV_OUT */
#define tyr_conv2d(x, w, b, stride, padding, dilation, groups)                                     \
  ({                                                                                               \
    __auto_type tyr__x = (x);                                                                      \
    __auto_type tyr__w = (w);                                                                      \
    __auto_type tyr__b = TYR__OPTIONAL(b, tyr_T(TYR__D0(tyr__w)));                                 \
    TYR__TCONV2D_CHECKS(tyr__x, tyr__w, stride, padding, dilation, groups);                        \
    TYR_RULE(tyr_rank(tyr__b) == 1 && TYR__D0(tyr__b) == TYR__D0(tyr__w), tyr__ct_conv2d_bias);    \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    bool tyr__ok = true;                                                                           \
    tyr_tensor *tyr__ex = TYR__CLAIM(tyr__s, "tyr_conv2d", "x", tyr__x);                           \
    tyr__ok = tyr__ex != NULL;                                                                     \
    tyr_tensor *tyr__ew = tyr__ok ? TYR__CLAIM(tyr__s, "tyr_conv2d", "w", tyr__w) : NULL;          \
    tyr__ok = tyr__ok && tyr__ew != NULL;                                                          \
    tyr_tensor *tyr__eb = TYR__CLAIM_OPT(tyr__s, "tyr_conv2d", "b", tyr__b, tyr__ok);              \
    tyr_conv_opts tyr__o = TYR_CONV_OPTS(stride, padding, dilation, groups);                       \
    (tyr_T(TYR__D0(tyr__x), TYR__D0(tyr__w),                                                       \
           TYR_CONV_OUT(TYR__D2(tyr__x), TYR__D2(tyr__w), stride, padding, dilation),              \
           TYR_CONV_OUT(TYR__D3(tyr__x), TYR__D3(tyr__w), stride, padding, dilation)))(            \
        tyr__ok ? tyr_conv2d_at(tyr__s, tyr__ex, tyr__ew, tyr__eb, &tyr__o) : NULL);               \
  })

/* x [N, C, D, H, W], w [K, C/groups, KD, R, S], b [K] or NULL; the same
 * stride, padding and dilation on the three dims -> [N, K, OD, OH, OW] */
#define tyr_conv3d(x, w, b, stride, padding, dilation, groups)                                     \
  ({                                                                                               \
    __auto_type tyr__x = (x);                                                                      \
    __auto_type tyr__w = (w);                                                                      \
    __auto_type tyr__b = TYR__OPTIONAL(b, tyr_T(TYR__D0(tyr__w)));                                 \
    TYR_RULE(tyr_rank(tyr__x) == 5 && tyr_rank(tyr__w) == 5, tyr__ct_conv3d_rank);                 \
    TYR_RULE((stride) >= 1 && (dilation) >= 1 && (padding) >= 0 && (groups) >= 1,                  \
             tyr__ct_conv3d_args);                                                                 \
    TYR_RULE((groups) >= 1 && TYR__D1(tyr__x) % (groups) == 0 &&                                   \
                 TYR__D0(tyr__w) % (groups) == 0 && TYR__D1(tyr__w) * (groups) == TYR__D1(tyr__x), \
             tyr__ct_conv3d_groups);                                                               \
    TYR_RULE(TYR__D2(tyr__x) + 2 * (padding) >= (dilation) * (TYR__D2(tyr__w) - 1) + 1 &&          \
                 TYR__D3(tyr__x) + 2 * (padding) >= (dilation) * (TYR__D3(tyr__w) - 1) + 1 &&      \
                 TYR__D4(tyr__x) + 2 * (padding) >= (dilation) * (TYR__D4(tyr__w) - 1) + 1,        \
             tyr__ct_conv3d_kernel);                                                               \
    TYR_RULE(tyr_rank(tyr__b) == 1 && TYR__D0(tyr__b) == TYR__D0(tyr__w), tyr__ct_conv3d_bias);    \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    bool tyr__ok = true;                                                                           \
    tyr_tensor *tyr__ex = TYR__CLAIM(tyr__s, "tyr_conv3d", "x", tyr__x);                           \
    tyr__ok = tyr__ex != NULL;                                                                     \
    tyr_tensor *tyr__ew = tyr__ok ? TYR__CLAIM(tyr__s, "tyr_conv3d", "w", tyr__w) : NULL;          \
    tyr__ok = tyr__ok && tyr__ew != NULL;                                                          \
    tyr_tensor *tyr__eb = TYR__CLAIM_OPT(tyr__s, "tyr_conv3d", "b", tyr__b, tyr__ok);              \
    tyr_conv3d_opts tyr__o = TYR_CONV3D_OPTS(stride, padding, dilation, groups);                   \
    (tyr_T(TYR__D0(tyr__x), TYR__D0(tyr__w),                                                       \
           TYR_CONV_OUT(TYR__D2(tyr__x), TYR__D2(tyr__w), stride, padding, dilation),              \
           TYR_CONV_OUT(TYR__D3(tyr__x), TYR__D3(tyr__w), stride, padding, dilation),              \
           TYR_CONV_OUT(TYR__D4(tyr__x), TYR__D4(tyr__w), stride, padding, dilation)))(            \
        tyr__ok ? tyr_conv3d_at(tyr__s, tyr__ex, tyr__ew, tyr__eb, &tyr__o) : NULL);               \
  })

/* x [N, C, L], w [K, C/groups, R], b [K] or NULL -> [N, K, L'] */
#define tyr_conv1d(x, w, b, stride, padding, dilation, groups)                                     \
  ({                                                                                               \
    __auto_type tyr__x = (x);                                                                      \
    __auto_type tyr__w = (w);                                                                      \
    __auto_type tyr__b = TYR__OPTIONAL(b, tyr_T(TYR__D0(tyr__w)));                                 \
    TYR_RULE(tyr_rank(tyr__x) == 3 && tyr_rank(tyr__w) == 3, tyr__ct_conv1d_rank);                 \
    TYR_RULE((stride) >= 1 && (dilation) >= 1 && (padding) >= 0 && (groups) >= 1,                  \
             tyr__ct_conv1d_args);                                                                 \
    TYR_RULE((groups) >= 1 && TYR__D1(tyr__x) % (groups) == 0 &&                                   \
                 TYR__D0(tyr__w) % (groups) == 0 && TYR__D1(tyr__w) * (groups) == TYR__D1(tyr__x), \
             tyr__ct_conv1d_groups);                                                               \
    TYR_RULE(TYR__D2(tyr__x) + 2 * (padding) >= (dilation) * (TYR__D2(tyr__w) - 1) + 1,            \
             tyr__ct_conv1d_kernel);                                                               \
    TYR_RULE(tyr_rank(tyr__b) == 1 && TYR__D0(tyr__b) == TYR__D0(tyr__w), tyr__ct_conv1d_bias);    \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    bool tyr__ok = true;                                                                           \
    tyr_tensor *tyr__ex = TYR__CLAIM(tyr__s, "tyr_conv1d", "x", tyr__x);                           \
    tyr__ok = tyr__ex != NULL;                                                                     \
    tyr_tensor *tyr__ew = tyr__ok ? TYR__CLAIM(tyr__s, "tyr_conv1d", "w", tyr__w) : NULL;          \
    tyr__ok = tyr__ok && tyr__ew != NULL;                                                          \
    tyr_tensor *tyr__eb = TYR__CLAIM_OPT(tyr__s, "tyr_conv1d", "b", tyr__b, tyr__ok);              \
    tyr_conv_opts tyr__o = TYR_CONV_OPTS(stride, padding, dilation, groups);                       \
    (tyr_T(TYR__D0(tyr__x), TYR__D0(tyr__w),                                                       \
           TYR_CONV_OUT(TYR__D2(tyr__x), TYR__D2(tyr__w), stride, padding, dilation)))(            \
        tyr__ok ? tyr_conv1d_at(tyr__s, tyr__ex, tyr__ew, tyr__eb, &tyr__o) : NULL);               \
  })

#define tyr__ct_conv_transpose2d_msg                                                               \
  "tyr_conv_transpose2d: x must be [N, C, H, W], w [C, K/groups, R, S] with C divisible by "       \
  "groups, b [K], stride and dilation >= 1, padding >= 0"
TYR_CT_ERROR(tyr__ct_conv_transpose2d, tyr__ct_conv_transpose2d_msg);
/* x [N, C, H, W], w [C, K/groups, R, S], b [K] or NULL; square options,
 * no output padding -> [N, K, H', W'] with TYR_CONV_TRANSPOSE_OUT */
#define tyr_conv_transpose2d(x, w, b, stride, padding, dilation, groups)                           \
  ({                                                                                               \
    __auto_type tyr__x = (x);                                                                      \
    __auto_type tyr__w = (w);                                                                      \
    __auto_type tyr__b = TYR__OPTIONAL(b, tyr_T(TYR__D1(tyr__w) * (groups)));                      \
    TYR_RULE(tyr_rank(tyr__x) == 4 && tyr_rank(tyr__w) == 4 && (groups) >= 1 &&                    \
                 TYR__D1(tyr__x) == TYR__D0(tyr__w) && TYR__D1(tyr__x) % (groups) == 0 &&          \
                 (stride) >= 1 && (dilation) >= 1 && (padding) >= 0 && tyr_rank(tyr__b) == 1 &&    \
                 TYR__D0(tyr__b) == TYR__D1(tyr__w) * (groups),                                    \
             tyr__ct_conv_transpose2d);                                                            \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    bool tyr__ok = true;                                                                           \
    tyr_tensor *tyr__ex = TYR__CLAIM(tyr__s, "tyr_conv_transpose2d", "x", tyr__x);                 \
    tyr__ok = tyr__ex != NULL;                                                                     \
    tyr_tensor *tyr__ew =                                                                          \
        tyr__ok ? TYR__CLAIM(tyr__s, "tyr_conv_transpose2d", "w", tyr__w) : NULL;                  \
    tyr__ok = tyr__ok && tyr__ew != NULL;                                                          \
    tyr_tensor *tyr__eb = TYR__CLAIM_OPT(tyr__s, "tyr_conv_transpose2d", "b", tyr__b, tyr__ok);    \
    tyr_conv_opts tyr__o = TYR_CONV_OPTS(stride, padding, dilation, groups);                       \
    (tyr_T(TYR__D0(tyr__x), TYR__D1(tyr__w) * (groups),                                            \
           TYR_CONV_TRANSPOSE_OUT(TYR__D2(tyr__x), TYR__D2(tyr__w), stride, padding, dilation),    \
           TYR_CONV_TRANSPOSE_OUT(TYR__D3(tyr__x), TYR__D3(tyr__w), stride, padding, dilation)))(  \
        tyr__ok ? tyr_conv_transpose2d_at(tyr__s, tyr__ex, tyr__ew, tyr__eb, &tyr__o) : NULL);     \
  })

/* pooling with a square window k, stride st, padding p */
#define TYR__TPOOL2D(name, x, k, st, p)                                                            \
  ({                                                                                               \
    __auto_type tyr__x = (x);                                                                      \
    TYR_RULE(tyr_rank(tyr__x) == 4 && (k) >= 1 && (st) >= 1 && (p) >= 0 && 2 * (p) <= (k) &&       \
                 TYR__D2(tyr__x) + 2 * (p) >= (k) && TYR__D3(tyr__x) + 2 * (p) >= (k),             \
             tyr__ct_##name);                                                                      \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ex = TYR__CLAIM(tyr__s, "tyr_" #name, "x", tyr__x);                           \
    (tyr_T(TYR__D0(tyr__x), TYR__D1(tyr__x), TYR_CONV_OUT(TYR__D2(tyr__x), k, st, p, 1),           \
           TYR_CONV_OUT(TYR__D3(tyr__x), k, st, p, 1)))(                                           \
        tyr__ex ? tyr_##name##_at(tyr__s, tyr__ex, (const int64_t[2]){(k), (k)},                   \
                                  (const int64_t[2]){(st), (st)}, (const int64_t[2]){(p), (p)})    \
                : NULL);                                                                           \
  })
#define tyr_max_pool2d(x, k, st, p) TYR__TPOOL2D(max_pool2d, x, k, st, p)
#define tyr_avg_pool2d(x, k, st, p) TYR__TPOOL2D(avg_pool2d, x, k, st, p)

/* x [N, C, H, W] -> [N, C, OH, OW] */
#define tyr_adaptive_avg_pool2d(x, oh, ow)                                                         \
  ({                                                                                               \
    __auto_type tyr__x = (x);                                                                      \
    TYR_RULE(tyr_rank(tyr__x) == 4 && (oh) >= 1 && (ow) >= 1, tyr__ct_adaptive_avg_pool2d);        \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ex = TYR__CLAIM(tyr__s, "tyr_adaptive_avg_pool2d", "x", tyr__x);              \
    (tyr_T(TYR__D0(tyr__x), TYR__D1(tyr__x), oh, ow))(                                             \
        tyr__ex ? tyr_adaptive_avg_pool2d_at(tyr__s, tyr__ex, (oh), (ow)) : NULL);                 \
  })

/* An optional [C] handle of a norm op. */
#define TYR__TNORM_PARAM(p, C, failfn) TYR_RULE(tyr_rank(p) == 1 && TYR__D0(p) == (C), failfn)

/* x [N, C, ...]; w, b, running_mean, running_var [C] or NULL -> x's type */
#define tyr_batch_norm(x, w, b, running_mean, running_var, training, momentum, eps)                \
  ({                                                                                               \
    __auto_type tyr__x = (x);                                                                      \
    __auto_type tyr__w = TYR__OPTIONAL(w, tyr_T(TYR__D1(tyr__x)));                                 \
    __auto_type tyr__b = TYR__OPTIONAL(b, tyr_T(TYR__D1(tyr__x)));                                 \
    __auto_type tyr__rm = TYR__OPTIONAL(running_mean, tyr_T(TYR__D1(tyr__x)));                     \
    __auto_type tyr__rv = TYR__OPTIONAL(running_var, tyr_T(TYR__D1(tyr__x)));                      \
    TYR_RULE(tyr_rank(tyr__x) >= 2, tyr__ct_batch_norm);                                           \
    TYR__TNORM_PARAM(tyr__w, TYR__D1(tyr__x), tyr__ct_batch_norm);                                 \
    TYR__TNORM_PARAM(tyr__b, TYR__D1(tyr__x), tyr__ct_batch_norm);                                 \
    TYR__TNORM_PARAM(tyr__rm, TYR__D1(tyr__x), tyr__ct_batch_norm);                                \
    TYR__TNORM_PARAM(tyr__rv, TYR__D1(tyr__x), tyr__ct_batch_norm);                                \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    bool tyr__ok = true;                                                                           \
    tyr_tensor *tyr__ex = TYR__CLAIM(tyr__s, "tyr_batch_norm", "x", tyr__x);                       \
    tyr__ok = tyr__ex != NULL;                                                                     \
    tyr_tensor *tyr__ew = TYR__CLAIM_OPT(tyr__s, "tyr_batch_norm", "w", tyr__w, tyr__ok);          \
    tyr_tensor *tyr__eb = TYR__CLAIM_OPT(tyr__s, "tyr_batch_norm", "b", tyr__b, tyr__ok);          \
    tyr_tensor *tyr__erm =                                                                         \
        TYR__CLAIM_OPT(tyr__s, "tyr_batch_norm", "running_mean", tyr__rm, tyr__ok);                \
    tyr_tensor *tyr__erv =                                                                         \
        TYR__CLAIM_OPT(tyr__s, "tyr_batch_norm", "running_var", tyr__rv, tyr__ok);                 \
    (__typeof__(tyr__x))(tyr__ok ? tyr_batch_norm_at(tyr__s, tyr__ex, tyr__ew, tyr__eb, tyr__erm,  \
                                                     tyr__erv, (training), (momentum), (eps))      \
                                 : NULL);                                                          \
  })

/* x [N, C, ...] with C % groups == 0; w, b [C] or NULL -> x's type */
#define tyr_group_norm(x, groups, w, b, eps)                                                       \
  ({                                                                                               \
    __auto_type tyr__x = (x);                                                                      \
    __auto_type tyr__w = TYR__OPTIONAL(w, tyr_T(TYR__D1(tyr__x)));                                 \
    __auto_type tyr__b = TYR__OPTIONAL(b, tyr_T(TYR__D1(tyr__x)));                                 \
    TYR_RULE(tyr_rank(tyr__x) >= 2 && (groups) >= 1 && TYR__D1(tyr__x) % (groups) == 0,            \
             tyr__ct_group_norm);                                                                  \
    TYR__TNORM_PARAM(tyr__w, TYR__D1(tyr__x), tyr__ct_group_norm);                                 \
    TYR__TNORM_PARAM(tyr__b, TYR__D1(tyr__x), tyr__ct_group_norm);                                 \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    bool tyr__ok = true;                                                                           \
    tyr_tensor *tyr__ex = TYR__CLAIM(tyr__s, "tyr_group_norm", "x", tyr__x);                       \
    tyr__ok = tyr__ex != NULL;                                                                     \
    tyr_tensor *tyr__ew = TYR__CLAIM_OPT(tyr__s, "tyr_group_norm", "w", tyr__w, tyr__ok);          \
    tyr_tensor *tyr__eb = TYR__CLAIM_OPT(tyr__s, "tyr_group_norm", "b", tyr__b, tyr__ok);          \
    (__typeof__(tyr__x))(tyr__ok ? tyr_group_norm_at(tyr__s, tyr__ex, (groups), tyr__ew, tyr__eb,  \
                                                     (eps))                                        \
                                 : NULL);                                                          \
  })

#define tyr__ct_pixel_shuffle_msg "tyr_pixel_shuffle: x must be [N, C r^2, H, W] with r >= 1"
TYR_CT_ERROR(tyr__ct_pixel_shuffle, tyr__ct_pixel_shuffle_msg);
#define tyr__ct_pixel_unshuffle_msg                                                                \
  "tyr_pixel_unshuffle: x must be [N, C, H, W] with H and W divisible by r"
TYR_CT_ERROR(tyr__ct_pixel_unshuffle, tyr__ct_pixel_unshuffle_msg);
#define tyr__ct_patchify_msg "tyr_patchify: x must be [N, C, H, W] with H and W divisible by p"
TYR_CT_ERROR(tyr__ct_patchify, tyr__ct_patchify_msg);
#define tyr__ct_unpatchify_msg                                                                     \
  "tyr_unpatchify: x must be [N, (H/p)(W/p), C p p] with H and W divisible by p"
TYR_CT_ERROR(tyr__ct_unpatchify, tyr__ct_unpatchify_msg);
#define tyr__ct_pad2d_msg "tyr_pad2d: x must have rank >= 2 and the padding be >= 0"
TYR_CT_ERROR(tyr__ct_pad2d, tyr__ct_pad2d_msg);
#define tyr__ct_interpolate_msg                                                                    \
  "tyr_interpolate: x must be [N, C, H, W] and the output size positive"
TYR_CT_ERROR(tyr__ct_interpolate, tyr__ct_interpolate_msg);

#define TYR__TIMG(name, ctfn, cond, x, type, call)                                                 \
  ({                                                                                               \
    __auto_type tyr__x = (x);                                                                      \
    TYR_RULE(cond, ctfn);                                                                          \
    tyr_site tyr__s = TYR_SITE;                                                                    \
    tyr_tensor *tyr__ex = TYR__CLAIM(tyr__s, "tyr_" #name, "x", tyr__x);                           \
    (type)(tyr__ex ? call : NULL);                                                                 \
  })
/* [N, C r^2, H, W] -> [N, C, H r, W r] */
#define tyr_pixel_shuffle(x, r)                                                                    \
  TYR__TIMG(pixel_shuffle, tyr__ct_pixel_shuffle,                                                  \
            tyr_rank(tyr__x) == 4 && (r) >= 1 && TYR__D1(tyr__x) % ((r) * (r)) == 0, x,            \
            tyr_T(TYR__D0(tyr__x), TYR__D1(tyr__x) / ((r) * (r)), TYR__D2(tyr__x) * (r),           \
                  TYR__D3(tyr__x) * (r)),                                                          \
            tyr_pixel_shuffle_at(tyr__s, tyr__ex, (r)))
/* [N, C, H, W] -> [N, C r^2, H / r, W / r] */
#define tyr_pixel_unshuffle(x, r)                                                                  \
  TYR__TIMG(pixel_unshuffle, tyr__ct_pixel_unshuffle,                                              \
            tyr_rank(tyr__x) == 4 && (r) >= 1 && TYR__D2(tyr__x) % (r) == 0 &&                     \
                TYR__D3(tyr__x) % (r) == 0,                                                        \
            x,                                                                                     \
            tyr_T(TYR__D0(tyr__x), TYR__D1(tyr__x) * (r) * (r), TYR__D2(tyr__x) / (r),             \
                  TYR__D3(tyr__x) / (r)),                                                          \
            tyr_pixel_unshuffle_at(tyr__s, tyr__ex, (r)))
/* [N, C, H, W] -> [N, (H/p)(W/p), C p p] */
#define tyr_patchify(x, p)                                                                         \
  TYR__TIMG(patchify, tyr__ct_patchify,                                                            \
            tyr_rank(tyr__x) == 4 && (p) >= 1 && TYR__D2(tyr__x) % (p) == 0 &&                     \
                TYR__D3(tyr__x) % (p) == 0,                                                        \
            x,                                                                                     \
            tyr_T(TYR__D0(tyr__x), (TYR__D2(tyr__x) / (p)) * (TYR__D3(tyr__x) / (p)),              \
                  TYR__D1(tyr__x) * (p) * (p)),                                                    \
            tyr_patchify_at(tyr__s, tyr__ex, (p)))
/* [N, (H/p)(W/p), C p p] -> [N, C, H, W] */
#define tyr_unpatchify(x, H, W, p)                                                                 \
  TYR__TIMG(unpatchify, tyr__ct_unpatchify,                                                        \
            tyr_rank(tyr__x) == 3 && (p) >= 1 && (H) % (p) == 0 && (W) % (p) == 0 &&               \
                TYR__D1(tyr__x) == ((H) / (p)) * ((W) / (p)) &&                                    \
                TYR__D2(tyr__x) % ((p) * (p)) == 0,                                                \
            x, tyr_T(TYR__D0(tyr__x), TYR__D2(tyr__x) / ((p) * (p)), H, W),                        \
            tyr_unpatchify_at(tyr__s, tyr__ex, (H), (W), (p)))
/* [N, C, H, W] padded by l, r, t, b -> [N, C, H + t + b, W + l + r] */
#define tyr_pad2d(x, l, r, t, b, mode, value)                                                      \
  TYR__TIMG(                                                                                       \
      pad2d, tyr__ct_pad2d, tyr_rank(tyr__x) == 4 && (l) >= 0 && (r) >= 0 && (t) >= 0 && (b) >= 0, \
      x,                                                                                           \
      tyr_T(TYR__D0(tyr__x), TYR__D1(tyr__x), TYR__D2(tyr__x) + (t) + (b),                         \
            TYR__D3(tyr__x) + (l) + (r)),                                                          \
      tyr_pad2d_at(tyr__s, tyr__ex, (const int64_t[4]){(l), (r), (t), (b)}, (mode), (value)))
/* [N, C, H, W] -> [N, C, oh, ow] */
#define tyr_interpolate(x, oh, ow, mode, align_corners)                                            \
  TYR__TIMG(interpolate, tyr__ct_interpolate, tyr_rank(tyr__x) == 4 && (oh) >= 1 && (ow) >= 1, x,  \
            tyr_T(TYR__D0(tyr__x), TYR__D1(tyr__x), oh, ow),                                       \
            tyr_interpolate_at(tyr__s, tyr__ex, (oh), (ow), (mode), (align_corners)))

#ifdef __cplusplus
}
#endif
#endif
