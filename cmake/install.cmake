# Installation: headers, libtyr.so and libtyr.a, the CMake package
# (find_package(Tyr) -> Tyr::tyr, Tyr::tyr_static) and pkg-config's tyr.pc.
if(NOT TYR_INSTALL)
  return()
endif()
include(CMakePackageConfigHelpers)
set(TYR_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/Tyr)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/tyr DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
set(TYR_INSTALL_TARGETS tyr tyr_static)
if(TYR_HAVE_CUDA)
  list(APPEND TYR_INSTALL_TARGETS tyr_cuda_kernels)
endif()
install(TARGETS ${TYR_INSTALL_TARGETS} EXPORT TyrTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT TyrTargets NAMESPACE Tyr:: DESTINATION ${TYR_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/TyrConfig.cmake.in
  ${PROJECT_BINARY_DIR}/TyrConfig.cmake INSTALL_DESTINATION ${TYR_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/TyrConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/TyrConfig.cmake ${PROJECT_BINARY_DIR}/TyrConfigVersion.cmake
  DESTINATION ${TYR_CMAKE_DIR})

# tyr.pc: the prefix is found from the file's own place, so that
# `cmake --install build --prefix DIR` gives a working file in DIR.
set(TYR_PC_DIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
file(RELATIVE_PATH TYR_PC_TO_PREFIX /prefix/${TYR_PC_DIR} /prefix)
string(REGEX REPLACE "/$" "" TYR_PC_TO_PREFIX "${TYR_PC_TO_PREFIX}")
set(TYR_PC_LIBS_PRIVATE "-lsnappy -lm")
if(TYR_HAVE_ICU)
  string(APPEND TYR_PC_LIBS_PRIVATE " -licuuc")
endif()
foreach(lib ${OpenMP_C_LIB_NAMES}) # gomp and pthread with gcc, omp with clang
  string(APPEND TYR_PC_LIBS_PRIVATE " -l${lib}")
endforeach()
if(TYR_HAVE_CUDA)
  get_filename_component(TYR_CUDA_LIBDIR "${CUDA_cudart_LIBRARY}" DIRECTORY)
  string(APPEND TYR_PC_LIBS_PRIVATE
    " -ltyr_cuda_kernels -L${TYR_CUDA_LIBDIR} -lcublasLt -lcublas -lcudart -lstdc++ -ldl -lrt")
endif()
if(TYR_HAVE_CUDA)
  string(APPEND TYR_PC_LIBS_PRIVATE " ${TYR_CUDNN_LIBRARY}")
endif()
if(TYR_HAVE_NCCL)
  string(APPEND TYR_PC_LIBS_PRIVATE " ${NCCL_LIB}")
endif()
if(TYR_HAVE_MPI)
  foreach(lib ${MPI_C_LIBRARIES})
    string(APPEND TYR_PC_LIBS_PRIVATE " ${lib}")
  endforeach()
endif()
configure_file(${PROJECT_SOURCE_DIR}/cmake/tyr.pc.in ${PROJECT_BINARY_DIR}/tyr.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/tyr.pc DESTINATION ${TYR_PC_DIR})
