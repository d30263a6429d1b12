/* Dispatch by device: the table of backends. */
#include "core/backend.h"
#include "core/profile.h"

static const tyr_backend *g_backends[2] = {&tyr_cpu_backend, NULL};

void tyr_backend_register(tyr_device_type type, const tyr_backend *be) {
  if ((unsigned)type < 2) g_backends[type] = be;
}

const tyr_backend *tyr_backend_lookup(tyr_device dev) {
  const tyr_backend *be = (unsigned)dev.type < 2 ? g_backends[dev.type] : NULL;
  if (__builtin_expect(tyr__profile_on, 0) && be && dev.type == TYR_CPU)
    return tyr__profile_wrap(be); /* tyr/profile.h: the timing copy */
  return be;
}

#ifdef TYR_HAVE_CUDA
int tyr_cuda_init_backend(void); /* src/cuda: registers the CUDA backend */
#endif

const tyr_backend *tyr_backend_get(tyr_site s, const char *op, tyr_device dev) {
  const tyr_backend *be = tyr_backend_lookup(dev);
#ifdef TYR_HAVE_CUDA
  if (!be && dev.type == TYR_CUDA && tyr_cuda_init_backend() == 0) be = tyr_backend_lookup(dev);
#endif
  if (be) return be;
  if (dev.type == TYR_CUDA) {
#ifdef TYR_HAVE_CUDA
    tyr_raise(TYR_ERR_DEVICE, s, op, "%s was asked for, but no CUDA GPU is usable",
              tyr_device_name(dev));
#else
    tyr_raise(TYR_ERR_DEVICE, s, op, "%s was asked for, but this build of tyr has no CUDA backend",
              tyr_device_name(dev));
#endif
  } else {
    tyr_raise(TYR_ERR_DEVICE, s, op, "unknown device type %d", (int)dev.type);
  }
  return NULL;
}

bool tyr_gemm_layout(const tyr_tensor *t, bool *trans, int64_t *ld) {
  int r = t->rank;
  int64_t rows = t->shape[r - 2], cols = t->shape[r - 1];
  int64_t s0 = t->stride[r - 2], s1 = t->stride[r - 1];
  int64_t minr = rows > 1 ? rows : 1, minc = cols > 1 ? cols : 1;
  if ((s1 == 1 || cols == 1) && (rows == 1 || s0 >= minc)) {
    *trans = false;
    *ld = rows == 1 ? minc : s0;
    return true;
  }
  if ((s0 == 1 || rows == 1) && (cols == 1 || s1 >= minr)) {
    *trans = true;
    *ld = cols == 1 ? minr : s1;
    return true;
  }
  return false;
}
