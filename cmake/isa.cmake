# CPU kernels for several instruction sets in one library.
#
# The files in TYR_ISA_SOURCES hold the CPU kernels whose loops the compiler
# vectorises.  Each is compiled three times: for any x86-64 CPU (suffix
# _base), for x86-64-v3 (AVX2, FMA: _v3) and for x86-64-v4 (AVX-512: _v4);
# src/cpu/isa.h renames the kernels with the suffix, and src/cpu/isa.c
# defines the plain names, which call the variant that cpuid allows
# (__builtin_cpu_supports; TYR_CPU_ISA=base|avx2|avx512 in the environment
# caps the choice).  Per-file flags rather than target attributes: clang
# does not pass a function's target attribute on to the OpenMP regions in
# it.  On other processors the files are compiled once (_base).
set(TYR_ISA_SOURCES
  ${PROJECT_SOURCE_DIR}/src/cpu/attention.c
  ${PROJECT_SOURCE_DIR}/src/cpu/copy.c
  ${PROJECT_SOURCE_DIR}/src/cpu/elementwise.c
  ${PROJECT_SOURCE_DIR}/src/cpu/nn.c
  ${PROJECT_SOURCE_DIR}/src/cpu/optim.c
  ${PROJECT_SOURCE_DIR}/src/cpu/reduce.c
  ${PROJECT_SOURCE_DIR}/src/cpu/rotary.c)

if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$" AND NOT TYR_NATIVE)
  set(TYR_ISA_LEVELS base v3 v4)
else()
  set(TYR_ISA_LEVELS base)
endif()
set(TYR_ISA_FLAGS_base "")
set(TYR_ISA_FLAGS_v3 -march=x86-64-v3)
# -mtune: gcc's generic tuning made the layer and RMS norm kernels 1.5-2x
# slower than the -march=native build on the Zen 4 development machine
# (bench_nn); tuned for Zen 3 (what gcc 12 calls that machine) they match it.
# Tuning changes scheduling only: the code runs on every x86-64-v4 CPU.
set(TYR_ISA_FLAGS_v4 -march=x86-64-v4 -mtune=znver3)

set(TYR_ISA_TARGETS)
foreach(isa ${TYR_ISA_LEVELS})
  list(APPEND TYR_ISA_TARGETS tyr_isa_${isa})
endforeach()

# Called after tyr_objs exists: the variants compile like it.
function(tyr_add_isa_objects)
  foreach(isa ${TYR_ISA_LEVELS})
    add_library(tyr_isa_${isa} OBJECT ${TYR_ISA_SOURCES})
    target_compile_definitions(tyr_isa_${isa} PRIVATE TYR_CPU_ISA=${isa})
    # -fno-trapping-math: no kernel reads the floating-point exception flags,
    # so the compiler may compute both sides of a select (the clamps and
    # selects of fastmath.h): without it gcc keeps branches there, which
    # only AVX-512's masks vectorise (exact GELU ran 7x slower in the
    # x86-64-v3 variant).  It changes no result.
    target_compile_options(tyr_isa_${isa} PRIVATE ${TYR_ISA_FLAGS_${isa}} -fno-trapping-math)
    target_include_directories(tyr_isa_${isa} PRIVATE ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src)
    target_link_libraries(tyr_isa_${isa} PRIVATE OpenMP::OpenMP_C PkgConfig::OPENBLAS)
  endforeach()
  if(TYR_ISA_LEVELS STREQUAL "base")
    target_compile_definitions(tyr_objs PRIVATE TYR_CPU_ISA_BASE_ONLY=1)
  endif()
endfunction()
