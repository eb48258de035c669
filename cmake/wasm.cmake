# WebAssembly (Emscripten) build setup, included by the top-level CMakeLists.txt when EMSCRIPTEN.
# Needs Debian's emscripten 3.1.6 (scripts/setup.sh --web); see ../shared/TOOLCHAIN.md for the why of each flag.
#
#  - Eigen3::Eigen: a patched copy of /usr/include/eigen3 in the build tree (cmake/patch_eigen.cmake), so that
#    with -msimd128 -msse4.1 Eigen takes its SSE path through Emscripten's SSE-on-SIMD128 headers
#    (EIGEN_VECTORIZE on, real f32x4 code). ferkit_wasm_simd(<target>) adds those flags to a target.
#  - the header-only system libraries the core needs (nlohmann/json), copied into the build tree: /usr/include
#    itself must never be on an Emscripten include path (glibc headers).
#  - exceptions: the core throws and catches, so everything is compiled and linked with -fexceptions
#    (Emscripten's JS-based exception handling; the frozen Debian cache has no -fwasm-exceptions runtime).
#  - every executable: -sALLOW_MEMORY_GROWTH=1. Programs run under node (tests, tools): ferkit_wasm_node_program()
#    adds -sWASM_ASYNC_COMPILATION=0 (node 20 cannot fetch() a file path) and -sEXIT_RUNTIME=1 (exit status).
#  - GoogleTest from /usr/src/googletest, built with em++ (ferkit_wasm_googletest()).

if(NOT EMSCRIPTEN)
  message(FATAL_ERROR "cmake/wasm.cmake is for Emscripten builds (cmake --preset wasm)")
endif()
if(NOT DEFINED ENV{NODE_PATH})
  message(WARNING "NODE_PATH is not set: emcc's JS tools may fail with \"Cannot find module 'acorn'\". "
                  "Use the wasm preset or export NODE_PATH=/usr/share/nodejs.")
endif()

add_compile_options(-fexceptions)
add_link_options(-fexceptions -sALLOW_MEMORY_GROWTH=1)
# The wasm-debug preset: AddressSanitizer and UndefinedBehaviorSanitizer in WebAssembly (Emscripten's prebuilt
# runtimes), plus the runtime's assertions for programs run under node (ferkit_wasm_node_program). -sSAFE_HEAP=1
# is no option here: Emscripten 3.1.6's SAFE_HEAP cannot check SIMD (v128) loads and stores and fails with "type
# incompatibility when transforming from/to JS". The same error comes from a Debug (-O0) build: a call to a
# function returning a v128 inside a try region goes through a JS invoke_* wrapper; hence RelWithDebInfo.
if(FERKIT_WASM_CHECKS)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=all)
  add_link_options(-fsanitize=address,undefined -fno-sanitize-recover=all)
endif()

# ---- Eigen, patched for the SSE-on-SIMD128 path ----
set(FERKIT_EIGEN_SYSTEM_DIR /usr/include/eigen3 CACHE PATH "Eigen 3.4 headers to copy and patch for WebAssembly")
set(FERKIT_EIGEN_WASM_DIR ${CMAKE_BINARY_DIR}/eigen3)
set(_patch_script ${CMAKE_CURRENT_LIST_DIR}/patch_eigen.cmake)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${_patch_script})
if(NOT EXISTS ${FERKIT_EIGEN_WASM_DIR}/FERKIT_PATCHED OR ${_patch_script} IS_NEWER_THAN ${FERKIT_EIGEN_WASM_DIR}/FERKIT_PATCHED)
  message(STATUS "Patching a copy of Eigen for WebAssembly SIMD: ${FERKIT_EIGEN_WASM_DIR}")
  execute_process(
    COMMAND ${CMAKE_COMMAND} -DEIGEN_SRC=${FERKIT_EIGEN_SYSTEM_DIR} -DEIGEN_DST=${FERKIT_EIGEN_WASM_DIR} -P ${_patch_script}
    RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "cmake/patch_eigen.cmake failed")
  endif()
