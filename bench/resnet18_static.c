/* A ResNet-18 forward pass written with static shapes: every activation's
 * type spells its dims, every conv's output size is computed in the types
 * (TYR_CONV_OUT) and checked when the program is compiled.  It exists to
 * measure what the typed layer costs the compiler at this size
 * (tests/integration/resnet18_compile_time.sh times gcc and clang on it);
 * run, it does one forward pass of a 224x224 image batch on the CPU and
 * prints the time and the logits' shape.
 *
 *   resnet18_static [--batch-1]   (N is the compile-time constant below) */
#include <stdio.h>
#include <time.h>

#include <tyr/tyr.h>

enum { N = 2, IMG = 224, CLASSES = 1000 };

/* conv (no bias) + BatchNorm (training statistics) [+ ReLU] */
#define CBR(x, w, stride, pad) tyr_relu(CB(x, w, stride, pad))
#define CB(x, w, stride, pad)                                                                      \
  tyr_batch_norm(tyr_conv2d(x, w, NULL, stride, pad, 1, 1), NULL, NULL, NULL, NULL, true, 0.1, 1e-5)

/* a basic block: two 3x3 convs and the identity shortcut */
#define BLOCK(x, w1, w2)                                                                           \
  ({                                                                                               \
    __auto_type tyr_b_x = (x);                                                                     \
    __auto_type tyr_b_o = CB(CBR(tyr_b_x, w1, 1, 1), w2, 1, 1);                                    \
    tyr_relu(tyr_add(tyr_b_o, tyr_b_x));                                                           \
  })
/* a downsampling block: the first conv strides 2, the shortcut is a 1x1
 * conv of stride 2 + BatchNorm */
#define DOWN_BLOCK(x, w1, w2, wd)                                                                  \
  ({                                                                                               \
    __auto_type tyr_b_x = (x);                                                                     \
    __auto_type tyr_b_o = CB(CBR(tyr_b_x, w1, 2, 1), w2, 1, 1);                                    \
    tyr_relu(tyr_add(tyr_b_o, CB(tyr_b_x, wd, 2, 0)));                                             \
  })

/* the weights of one stage of C channels whose input has Cin */
#define STAGE_WEIGHTS(s, Cin, C)                                                                   \
  tyr_T(C, Cin, 3, 3) s##_w1 = tyr_randn(C, Cin, 3, 3);                                            \
  tyr_T(C, C, 3, 3) s##_w2 = tyr_randn(C, C, 3, 3);                                                \
  tyr_T(C, C, 3, 3) s##_w3 = tyr_randn(C, C, 3, 3);                                                \
  tyr_T(C, C, 3, 3) s##_w4 = tyr_randn(C, C, 3, 3);                                                \
  tyr_T(C, Cin, 1, 1) s##_wd = tyr_randn(C, Cin, 1, 1)

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(void) {
  TYR_SCOPE;
  TYR_NO_GRAD;
  tyr_T(64, 3, 7, 7) w_stem = tyr_randn(64, 3, 7, 7);
  STAGE_WEIGHTS(s1, 64, 64);
  STAGE_WEIGHTS(s2, 64, 128);
  STAGE_WEIGHTS(s3, 128, 256);
  STAGE_WEIGHTS(s4, 256, 512);
  (void)s1_wd;
  tyr_T(CLASSES, 512) w_fc = tyr_randn(CLASSES, 512);
  tyr_T(CLASSES) b_fc = tyr_zeros(CLASSES);
  tyr_T(N, 3, IMG, IMG) x = tyr_randn(N, 3, IMG, IMG);

  double t0 = now();
  tyr_T(N, 64, 112, 112) stem = CBR(x, w_stem, 2, 3);
  tyr_T(N, 64, 56, 56) pooled = tyr_max_pool2d(stem, 3, 2, 1);
  tyr_T(N, 64, 56, 56) h1 = BLOCK(BLOCK(pooled, s1_w1, s1_w2), s1_w3, s1_w4);
  tyr_T(N, 128, 28, 28) h2 = BLOCK(DOWN_BLOCK(h1, s2_w1, s2_w2, s2_wd), s2_w3, s2_w4);
  tyr_T(N, 256, 14, 14) h3 = BLOCK(DOWN_BLOCK(h2, s3_w1, s3_w2, s3_wd), s3_w3, s3_w4);
  tyr_T(N, 512, 7, 7) h4 = BLOCK(DOWN_BLOCK(h3, s4_w1, s4_w2, s4_wd), s4_w3, s4_w4);
  tyr_T(N, 512) feat = tyr_reshape(tyr_adaptive_avg_pool2d(h4, 1, 1), N, 512);
  tyr_T(N, CLASSES) logits = tyr_linear_bias(feat, w_fc, b_fc);
  double t1 = now();
  tyr_tensor *l = tyr_erase(logits);
  printf("resnet18_static: forward of [%d, 3, %d, %d] in %.3f s -> logits [%lld, %lld]\n", N, IMG,
         IMG, t1 - t0, (long long)l->shape[0], (long long)l->shape[1]);
  return 0;
}
