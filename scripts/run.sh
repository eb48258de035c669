#!/usr/bin/env bash
# The main job: installs what is missing, builds the web app (WebAssembly) into build/wasm/dist with the default
# model, and serves it on 127.0.0.1 (PORT, default 8000), printing the URL. Ctrl-C stops the server.
# build/wasm/dist is a static site: copy it to any static host, at any path.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --web
export NODE_PATH=/usr/share/nodejs
cmake --preset wasm >/dev/null
cmake --build --preset wasm -j "$(nproc)" --target ferkit_web
dist=build/wasm/dist
port=${PORT:-8000}
echo
echo "ferkit is served at http://127.0.0.1:${port}/   (from ${dist}; Ctrl-C to stop)"
echo
exec python3 -m http.server --bind 127.0.0.1 --directory "$dist" "$port"
