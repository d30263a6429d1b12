/* FLUX.2 [klein] (tyr/models/flux2.h, tyr/models/flux2_vae.h): the
 * timestep schedule against the published numbers, one transformer call,
 * one Euler step and one VAE decode against the PyTorch twin's outputs
 * (tests/data/flux2, written by bench/torch_flux2.py fixtures from seeded
 * random tiny weights), the BFL and diffusers layouts giving the same
 * model, missing / unexpected tensors listed, the Philox start noise. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tyr/models/flux2.h"
#include "tyr/models/flux2_vae.h"
#include "tyr/cuda.h"
#include "tyr/fileio.h"
#include "tyr/safetensors_map.h"
#include "tyr/tyr.h"

static char path_buf[4][1024];
static const char *fixture(int slot, const char *name) {
  snprintf(path_buf[slot], sizeof path_buf[slot], "%s", tyr_test_data(name));
  return path_buf[slot];
}

/* max |a - b| over two tensors of one shape (any dtype, read as f32) */
static double max_diff(tyr_tensor *a, tyr_tensor *b) {
  TYR_SCOPE;
  assert_int_equal(a->rank, b->rank);
  for (int i = 0; i < a->rank; i++) assert_int_equal(a->shape[i], b->shape[i]);
  tyr_tensor *fa = tyr_contiguous_e(tyr_to_dtype_e(a, TYR_F32));
  tyr_tensor *fb = tyr_contiguous_e(tyr_to_dtype_e(b, TYR_F32));
  const float *pa = tyr_data_ptr(fa), *pb = tyr_data_ptr(fb);
  double m = 0;
  for (int64_t i = 0; i < tyr_numel(fa); i++) {
    double d = fabs((double)pa[i] - (double)pb[i]);
    if (!(d <= m)) m = d; /* NaN propagates */
  }
  return m;
}
static double max_abs(tyr_tensor *a) {
  TYR_SCOPE;
  tyr_tensor *f = tyr_contiguous_e(tyr_to_dtype_e(a, TYR_F32));
  const float *p = tyr_data_ptr(f);
  double m = 0;
  for (int64_t i = 0; i < tyr_numel(f); i++) m = fmax(m, fabs(p[i]));
  return m;
}

static void test_schedule_published(void **state) {
  (void)state;
  double t[5];
  /* 1024x1024: 64 x 64 = 4096 image tokens */
  double mu = tyr_flux2_schedule(4, 4096, t);
  ASSERT_CLOSE(mu, 2.29118, 1e-5, 0);
  const double t1024[5] = {1, 0.967384, 0.908144, 0.767200, 0};
  for (int i = 0; i < 5; i++) ASSERT_CLOSE(t[i], t1024[i], 1e-5, 0);
  /* 512x512: 1024 tokens */
  mu = tyr_flux2_schedule(4, 1024, t);
  ASSERT_CLOSE(mu, 2.03069, 1e-5, 0);
  const double t512[5] = {1, 0.958085, 0.883982, 0.717497, 0};
  for (int i = 0; i < 5; i++) ASSERT_CLOSE(t[i], t512[i], 1e-5, 0);
  /* above 4300 tokens mu is a2 n + b2 whatever the steps */
  ASSERT_CLOSE(tyr_flux2_empirical_mu(10000, 4), 0.00016927 * 10000 + 0.45666666, 1e-12, 0);
  ASSERT_CLOSE(tyr_flux2_empirical_mu(10000, 50), tyr_flux2_empirical_mu(10000, 4), 1e-12, 0);
}

static void test_configs(void **state) {
  (void)state;
  tyr_flux2_config c;
  assert_true(tyr_flux2_config_named("klein-4b", &c));
  assert_int_equal(c.hidden, 3072);
  assert_int_equal(c.heads * 128, c.hidden);
  assert_int_equal(c.mlp_hidden, 9216);
  assert_int_equal(tyr_flux2_config_check(&c), 0);
  assert_false(tyr_flux2_config_named("klein-9000b", &c));
  tyr_flux2_config_named("tiny", &c);
  c.axes_dim[0] = 6;
  EXPECT_TYR_ERROR(tyr_flux2_config_check(&c), "head dim");
  c.axes_dim[0] = 7;
  EXPECT_TYR_ERROR(tyr_flux2_config_check(&c), "even");
  tyr_flux2_vae_config v;
  assert_true(tyr_flux2_vae_config_named("flux2", &v));
  assert_int_equal(v.ch * v.ch_mult[3], 512);
}

