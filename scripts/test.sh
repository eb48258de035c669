#!/usr/bin/env bash
# The whole test suite (CI runs this through .ci/run): installs what is missing, then
#   1. native release preset: build, ctest (core, data, fine-tuning, CLI, detector, pipeline, plots)
#      (the suites that train convolutions run twice: on oneDNN's AVX-512 kernels, then its AVX2 ones)
#   2. wasm preset: build, ctest (the core suites under node, SIMD check, the app and the JS API in headless
#      Chromium, fine-tuning parity with the native CLI, the npm package installed and used: web.Npm)
#   3. sanitizers, native: the fuzz preset (clang, AddressSanitizer + UndefinedBehaviorSanitizer) builds the whole
#      test suite and the libFuzzer targets; ctest runs the suite under the sanitizers on the portable path
#      (FERKIT_DNNL=0: no oneDNN, as where libdnnl-dev is missing), then every fuzz target runs
#      for FUZZ_SECONDS (default 10) after replaying its saved crash inputs
#   4. sanitizers, WebAssembly: the wasm-debug preset runs the core suites under Emscripten's ASan + UBSan
# Tests that need FER-2013 read it from ../shared/data and skip themselves, saying so, where it is absent.
# SANITIZERS=0 skips stages 3 and 4 (a quicker local run; CI runs everything).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --web --fuzz
jobs=$(nproc)
# The suites that train convolutions: run again on oneDNN's AVX2 kernels, and under the sanitizers on the portable
# path (FERKIT_DNNL=0: im2col + Eigen, what builds without libdnnl-dev run).
training_tests='^(Conv|Gradients|Forward|Residual|Training|Optimizer|Distributed|Finetune|Model|BatchNorm|Explain)\.'

stage() { printf '\n==== %s (%s)\n' "$1" "$(date +%T)"; }

stage "native release"
cmake --preset release
cmake --build --preset release -j "$jobs"
ctest --preset release -j "$jobs"
# The training suites again on oneDNN's AVX2 kernels, what a CPU without AVX-512 runs (core/kernels_dnnl.cpp).
ONEDNN_MAX_CPU_ISA=AVX2 ctest --preset release -j "$jobs" -R "$training_tests"

stage "WebAssembly"
export NODE_PATH=/usr/share/nodejs
cmake --preset wasm
cmake --build --preset wasm -j "$jobs"
ctest --preset wasm

if [[ "${SANITIZERS:-1}" != 0 ]]; then
  stage "native, ASan + UBSan (clang): the test suite, then the fuzz targets"
  cmake --preset fuzz
  cmake --build --preset fuzz -j "$jobs"
  FERKIT_DNNL=0 ctest --preset fuzz -j "$jobs"
  NO_BUILD=1 SECONDS_PER_TARGET="${FUZZ_SECONDS:-10}" scripts/fuzz.sh

  stage "WebAssembly, ASan + UBSan"
  cmake --preset wasm-debug
  cmake --build --preset wasm-debug -j "$jobs"
  ctest --preset wasm-debug -j "$jobs"
fi
stage "all tests passed"
