# cmake -DOBJDUMP=wasm-objdump -DWASM=file.wasm -DMIN=N -P count_simd.cmake
# Fails unless the module's code has at least MIN f32x4 instructions (the CNN's hot loops on WASM SIMD).
execute_process(COMMAND ${OBJDUMP} -d ${WASM} OUTPUT_VARIABLE dis RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${OBJDUMP} -d ${WASM} failed (${rc})")
endif()
string(REGEX MATCHALL "f32x4\\.[a-z_]+" ops "${dis}")
list(LENGTH ops n)
message(STATUS "${WASM}: ${n} f32x4 instructions")
if(n LESS MIN)
  message(FATAL_ERROR "${WASM}: only ${n} f32x4 instructions (expected at least ${MIN}): the CNN is not on WASM SIMD")
endif()