static tyr_tensor *io(const char *name) {
  tyr_safetensors *f = tyr_safetensors_open(fixture(3, "flux2/flux2_io.safetensors"));
  assert_non_null(f);
  tyr_tensor *t = tyr_safetensors_load(f, name);
  tyr_safetensors_close(f);
  assert_non_null(t);
  return t;
}

static void load_tiny(tyr_flux2 *m, const char *file) {
  tyr_flux2_config c;
  tyr_flux2_config_named("tiny", &c);
  assert_int_equal(tyr_flux2_load(m, fixture(0, file), &c, TYR_F32, TYR_DEVICE_CPU), 0);
}

static void test_config_from_weights(void **state) {
  (void)state;
  tyr_flux2_config tiny, a, b;
  tyr_flux2_config_named("tiny", &tiny);
  assert_int_equal(tyr_flux2_config_from_weights(fixture(0, "flux2/flux2_tiny.safetensors"), &a),
                   0);
  assert_int_equal(
      tyr_flux2_config_from_weights(fixture(0, "flux2/flux2_tiny_diffusers.safetensors"), &b), 0);
  snprintf(tiny.name, sizeof tiny.name, "custom");
  assert_memory_equal(&a, &tiny, sizeof a);
  assert_memory_equal(&b, &tiny, sizeof b);
  EXPECT_TYR_ERROR(
      tyr_flux2_config_from_weights(fixture(0, "flux2/flux2_vae_tiny.safetensors"), &a),
      "not FLUX.2 transformer weights");
  tyr_flux2_vae_config vt, vr;
  tyr_flux2_vae_config_named("tiny", &vt);
  memset(vt.name, 0, sizeof vt.name);
  snprintf(vt.name, sizeof vt.name, "custom");
  assert_int_equal(
      tyr_flux2_vae_config_from_weights(fixture(0, "flux2/flux2_vae_tiny.safetensors"), &vr), 0);
  assert_memory_equal(&vr, &vt, sizeof vr);
  EXPECT_TYR_ERROR(
      tyr_flux2_vae_config_from_weights(fixture(0, "flux2/flux2_tiny.safetensors"), &vr),
      "not FLUX.2 VAE weights");
}

static void test_forward_matches_twin(void **state) {
  (void)state;
  TYR_SCOPE;
  tyr_flux2 m;
  load_tiny(&m, "flux2/flux2_tiny.safetensors");
  tyr_tensor *v = tyr_flux2_forward(&m, io("img"), io("txt"), io("t"), 2, 3);
  assert_non_null(v);
  double d = max_diff(v, io("velocity")), scale = max_abs(io("velocity"));
  printf("# velocity: max |tyr - torch| %.3g (max |v| %.3g)\n", d, scale);
  assert_true(scale > 0.1);
  assert_true(d < 1e-4 * (1 + scale));
  /* one Euler step of the 4-step schedule from t = 1 */
  double t[5];
  tyr_flux2_schedule(4, 6, t);
  tyr_tensor *x1 = tyr_flux2_euler_step(&m, io("img"), io("txt"), t[0], t[1], 2, 3);
  assert_non_null(x1);
  d = max_diff(x1, io("euler1"));
  printf("# euler step: max |tyr - torch| %.3g\n", d);
  assert_true(d < 1e-4);
  /* the grid must match the tokens */
  EXPECT_TYR_ERROR(tyr_flux2_forward(&m, io("img"), io("txt"), io("t"), 3, 3), "grid 3 x 3");
  tyr_flux2_free(&m);
}

