# Multi-process tests (tests/dist): programs run by run.sh under mpirun
# (SKIP, exit 77, when mpirun is absent).  Included from tests/CMakeLists.txt.
set(TYR_DIST_RUN sh ${CMAKE_CURRENT_SOURCE_DIR}/dist/run.sh)
file(GLOB TYR_DIST_PROGS CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/dist/dist_*.c)
foreach(src ${TYR_DIST_PROGS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/src)
  target_link_libraries(${name} PRIVATE tyr_static)
endforeach()
foreach(np 1 2 3)
  add_test(NAME dist_collectives_np${np} COMMAND ${TYR_DIST_RUN} ${np} $<TARGET_FILE:dist_collectives>)
  set_tests_properties(dist_collectives_np${np} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300
    PASS_REGULAR_EXPRESSION "rank 0 of ${np} .*checks passed")
endforeach()
# shell tests: tests/dist/*.sh except run.sh, given the build and source dirs
file(GLOB TYR_DIST_SCRIPTS CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/dist/test_*.sh)
foreach(src ${TYR_DIST_SCRIPTS})
  get_filename_component(name ${src} NAME_WE)
  add_test(NAME dist_${name} COMMAND sh ${src} ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR})
  set_tests_properties(dist_${name} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600
    ENVIRONMENT "TYR_TEST_DATA=${CMAKE_SOURCE_DIR}/tests/data;TYR_ROOT=${CMAKE_SOURCE_DIR}")
endforeach()
# data-parallel equivalence against one process at the whole batch
set(TYR_DDP_CASES
  "ddp_np2|2|--mode,ddp"
  "ddp_np3|3|--mode,ddp"
  "ddp_np2_buckets_accum|2|--bucket-mb,0.001,--accum,2"
  "ddp_np2_no_overlap|2|--no-overlap"
  "zero1_np2|2|--mode,zero"
  "zero1_np3_accum|3|--mode,zero,--accum,2")
foreach(case ${TYR_DDP_CASES})
  string(REPLACE "|" ";" parts "${case}")
  list(GET parts 0 name)
  list(GET parts 1 np)
  list(SUBLIST parts 2 -1 args)
  string(REPLACE "," ";" args "${args}")
  add_test(NAME dist_${name} COMMAND ${TYR_DIST_RUN} ${np} $<TARGET_FILE:dist_ddp> ${args})
  set_tests_properties(dist_${name} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300
    PASS_REGULAR_EXPRESSION "dist_ddp: mode .*: PASS")
endforeach()
# distributed Muon with its AdamW part sharded: bitwise that of one process
# (reduce_adamw: the AdamW gradients reduce-scattered by the step, 1e-6)
foreach(np 2 3)
  foreach(variant ns polar_express normuon reduce_adamw)
    set(args)
    if(NOT variant STREQUAL "ns")
      string(REPLACE "_" "-" flag ${variant})
      set(args --${flag})
    endif()
    add_test(NAME dist_muon_${variant}_np${np} COMMAND ${TYR_DIST_RUN} ${np} $<TARGET_FILE:dist_muon> ${args})
    set_tests_properties(dist_muon_${variant}_np${np} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300
      PASS_REGULAR_EXPRESSION "dist_muon: .*: PASS")
  endforeach()
endforeach()
# the NCCL path on a GPU at world size 1 (SKIP without a GPU or NCCL)
set_tests_properties(test_dist_cuda PROPERTIES SKIP_RETURN_CODE 77)
