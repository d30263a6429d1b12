/* tyr/models/cnn.h - a small residual CNN for image classification
 * (ResNet-style, for 28x28 or 32x32 images such as Fashion-MNIST):
 *
 *   stem   conv3x3(in -> width) + BatchNorm + ReLU
 *   stage i (0 .. stages-1), `blocks` basic blocks of width * 2^i channels,
 *          the first block of stage i > 0 with stride 2 and a 1x1
 *          conv + BatchNorm shortcut:
 *            relu(bn2(conv3x3(relu(bn1(conv3x3(x))))) + shortcut(x))
 *   head   global average pool, linear(width * 2^(stages-1) -> classes)
 *
 * Convolutions have no bias (BatchNorm follows each).  Parameter names
 * follow PyTorch's ResNet ("stem.conv.weight", "stages.1.0.bn1.running_mean",
 * "fc.weight"), so bench/torch_cnn.py loads the same safetensors file. */
#ifndef TYR_MODELS_CNN_H
#define TYR_MODELS_CNN_H
#include "tyr/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tyr_cnn_config {
  int64_t in_channels, num_classes, width, stages, blocks;
} tyr_cnn_config;

typedef struct tyr_cnn_block {
  tyr_nn_conv2d conv1, conv2, down; /* down.weight NULL: identity shortcut */
  tyr_nn_batchnorm2d bn1, bn2, down_bn;
} tyr_cnn_block;

typedef struct tyr_cnn {
  tyr_cnn_config cfg;
  tyr_params params; /* parameters and the BatchNorm buffers */
  tyr_nn_mode mode;  /* training (the default) or evaluation */
  tyr_nn_conv2d stem;
  tyr_nn_batchnorm2d stem_bn;
  tyr_cnn_block *blocks; /* stages * blocks */
  tyr_nn_linear fc;
} tyr_cnn;

/* Builds the model with the default dtype and device; 0 or the status. */
int tyr_cnn_init_at(tyr_site s, tyr_cnn *m, const tyr_cnn_config *cfg);
void tyr_cnn_free(tyr_cnn *m);
/* x [B, in_channels, H, W] -> logits [B, num_classes] (H, W >= 2^stages). */
tyr_tensor *tyr_cnn_forward_at(tyr_site s, tyr_cnn *m, tyr_tensor *x);
/* Multiply-adds of one image's forward pass of size h x w (for FLOP rates). */
double tyr_cnn_macs(const tyr_cnn *m, int64_t h, int64_t w);

#define tyr_cnn_init(m, cfg) tyr_cnn_init_at(TYR_SITE, (m), (cfg))
#define tyr_cnn_forward(m, x) tyr_cnn_forward_at(TYR_SITE, (m), (x))

#ifdef __cplusplus
}
#endif
#endif