static void test_bf16_close_to_f32(void **state) {
  (void)state;
  TYR_SCOPE;
  tyr_flux2 m;
  tyr_flux2_config c;
  tyr_flux2_config_named("tiny", &c);
  assert_int_equal(
      tyr_flux2_load(&m, fixture(0, "flux2/flux2_tiny.safetensors"), &c, TYR_BF16, TYR_DEVICE_CPU),
      0);
  assert_int_equal(tyr_flux2_param(&m, "img_in.weight")->dtype, TYR_BF16);
  /* a bf16 file read as bf16 on the CPU is used where it lies (mapped, not copied) */
  assert_int_equal(m.nmaps, 1);
  for (int i = 0; i < m.params.n; i++) assert_true(m.params.items[i].t->storage->borrowed);
  tyr_tensor *v = tyr_flux2_forward(&m, tyr_to_dtype_e(io("img"), TYR_BF16),
                                    tyr_to_dtype_e(io("txt"), TYR_BF16), io("t"), 2, 3);
  assert_non_null(v);
  /* bf16 storage on the CPU is computed in f32 (only the inputs were rounded here) */
  assert_int_equal(m.compute, TYR_F32);
  assert_int_equal(v->dtype, TYR_F32);
  double d = max_diff(v, io("velocity")), scale = max_abs(io("velocity"));
  printf("# bf16 velocity: max |tyr - torch f32| %.3g (max |v| %.3g)\n", d, scale);
  assert_true(d < 0.01 * scale);
  tyr_flux2_free(&m);
}

static void test_diffusers_layout_same_model(void **state) {
  (void)state;
  tyr_flux2 a, b;
  load_tiny(&a, "flux2/flux2_tiny.safetensors");
  load_tiny(&b, "flux2/flux2_tiny_diffusers.safetensors");
  assert_int_equal(a.params.n, b.params.n);
  for (int i = 0; i < a.params.n; i++) {
    tyr_tensor *tb = tyr_flux2_param(&b, a.params.items[i].name);
    assert_non_null(tb);
    if (max_diff(a.params.items[i].t, tb) != 0)
      fail_msg("%s differs between the layouts", a.params.items[i].name);
  }
  tyr_flux2_free(&a);
  tyr_flux2_free(&b);
}

/* writes the tiny BFL file without `drop` and with an extra tensor */
static const char *write_broken(const char *drop, const char *extra, const char *int_name) {
  static char out[1024];
  snprintf(out, sizeof out, "%s/flux2_broken.safetensors", tyr_test_tmpdir());
  tyr_safetensors_set *set = tyr_safetensors_set_open(fixture(1, "flux2/flux2_tiny.safetensors"));
  assert_non_null(set);
  int n = tyr_safetensors_set_count(set), k = 0;
  const char **names = calloc((size_t)n + 1, sizeof *names);
  tyr_tensor **ts = calloc((size_t)n + 1, sizeof *ts);
  for (int i = 0; i < n; i++) {
    const char *nm = tyr_safetensors_set_name(set, i);
    if (drop && !strcmp(nm, drop)) continue;
    names[k] = nm;
    ts[k++] = tyr_safetensors_set_load(set, nm);
  }
  if (extra) {
    names[k] = extra;
    ts[k++] = tyr_zeros_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 1, (const int64_t[]){4});
  }
  if (int_name) /* the tensor of that name as integers */
    for (int i = 0; i < k; i++)
      if (!strcmp(names[i], int_name)) {
        tyr_tensor *t = tyr_to_dtype_at(TYR_SITE, ts[i], TYR_I32);
        tyr_keep_e(t);
        tyr_tensor_free(ts[i]);
        ts[i] = t;
      }
  assert_int_equal(tyr_safetensors_save(out, k, names, ts, 0, NULL, NULL), 0);
  for (int i = 0; i < k; i++) tyr_tensor_free(ts[i]);
  free(names);
  free(ts);
  tyr_safetensors_set_close(set);
  return out;
}