endif()
# The point of the copy: with these flags Eigen must vectorize. Fail at configure time if it does not.
include(CheckCXXSourceCompiles)
set(CMAKE_REQUIRED_FLAGS "-msimd128 -msse4.1")
set(CMAKE_REQUIRED_INCLUDES ${FERKIT_EIGEN_WASM_DIR})
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
check_cxx_source_compiles("
#include <Eigen/Core>
#ifndef EIGEN_VECTORIZE_SSE4_1
#error Eigen does not vectorize
#endif
float f(const float* a, const float* b) {
  return Eigen::Map<const Eigen::VectorXf>(a, 64).dot(Eigen::Map<const Eigen::VectorXf>(b, 64));
}" FERKIT_WASM_EIGEN_VECTORIZES)
unset(CMAKE_REQUIRED_FLAGS)
unset(CMAKE_REQUIRED_INCLUDES)
unset(CMAKE_TRY_COMPILE_TARGET_TYPE)
if(NOT FERKIT_WASM_EIGEN_VECTORIZES)
  message(FATAL_ERROR "The patched Eigen copy (${FERKIT_EIGEN_WASM_DIR}) does not compile with EIGEN_VECTORIZE "
                      "under -msimd128 -msse4.1: see CMakeFiles/CMakeError.log")
endif()

add_library(Eigen3::Eigen INTERFACE IMPORTED)
set_target_properties(Eigen3::Eigen PROPERTIES INTERFACE_INCLUDE_DIRECTORIES ${FERKIT_EIGEN_WASM_DIR})
target_compile_options(Eigen3::Eigen INTERFACE -Wno-deprecated-declarations)

# ---- header-only system libraries, copied out of /usr/include ----
set(FERKIT_WASM_INCLUDE_DIR ${CMAKE_BINARY_DIR}/wasm-include)
if(NOT EXISTS ${FERKIT_WASM_INCLUDE_DIR}/nlohmann/json.hpp)
  if(NOT EXISTS /usr/include/nlohmann/json.hpp)
    message(FATAL_ERROR "nlohmann/json.hpp not found (install nlohmann-json3-dev)")
  endif()
  file(COPY /usr/include/nlohmann DESTINATION ${FERKIT_WASM_INCLUDE_DIR})
endif()

# Adds WebAssembly SIMD to a target that uses Eigen: -msimd128 everywhere it is linked, -msse4.1 (Eigen's SSE
# path on Emscripten's SSE emulation headers) where it is compiled.
function(ferkit_wasm_simd target)
  target_compile_options(${target} PUBLIC -msimd128 PRIVATE -msse4.1 -Wno-unknown-warning-option)  # (GCC-only -W flags)
  target_include_directories(${target} SYSTEM PUBLIC ${FERKIT_WASM_INCLUDE_DIR})
endfunction()

# A program run under node (ctest uses CMAKE_CROSSCOMPILING_EMULATOR=/usr/bin/node).
function(ferkit_wasm_node_program target)
  target_link_options(${target} PRIVATE -sWASM_ASYNC_COMPILATION=0 -sEXIT_RUNTIME=1)
  if(FERKIT_WASM_CHECKS)
    target_link_options(${target} PRIVATE -sASSERTIONS=2 -sSTACK_OVERFLOW_CHECK=2)
  endif()
endfunction()

# GoogleTest built from Debian's source (/usr/src/googletest) with em++.
function(ferkit_wasm_googletest)
  if(TARGET GTest::gtest_main)
    return()
  endif()
  if(NOT EXISTS /usr/src/googletest/CMakeLists.txt)
    message(FATAL_ERROR "/usr/src/googletest not found (install googletest)")
  endif()
  set(BUILD_GMOCK OFF CACHE BOOL "" FORCE)
  set(INSTALL_GTEST OFF CACHE BOOL "" FORCE)
  set(gtest_disable_pthreads ON CACHE BOOL "" FORCE)  # no -pthread build: single-threaded wasm
  add_subdirectory(/usr/src/googletest ${CMAKE_BINARY_DIR}/googletest EXCLUDE_FROM_ALL)
endfunction()
