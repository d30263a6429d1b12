# CUDA backend: optional.  When nvcc is found, src/cuda/*.cu is compiled into
# tyr_cuda_kernels and the library defines TYR_HAVE_CUDA.
set(TYR_HAVE_CUDA OFF)
if(TYR_CUDA)
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  file(GLOB TYR_CUDA_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/cuda/*.cu)
  if(CMAKE_CUDA_COMPILER AND TYR_CUDA_SOURCES)
    # Ampere and Hopper unless the command line names architectures
    # (-DCMAKE_CUDA_ARCHITECTURES=90); set before enable_language, which would
    # otherwise pick the compiler's default.
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES OR CMAKE_CUDA_ARCHITECTURES STREQUAL "")
      set(CMAKE_CUDA_ARCHITECTURES 80 90)
    endif()
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    add_library(tyr_cuda_kernels STATIC ${TYR_CUDA_SOURCES})
    target_include_directories(tyr_cuda_kernels PRIVATE ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src)
    set_target_properties(tyr_cuda_kernels PROPERTIES POSITION_INDEPENDENT_CODE ON CUDA_SEPARABLE_COMPILATION OFF
      CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON)
    # The directory's C flags (-Wall -Wextra -Werror -march=native, the
    # sanitizers) are not nvcc options: this target sets its own.  No
    # --use_fast_math: it swaps expf/logf/powf/division for approximations and
    # flushes denormals, and the CUDA kernels must agree with the CPU's.
    set_property(TARGET tyr_cuda_kernels PROPERTY COMPILE_OPTIONS "")
    target_compile_options(tyr_cuda_kernels PRIVATE -O3 -Xcompiler=-fPIC,-Wall,-Wextra)
    if(TYR_WERROR)
      target_compile_options(tyr_cuda_kernels PRIVATE -Werror=all-warnings -Xcompiler=-Werror)
    endif()
    target_link_libraries(tyr_cuda_kernels PUBLIC CUDA::cudart CUDA::cublas CUDA::cublasLt)
    # cuDNN (src/cuda/conv.cu): in the toolkit's directories (/usr/local/cuda
    # here) or the system's
    find_library(TYR_CUDNN_LIB cudnn HINTS ${CUDAToolkit_LIBRARY_DIR} ${CUDAToolkit_LIBRARY_ROOT}/lib64 /usr/local/cuda/lib64 REQUIRED)
    find_path(TYR_CUDNN_INCLUDE cudnn.h HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/local/cuda/include REQUIRED)
    target_include_directories(tyr_cuda_kernels PRIVATE ${TYR_CUDNN_INCLUDE})
    target_link_libraries(tyr_cuda_kernels PUBLIC ${TYR_CUDNN_LIB})
    target_compile_definitions(tyr_objs PUBLIC TYR_HAVE_CUDA=1)
    target_link_libraries(tyr_objs PUBLIC CUDA::cudart)
    set(TYR_HAVE_CUDA ON)
    message(STATUS "tyr: CUDA backend enabled (${CMAKE_CUDA_COMPILER}, archs ${CMAKE_CUDA_ARCHITECTURES})")
  else()
    message(STATUS "tyr: CUDA backend disabled (no nvcc or no CUDA sources)")
  endif()
endif()