static void test_missing_unexpected_listed(void **state) {
  (void)state;
  tyr_flux2 m;
  tyr_flux2_config c;
  tyr_flux2_config_named("tiny", &c);
  const char *p =
      write_broken("single_blocks.1.linear2.weight", "guidance_in.in_layer.weight", NULL);
  EXPECT_TYR_ERROR(tyr_flux2_load(&m, p, &c, TYR_F32, TYR_DEVICE_CPU),
                   "1 tensor(s) missing (single_blocks.1.linear2.weight), 1 unexpected "
                   "(guidance_in.in_layer.weight)");
  /* integer weights are refused, not converted */
  p = write_broken(NULL, NULL, "img_in.weight");
  EXPECT_TYR_ERROR(tyr_flux2_load(&m, p, &c, TYR_F32, TYR_DEVICE_CPU),
                   "tensor img_in.weight is i32: weights must be floating");
  /* the tiny file against the real config: blocks missing, shapes wrong */
  tyr_flux2_config_named("klein-4b", &c);
  EXPECT_TYR_ERROR(
      tyr_flux2_load(&m, fixture(0, "flux2/flux2_tiny.safetensors"), &c, TYR_BF16, TYR_DEVICE_CPU),
      "double_blocks.1.img_attn.qkv.weight");
  /* the right names with other shapes: the tensor and both shapes named */
  tyr_flux2_config_named("tiny", &c);
  c.heads = 4;
  for (int i = 0; i < 4; i++) c.axes_dim[i] = 4;
  EXPECT_TYR_ERROR(
      tyr_flux2_load(&m, fixture(0, "flux2/flux2_tiny.safetensors"), &c, TYR_BF16, TYR_DEVICE_CPU),
      "norm.key_norm.scale' becomes [32] but");
  EXPECT_TYR_ERROR(
      tyr_flux2_load(&m, "/nonexistent/flux-2-klein-4b.safetensors", &c, TYR_BF16, TYR_DEVICE_CPU),
      "no such file");
}

static void test_vae_matches_twin(void **state) {
  (void)state;
  TYR_SCOPE;
  tyr_flux2_vae v;
  tyr_flux2_vae_config c;
  tyr_flux2_vae_config_named("tiny", &c);
  assert_int_equal(tyr_flux2_vae_load(&v, fixture(0, "flux2/flux2_vae_tiny.safetensors"), &c,
                                      TYR_F32, TYR_DEVICE_CPU),
                   0);
  tyr_tensor *img = tyr_flux2_vae_decode(&v, io("img"), 2, 3);
  assert_non_null(img);
  assert_int_equal(img->shape[2], 32);
  assert_int_equal(img->shape[3], 48);
  double d = max_diff(img, io("image")), scale = max_abs(io("image"));
  printf("# vae decode: max |tyr - torch| %.3g (max |x| %.3g)\n", d, scale);
  assert_true(scale > 0.1);
  assert_true(d < 1e-4 * (1 + scale));
  uint8_t *rgb = malloc(3 * 32 * 48);
  tyr_tensor *one = tyr_narrow_e(img, 0, 0, 1);
  assert_int_equal(tyr_flux2_image_rgb_at(TYR_SITE, tyr_squeeze_e(one, 0), rgb), 0);
  free(rgb);
  EXPECT_TYR_ERROR(tyr_flux2_vae_decode(&v, io("img"), 2, 2), "want [B, 4, 128]");
  tyr_flux2_vae_free(&v);
}

/* the VAE under diffusers' names (renamed here, attention linears as
 * [C, C]) loads into the same parameters */
