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
    # stdc++: the kernels are C++ (static guards, new), linked into C programs
    target_link_libraries(tyr_cuda_kernels PUBLIC CUDA::cudart CUDA::cublas CUDA::cublasLt stdc++)
    # cuDNN (src/cuda/conv.cu): in the toolkit's directories, CUDNN_ROOT, or
    # the nvidia-cudnn wheel of a pip-installed PyTorch (cmake/nvidia_libs.cmake)
    include(${PROJECT_SOURCE_DIR}/cmake/nvidia_libs.cmake)
    tyr_find_nvidia_lib(TYR_CUDNN cudnn.h cudnn 9)
    if(NOT TYR_CUDNN_INCLUDE_DIR OR NOT TYR_CUDNN_LIBRARY)
      message(FATAL_ERROR "tyr: the CUDA backend needs cuDNN (cudnn.h and libcudnn), found neither "
                          "in the CUDA toolkit nor in PyTorch's nvidia wheels: set CUDNN_ROOT to "
                          "its prefix, or configure with -DTYR_CUDA=OFF")
    endif()
    message(STATUS "tyr: cuDNN ${TYR_CUDNN_LIBRARY}")
    target_include_directories(tyr_cuda_kernels PRIVATE ${TYR_CUDNN_INCLUDE_DIR})
    target_link_libraries(tyr_cuda_kernels PUBLIC ${TYR_CUDNN_LIBRARY})
    target_compile_definitions(tyr_objs PUBLIC TYR_HAVE_CUDA=1)
    target_link_libraries(tyr_objs PUBLIC CUDA::cudart)
    set(TYR_HAVE_CUDA ON)
    message(STATUS "tyr: CUDA backend enabled (${CMAKE_CUDA_COMPILER}, archs ${CMAKE_CUDA_ARCHITECTURES})")
  else()
    message(STATUS "tyr: CUDA backend disabled (no nvcc or no CUDA sources)")
  endif()
endif()
