// The public headers used from C++17: the erased API, the typed layer
// (shapes in types, compile-time rules, autograd), modules, an optimizer,
// a checkpoint round trip and a recoverable run-time error.  Built by
// tests/cxx/check.sh with g++ and clang++; exits non-zero on a wrong value.
#include <tyr/tyr.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

static int failures = 0;
#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                \
      failures++;                                                                                  \
    }                                                                                              \
  } while (0)

enum { B = 4, In = 3, Out = 2 };

static void typed_layer() {
  TYR_SCOPE;
  tyr_T(2, 3) a = tyr_ones(2, 3);
  tyr_T(3, 4) b = tyr_full(2.0, 3, 4);
  tyr_requires_grad(a);
  tyr_T(2, 4) c = tyr_matmul(a, b);
  static_assert(tyr_dim(c, 0) == 2 && tyr_dim(c, 1) == 4 && tyr_rank(c) == 2,
                "dims are constants in C++ too");
  tyr_T0 loss = tyr_sum(c);
  tyr_backward(loss);
  CHECK(tyr_item(loss) == 48.0);
  CHECK(tyr_get(tyr_grad(a), 1, 2) == 8.0);

  tyr_T(4, 2) ct = tyr_transpose(c, 0, 1);
  tyr_T(8) flat = tyr_reshape(tyr_contiguous(ct), 8);
  CHECK(tyr_item(tyr_sum(flat)) == 48.0);
  tyr_T(2, 4) sm = tyr_softmax(c, -1);
  CHECK(std::fabs(tyr_item(tyr_sum(sm)) - 2.0) < 1e-6);
  tyr_T(2, 4) ln = tyr_layer_norm(tyr_randn(2, 4), nullptr, nullptr, 1e-5);
  CHECK(std::fabs(tyr_get(tyr_mean_dim(ln, 1), 0)) < 1e-5);
  tyr_T(2, 4) r = tyr_relu(tyr_sub_scalar(c, 7.0));
  CHECK(tyr_item(tyr_sum(r)) == 0.0);
}

static void erased_layer() {
  TYR_SCOPE;
  tyr_tensor *x = tyr_arange_e(6);
  tyr_tensor *y = tyr_reshape_e(x, 2, 3);
  tyr_tensor *s = tyr_sum_e(tyr_mul_e(y, y));
  CHECK(tyr_item_e(s) == 55.0);
  CHECK(tyr_numel(y) == 6 && y->rank == 2);
  float host[6];
  CHECK(tyr_to_host_e(y, host, sizeof host) == 0 && host[5] == 5.0f);
  CHECK(std::string(tyr_dtype_name(y->dtype)) == "f32");
}

static void on_error(const tyr_error *, void *ctx) {
  ++*static_cast<int *>(ctx);
}

static void recoverable_error() {
  TYR_SCOPE;
  int raised = 0;
  tyr_error_handler old_fn;
  void *old_ctx;
  tyr_error_get_handler(&old_fn, &old_ctx);
  tyr_error_set_handler(on_error, &raised);
  tyr_tensor *bad = tyr_matmul_e(tyr_ones_e(2, 3), tyr_ones_e(2, 3)); // inner dims differ
  tyr_error_set_handler(old_fn, old_ctx);
  CHECK(bad == NULL && raised == 1);
  CHECK(tyr_error_last()->status == TYR_ERR_SHAPE);
  CHECK(std::string(tyr_error_last()->message).find("tyr_matmul") != std::string::npos);
}

static void train_and_checkpoint() {
  tyr_manual_seed(1);
  tyr_params ps;
  tyr_params_init(&ps);
  tyr_nn_linear lin;
  CHECK(tyr_nn_linear_init(&lin, &ps, "fc", In, Out, true, 0.0) == 0);
  tyr_optim opt;
  CHECK(tyr_optim_init(&opt, &ps, tyr_adamw_config(0.05)) == 0);
  double first = 0, last = 0;
  {
    TYR_SCOPE;
    tyr_T(B, In) x = tyr_randn(B, In);
    tyr_T(B, Out) target = tyr_randn(B, Out);
    for (int step = 0; step < 50; step++) {
      TYR_SCOPE;
      tyr_T(B, Out) y = tyr_cast(tyr_nn_linear_forward(&lin, tyr_erase(x)), B, Out);
      tyr_T0 loss = tyr_mse_loss(y, target);
      tyr_optim_zero_grad(&opt);
      tyr_backward(loss);
      CHECK(tyr_optim_step(&opt, -1) == 0);
      (step == 0 ? first : last) = tyr_item(loss);
    }
  }
  CHECK(last < first);
  char path[] = "/tmp/tyr-cxx-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  std::string file = std::string(path) + ".safetensors";
  tyr_checkpoint_info info = {};
  info.step = 50;
  CHECK(tyr_checkpoint_save(file.c_str(), &ps, &opt, &info) == 0);
  tyr_params back;
  tyr_params_init(&back);
  tyr_nn_linear lin2;
  CHECK(tyr_nn_linear_init(&lin2, &back, "fc", In, Out, true, 0.0) == 0);
  tyr_checkpoint *ck = tyr_checkpoint_open(file.c_str());
  CHECK(ck != NULL);
  tyr_checkpoint_info got = {};
  if (ck) CHECK(tyr_checkpoint_load(ck, &back, NULL, &got) == 0);
  tyr_checkpoint_close(ck);
  CHECK(got.step == 50);
  CHECK(tyr_get_e(lin2.weight, 1, 2) == tyr_get_e(lin.weight, 1, 2));
  std::remove(file.c_str());
  std::remove(path);
  tyr_params_free(&back);
  tyr_optim_free(&opt);
  tyr_params_free(&ps);
}

int main() {
  typed_layer();
  erased_layer();
  recoverable_error();
  train_and_checkpoint();
  if (tyr_live_tensors() != 0) {
    std::fprintf(stderr, "%lld tensors still alive\n", (long long)tyr_live_tensors());
    failures++;
  }
  std::printf("C++ test: %s\n", failures ? "FAILED" : "passed");
  return failures ? 1 : 0;
}