static void test_vae_diffusers_layout(void **state) {
  (void)state;
  tyr_flux2_vae_config c;
  tyr_flux2_vae_config_named("tiny", &c);
  tyr_flux2_vae a, b;
  assert_int_equal(tyr_flux2_vae_load(&a, fixture(0, "flux2/flux2_vae_tiny.safetensors"), &c,
                                      TYR_F32, TYR_DEVICE_CPU),
                   0);
  char dir[1024], out[1100];
  snprintf(dir, sizeof dir, "%s/flux2_vae_diffusers", tyr_test_tmpdir());
  assert_int_equal(tyr_mkdirs(dir), 0);
  snprintf(out, sizeof out, "%s/diffusion_pytorch_model.safetensors", dir);
  const int n = a.params.n;
  char(*names)[256] = calloc((size_t)n + 2, sizeof *names);
  const char **np = calloc((size_t)n + 2, sizeof *np);
  tyr_tensor **ts = calloc((size_t)n + 2, sizeof *ts);
  for (int i = 0; i < n; i++) {
    const char *nm = a.params.items[i].name;
    tyr_tensor *t = a.params.items[i].t;
    int lvl, j;
    char rest[100];
    if (sscanf(nm, "decoder.up.%d.block.%d.%99s", &lvl, &j, rest) == 3) {
      if (!strncmp(rest, "nin_shortcut", 12))
        snprintf(names[i], 256, "decoder.up_blocks.%d.resnets.%d.conv_shortcut%s", 3 - lvl, j,
                 rest + 12);
      else
        snprintf(names[i], 256, "decoder.up_blocks.%d.resnets.%d.%s", 3 - lvl, j, rest);
    } else if (sscanf(nm, "decoder.up.%d.upsample.conv.%99s", &lvl, rest) == 2) {
      snprintf(names[i], 256, "decoder.up_blocks.%d.upsamplers.0.conv.%s", 3 - lvl, rest);
    } else if (sscanf(nm, "decoder.mid.block_%d.%99s", &j, rest) == 2) {
      snprintf(names[i], 256, "decoder.mid_block.resnets.%d.%s", j - 1, rest);
    } else if (!strncmp(nm, "decoder.mid.attn_1.", 19)) {
      const char *r = nm + 19;
      const char *to = !strncmp(r, "norm.", 5)       ? "group_norm"
                       : !strncmp(r, "proj_out.", 9) ? "to_out.0"
                       : r[0] == 'q'                 ? "to_q"
                       : r[0] == 'k'                 ? "to_k"
                                                     : "to_v";
      snprintf(names[i], 256, "decoder.mid_block.attentions.0.%s%s", to, strchr(r, '.'));
      if (t->rank == 4) t = tyr_reshape_at(TYR_SITE, t, 2, t->shape);
    } else if (!strncmp(nm, "decoder.post_quant_conv", 23)) {
      snprintf(names[i], 256, "%s", nm + 8);
    } else if (!strncmp(nm, "decoder.norm_out", 16)) {
      snprintf(names[i], 256, "decoder.conv_norm_out%s", nm + 16);
    } else {
      snprintf(names[i], 256, "%s", nm);
    }
    np[i] = names[i];
    ts[i] = t;
  }
  /* an encoder tensor and the BatchNorm counter are skipped */
  np[n] = "encoder.conv_in.weight";
  ts[n] = tyr_zeros_at(TYR_SITE, TYR_F32, TYR_DEVICE_CPU, 1, (const int64_t[]){2});
  np[n + 1] = "bn.num_batches_tracked";
  ts[n + 1] = tyr_zeros_at(TYR_SITE, TYR_I64, TYR_DEVICE_CPU, 0, NULL);
  assert_int_equal(tyr_safetensors_save(out, n + 2, np, ts, 0, NULL, NULL), 0);
  for (int i = 0; i < n + 2; i++)
    if (ts[i] != a.params.items[i < n ? i : 0].t) tyr_tensor_free(ts[i]);
  /* the model root holding vae/ works as well as vae/ itself */
  snprintf(out, sizeof out, "%s", dir);
  assert_int_equal(tyr_flux2_vae_load(&b, out, &c, TYR_F32, TYR_DEVICE_CPU), 0);
  for (int i = 0; i < n; i++) {
    tyr_param *pb = tyr_params_find(&b.params, a.params.items[i].name);
    assert_non_null(pb);
    if (max_diff(a.params.items[i].t, pb->t) != 0)
      fail_msg("%s differs between the layouts", a.params.items[i].name);
  }
  free(names);
  free(np);
  free(ts);
  tyr_flux2_vae_free(&a);
  tyr_flux2_vae_free(&b);
}

static void test_noise_seeded(void **state) {
  (void)state;
  TYR_SCOPE;
  tyr_flux2 m;
  tyr_flux2_config c;
  tyr_flux2_config_named("tiny", &c);
  assert_int_equal(tyr_flux2_init_random(&m, &c, TYR_F32, TYR_DEVICE_CPU, 7), 0);
  tyr_rng_state before = tyr_rng_get_state();
  tyr_tensor *a = tyr_flux2_noise(&m, 1, 4, 4, 42), *b = tyr_flux2_noise(&m, 1, 4, 4, 42);
  tyr_tensor *d = tyr_flux2_noise(&m, 1, 4, 4, 43);
  tyr_rng_state after = tyr_rng_get_state();
  assert_true(before.seed == after.seed && before.counter == after.counter);
  assert_int_equal(a->shape[1], 16);
  assert_int_equal(a->shape[2], 128);
  assert_true(max_diff(a, b) == 0);
  assert_true(max_diff(a, d) > 0.1);
  /* the element values are Philox(seed) normals: mean ~ 0, var ~ 1 */
  double mean = tyr_item_e(tyr_mean_e(a)), var = tyr_item_e(tyr_var_all_e(a, false));
  assert_true(fabs(mean) < 0.1 && fabs(var - 1) < 0.15);
  tyr_flux2_free(&m);
}

