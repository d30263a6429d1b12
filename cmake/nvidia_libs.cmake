# Finds an NVIDIA library that may live outside the CUDA toolkit: cuDNN and
# NCCL are in /usr/local/cuda on some machines, in their own prefixes
# (CUDNN_ROOT, NCCL_ROOT) on others, and on machines with PyTorch installed
# from pip in the nvidia-* wheels under site-packages/nvidia/ (which ship
# only versioned names such as libcudnn.so.9): the site-packages of the
# python3 on PATH, and of virtual environments at /opt/<name>/.venv (where
# GPU machines often keep PyTorch).  CUDNN_ROOT / NCCL_ROOT may be CMake
# variables or environment variables.
#
#   tyr_find_nvidia_lib(PREFIX HEADER LIBNAME SOVERSION)
# sets PREFIX_INCLUDE_DIR and PREFIX_LIBRARY (NOTFOUND when absent).
function(tyr__nvidia_wheel_dirs out)
  set(dirs "")
  find_program(TYR_PYTHON3 NAMES python3)
  if(TYR_PYTHON3)
    execute_process(
      COMMAND ${TYR_PYTHON3} -c "import site,sys; print(';'.join(site.getsitepackages() + [site.getusersitepackages()]))"
      OUTPUT_VARIABLE sp OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc)
    if(rc EQUAL 0)
      foreach(d ${sp})
        if(IS_DIRECTORY ${d}/nvidia)
          list(APPEND dirs ${d}/nvidia)
        endif()
      endforeach()
    endif()
  endif()
  file(GLOB venvs /opt/*/.venv/lib/python3*/site-packages/nvidia)
  list(APPEND dirs ${venvs})
  list(REMOVE_DUPLICATES dirs)
  set(${out} "${dirs}" PARENT_SCOPE)
endfunction()

function(tyr_find_nvidia_lib prefix header libname soversion)
  string(TOUPPER ${libname} up)
  set(inc_hints ${CUDAToolkit_INCLUDE_DIRS} /usr/local/cuda/include)
  set(lib_hints ${CUDAToolkit_LIBRARY_DIR} /usr/local/cuda/lib64)
  # CUDNN_ROOT / NCCL_ROOT: a CMake variable (-DCUDNN_ROOT=...) or the environment
  foreach(root ${${up}_ROOT} $ENV{${up}_ROOT})
    list(PREPEND inc_hints ${root}/include)
    list(PREPEND lib_hints ${root}/lib ${root}/lib64)
  endforeach()
  tyr__nvidia_wheel_dirs(wheels)
  foreach(w ${wheels})
    file(GLOB_RECURSE hs ${w}/*/${header})
    file(GLOB_RECURSE ls ${w}/*/lib${libname}.so*)
    foreach(h ${hs})
      get_filename_component(d ${h} DIRECTORY)
      list(APPEND inc_hints ${d})
    endforeach()
    foreach(l ${ls})
      get_filename_component(d ${l} DIRECTORY)
      list(APPEND lib_hints ${d})
    endforeach()
  endforeach()
  find_path(${prefix}_INCLUDE_DIR ${header} HINTS ${inc_hints})
  find_library(${prefix}_LIBRARY NAMES ${libname} lib${libname}.so.${soversion} HINTS ${lib_hints})
endfunction()
