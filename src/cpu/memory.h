/* Host memory for CPU tensors (src/cpu/memory.c). */
#ifndef TYR_CPU_MEMORY_H
#define TYR_CPU_MEMORY_H
#include "tyr/tensor.h"

/* A block of at least nbytes, 64-byte aligned (blocks of at most 64 bytes
 * are only 16-byte aligned).  tyr_cpu_free must get the same nbytes. */
void *tyr_cpu_alloc(size_t nbytes, tyr_device dev);
void tyr_cpu_free(void *p, size_t nbytes, tyr_device dev);

#endif
