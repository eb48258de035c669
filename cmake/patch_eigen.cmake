# Makes a copy of Eigen 3.4 whose SSE code path compiles for WebAssembly (Emscripten's SSE-on-SIMD128 headers,
# `-msimd128 -msse4.1`). Stock 3.4.0 has no WebAssembly backend; its SSE path fails under Emscripten only at
# x86 inline asm and at <mmintrin.h> (MMX, which Emscripten lacks). Each such spot gets `!defined(__EMSCRIPTEN__)`.
# The system copy is never touched.
#
#   cmake -DEIGEN_SRC=/usr/include/eigen3 -DEIGEN_DST=<build>/eigen3 -P cmake/patch_eigen.cmake
#
# Every replacement must match exactly the expected number of times, so another Eigen version fails loudly here
# instead of silently compiling without vectorization.
cmake_minimum_required(VERSION 3.20)
if(NOT EIGEN_SRC OR NOT EIGEN_DST)
  message(FATAL_ERROR "patch_eigen.cmake: pass -DEIGEN_SRC=<eigen3 include dir> -DEIGEN_DST=<output dir>")
endif()
if(NOT EXISTS "${EIGEN_SRC}/Eigen/Core")
  message(FATAL_ERROR "patch_eigen.cmake: no Eigen at ${EIGEN_SRC} (install libeigen3-dev)")
endif()

set(tmp "${EIGEN_DST}.tmp")
file(REMOVE_RECURSE "${tmp}")
file(MAKE_DIRECTORY "${tmp}")
file(COPY "${EIGEN_SRC}/Eigen" DESTINATION "${tmp}")

# patch(<file relative to Eigen/src/Core> <expected count> <old> <new>)
function(patch rel count old new)
  set(path "${tmp}/Eigen/src/Core/${rel}")
  file(READ "${path}" text)
  string(LENGTH "${text}" len0)
  string(REPLACE "${old}" "" stripped "${text}")
  string(LENGTH "${stripped}" len1)
  string(LENGTH "${old}" lold)
  math(EXPR found "(${len0} - ${len1}) / ${lold}")
  if(NOT found EQUAL count)
    message(FATAL_ERROR "patch_eigen.cmake: expected ${count} x '${old}' in ${rel}, found ${found}")
  endif()
  string(REPLACE "${old}" "${new}" text "${text}")
  file(WRITE "${path}" "${text}")
endfunction()

# pmin/pmax for Packet4f/Packet2d: inline x86 asm (minps/maxps...) for "old GCC" (clang reports __GNUC__ 4).
patch(arch/SSE/PacketMath.h 4
  "#if EIGEN_COMP_GNUC && EIGEN_COMP_GNUC < 63"
  "#if EIGEN_COMP_GNUC && EIGEN_COMP_GNUC < 63 && !defined(__EMSCRIPTEN__)")
# GEBP micro-kernel register-allocation workarounds: x86 asm register constraints.
patch(products/GeneralBlockPanelKernel.h 2
  "#if EIGEN_GNUC_AT_LEAST(6,0) && defined(EIGEN_VECTORIZE_SSE)"
  "#if EIGEN_GNUC_AT_LEAST(6,0) && defined(EIGEN_VECTORIZE_SSE) && !defined(__EMSCRIPTEN__)")
# MMX header: Emscripten provides the SSE* headers only.
patch(util/ConfigureVectorization.h 1
  "        #include <mmintrin.h>\n"
  "        #if !defined(__EMSCRIPTEN__)\n        #include <mmintrin.h>\n        #endif\n")

file(WRITE "${tmp}/FERKIT_PATCHED" "Eigen from ${EIGEN_SRC}, patched by cmake/patch_eigen.cmake for Emscripten SSE-on-SIMD128\n")
file(REMOVE_RECURSE "${EIGEN_DST}")
file(RENAME "${tmp}" "${EIGEN_DST}")