/* On a GPU (skipped without one): the same fixtures in f32 and bf16 on CUDA,
 * and the start noise equal to the CPU's. */
static void test_cuda_matches_twin(void **state) {
  (void)state;
  if (!tyr_cuda_available()) {
    printf("# no GPU: skipped\n");
    skip();
  }
  TYR_SCOPE;
  tyr_flux2_config c;
  tyr_flux2_config_named("tiny", &c);
  tyr_flux2_vae_config vc;
  tyr_flux2_vae_config_named("tiny", &vc);
  const tyr_dtype dts[2] = {TYR_F32, TYR_BF16};
  for (int k = 0; k < 2; k++) {
    tyr_flux2 m;
    tyr_flux2_vae v;
    assert_int_equal(tyr_flux2_load(&m, fixture(0, "flux2/flux2_tiny.safetensors"), &c, dts[k],
                                    TYR_DEVICE_CUDA(0)),
                     0);
    assert_int_equal(tyr_flux2_vae_load(&v, fixture(1, "flux2/flux2_vae_tiny.safetensors"), &vc,
                                        dts[k], TYR_DEVICE_CUDA(0)),
                     0);
    tyr_tensor *img = tyr_to_device_e(io("img"), TYR_DEVICE_CUDA(0));
    tyr_tensor *txt = tyr_to_device_e(io("txt"), TYR_DEVICE_CUDA(0));
    tyr_tensor *vel = tyr_flux2_forward(&m, img, txt, io("t"), 2, 3);
    assert_non_null(vel);
    assert_int_equal(vel->dtype, dts[k]);
    double d = max_diff(tyr_to_device_e(vel, TYR_DEVICE_CPU), io("velocity"));
    double scale = max_abs(io("velocity"));
    tyr_tensor *im = tyr_flux2_vae_decode(&v, img, 2, 3);
    assert_non_null(im);
    double dv = max_diff(tyr_to_device_e(im, TYR_DEVICE_CPU), io("image"));
    printf("# cuda %s: velocity max diff %.3g, image max diff %.3g\n", tyr_dtype_name(dts[k]), d,
           dv);
    double tol = dts[k] == TYR_F32 ? 1e-3 : 0.05;
    assert_true(d < tol * (1 + scale));
    assert_true(dv < tol * (1 + max_abs(io("image"))));
    tyr_tensor *ng = tyr_to_device_e(tyr_flux2_noise(&m, 1, 4, 4, 42), TYR_DEVICE_CPU);
    tyr_flux2 mc;
    assert_int_equal(tyr_flux2_init_random(&mc, &c, dts[k], TYR_DEVICE_CPU, 1), 0);
    tyr_tensor *nc = tyr_flux2_noise(&mc, 1, 4, 4, 42);
    /* the same Philox numbers (bf16 on the GPU is rounded, f32 on the CPU is not) */
    assert_true(max_diff(ng, nc) < (dts[k] == TYR_F32 ? 1e-7 : 0.02));
    tyr_flux2_free(&mc);
    tyr_flux2_free(&m);
    tyr_flux2_vae_free(&v);
  }
}

int main(void) {
  tyr_test_record_errors();
  const struct CMUnitTest tests[] = {
      TYR_TEST(test_schedule_published),        TYR_TEST(test_configs),
      TYR_TEST(test_config_from_weights),       TYR_TEST(test_forward_matches_twin),
      TYR_TEST(test_bf16_close_to_f32),         TYR_TEST(test_diffusers_layout_same_model),
      TYR_TEST(test_missing_unexpected_listed), TYR_TEST(test_vae_matches_twin),
      TYR_TEST(test_vae_diffusers_layout),      TYR_TEST(test_noise_seeded),
      TYR_TEST(test_cuda_matches_twin),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
