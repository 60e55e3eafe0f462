# ctest driver for odc-run: a good module runs (exit 0), a damaged one gives exit 2 and one line.
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")
execute_process(COMMAND "${MODULE_TEST}" --write-module "${WORK}/m" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "writing the module failed: ${rc}")
endif()
execute_process(COMMAND "${RUNNER}" "${WORK}/m" --iterations 3 --save-outputs "${WORK}"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT out MATCHES "output s: float32 \\[2, 4\\]" OR NOT out MATCHES "latency: median")
  message(FATAL_ERROR "odc-run on a good module: rc=${rc}\n${out}\n${err}")
endif()
# Feed a saved output back as an input of the right shape: the .npy reader round trip.
execute_process(COMMAND "${RUNNER}" "${WORK}/m" --input "z=${WORK}/y.npy" --iterations 1
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "odc-run --input: rc=${rc}\n${out}\n${err}")
endif()
file(WRITE "${WORK}/m/weights.bin" "short")
execute_process(COMMAND "${RUNNER}" "${WORK}/m" RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 2 OR NOT err STREQUAL "odc-run: invalid module: weights.bin: size 5 != 80 in manifest\n")
  message(FATAL_ERROR "odc-run on a damaged module: rc=${rc} stderr=${err}")
endif()
# A module that targets cuda, where the driver cannot be opened: exit 2 and one line.
execute_process(COMMAND "${CUDA_MODULE_TEST}" --write-module "${WORK}/cuda" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "writing the cuda module failed: ${rc}")
endif()
execute_process(COMMAND "${CMAKE_COMMAND}" -E env ODC_CUDA_DRIVER=/nonexistent/libcuda.so.1
                        "${RUNNER}" "${WORK}/cuda" RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 2 OR NOT err STREQUAL
   "odc-run: module targets cuda: NVIDIA driver not found (/nonexistent/libcuda.so.1)\n")
  message(FATAL_ERROR "odc-run on a cuda module without a driver: rc=${rc} stderr=${err}")
endif()
message(STATUS "runner_cli: ok")
