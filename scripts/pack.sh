#!/usr/bin/env bash
# Builds the npm package from the wasm build and prints the tarball's path as its last line:
#   scripts/pack.sh        -> .../build/wasm/npm/ferkit-<version>.tgz
# It configures the wasm preset if needed (scripts/setup.sh --web installs emscripten and npm) and builds the
# target ferkit_npm (web/CMakeLists.txt), which the wasm preset's default build also makes. The version is CMake's
# project version (CMakeLists.txt), written into the package's package.json. What is in the package: docs/npm.md.
# JOBS sets the build's parallel jobs (default: all cores).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export NODE_PATH="${NODE_PATH:-/usr/share/nodejs}"  # Debian's emscripten finds acorn there

[[ -f build/wasm/CMakeCache.txt ]] || cmake --preset wasm >&2
cmake --build --preset wasm --target ferkit_npm -j "${JOBS:-$(nproc)}" >&2
version=$(node -p 'require(process.argv[1]).version' "$root/build/wasm/npm/package/package.json")
tarball="$root/build/wasm/npm/ferkit-$version.tgz"
if [[ ! -f "$tarball" ]]; then
  echo "pack: the build did not make $tarball" >&2
  exit 1
fi
echo "$tarball"
