#!/usr/bin/env bash
# The whole test suite: installs dependencies, builds the release preset, runs every test with ctest.
# Tests that need FER-2013 read it from ../shared/data (they are skipped, and say so, where it is absent).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
jobs=$(nproc)
cmake --preset release
cmake --build --preset release -j "$jobs"
ctest --preset release -j "$jobs"
