#!/usr/bin/env bash
# The whole test suite (CI runs this through .ci/run): installs what is missing, then
#   1. native release preset: build, ctest (core, data, CLI, detector, pipeline, plots)
#   2. wasm preset: build, ctest (the core suite under node, SIMD check, the app in headless Chromium)
# Tests that need FER-2013 read it from ../shared/data and skip themselves, saying so, where it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --web
jobs=$(nproc)
cmake --preset release
cmake --build --preset release -j "$jobs"
ctest --preset release -j "$jobs"
export NODE_PATH=/usr/share/nodejs
cmake --preset wasm
cmake --build --preset wasm -j "$jobs"
ctest --preset wasm
