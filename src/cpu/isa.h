/* The CPU kernels compiled once per instruction set (cmake/isa.cmake).
 *
 * The files that define them are compiled with TYR_CPU_ISA set to base, v3
 * or v4; this header then renames each kernel below to name_base, name_v3
 * or name_v4, and src/cpu/isa.c defines the plain name, which calls the
 * variant the CPU can run.  A new kernel in one of those files is added
 * here and in isa.c (a link error about a multiple definition says when
 * one is missing). */
#ifndef TYR_CPU_ISA_H
#define TYR_CPU_ISA_H

/* 0: base x86-64 (or any other processor), 1: x86-64-v3 (AVX2, FMA),
 * 2: x86-64-v4 (AVX-512) - the variant the dispatchers call. */
int tyr_cpu_isa_level(void);

#ifdef TYR_CPU_ISA
#define TYR_ISA_CAT2(a, b) a##_##b
#define TYR_ISA_CAT(a, b) TYR_ISA_CAT2(a, b)
#define TYR_ISA_NAME(name) TYR_ISA_CAT(name, TYR_CPU_ISA)

/* attention.c */
#define tyr_cpu_sdpa TYR_ISA_NAME(tyr_cpu_sdpa)
#define tyr_cpu_sdpa_backward TYR_ISA_NAME(tyr_cpu_sdpa_backward)
/* copy.c */
#define tyr_cpu_copy TYR_ISA_NAME(tyr_cpu_copy)
/* elementwise.c */
#define tyr_cpu_unary TYR_ISA_NAME(tyr_cpu_unary)
#define tyr_cpu_unary_backward TYR_ISA_NAME(tyr_cpu_unary_backward)
#define tyr_cpu_binary TYR_ISA_NAME(tyr_cpu_binary)
#define tyr_cpu_where TYR_ISA_NAME(tyr_cpu_where)
#define tyr_cpu_act_row TYR_ISA_NAME(tyr_cpu_act_row)
#define tyr_cpu_dact_row TYR_ISA_NAME(tyr_cpu_dact_row)
/* nn.c */
#define tyr_cpu_softmax TYR_ISA_NAME(tyr_cpu_softmax)
#define tyr_cpu_softmax_backward TYR_ISA_NAME(tyr_cpu_softmax_backward)
#define tyr_cpu_layer_norm TYR_ISA_NAME(tyr_cpu_layer_norm)
#define tyr_cpu_layer_norm_backward TYR_ISA_NAME(tyr_cpu_layer_norm_backward)
#define tyr_cpu_cross_entropy_fused TYR_ISA_NAME(tyr_cpu_cross_entropy_fused)
#define tyr_cpu_cross_entropy TYR_ISA_NAME(tyr_cpu_cross_entropy)
#define tyr_cpu_cross_entropy_backward TYR_ISA_NAME(tyr_cpu_cross_entropy_backward)
#define tyr_cpu_index_select TYR_ISA_NAME(tyr_cpu_index_select)
#define tyr_cpu_index_add TYR_ISA_NAME(tyr_cpu_index_add)
#define tyr_cpu_gather TYR_ISA_NAME(tyr_cpu_gather)
#define tyr_cpu_scatter_add TYR_ISA_NAME(tyr_cpu_scatter_add)
/* optim.c */
#define tyr_cpu_adamw_step TYR_ISA_NAME(tyr_cpu_adamw_step)
#define tyr_cpu_sgd_step TYR_ISA_NAME(tyr_cpu_sgd_step)
#define tyr_cpu_sum_squares TYR_ISA_NAME(tyr_cpu_sum_squares)
#define tyr_cpu_sum_squares_many TYR_ISA_NAME(tyr_cpu_sum_squares_many)
#define tyr_cpu_scale_ TYR_ISA_NAME(tyr_cpu_scale_)
/* reduce.c */
#define tyr_cpu_reduce TYR_ISA_NAME(tyr_cpu_reduce)
/* rotary.c */
#define tyr_cpu_rotary TYR_ISA_NAME(tyr_cpu_rotary)
#endif

#endif
