#!/usr/bin/env bash
# The front end's speed, old and new side by side in one run: a 640x480 camera frame's detection (the astronaut
# letterboxed into it), natively and as WebAssembly under node, for the Haar cascade the page used before commit
# 3f54558 and for BlazeFace now; then the live page's frames/s with BlazeFace on every frame (bench/page_metrics.mjs,
# headless Chromium, the same photo as the fake camera). With --old-page, the old page's figures too (it detected
# on every second frame, reusing the boxes in between).
#   bash bench/frontend_speed.sh [--runs 200] [--old-page]
# Needs build/release and build/wasm (scripts/test.sh builds both). The old tree is extracted from git (commit
# c7bdb7d, the last with the cascade) into build/frontend-old, and its core library built there, natively and with
# Emscripten (a few minutes the first time; kept for later runs). Both benchmarks are compiled from this tree's
# bench/detector_latency.cpp, which times whichever front end the tree it is built against has. Reports; asserts
# nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=200
OLD_PAGE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --old-page) OLD_PAGE=1; shift ;;
    *) echo "frontend_speed: unknown option $1 (expected --runs N or --old-page)" >&2; exit 2 ;;
  esac
done
OLD_COMMIT=c7bdb7d
OLD=$ROOT/build/frontend-old
PHOTO=/usr/lib/python3/dist-packages/skimage/data/astronaut.png
export NODE_PATH=${NODE_PATH:-/usr/share/nodejs}
for f in build/release/libferkit_core.a build/wasm/libferkit_core.a "$PHOTO"; do
  [ -e "$f" ] || { echo "frontend_speed: $f is missing (run scripts/test.sh first)" >&2; exit 1; }
done

if [ ! -f "$OLD/.extracted" ]; then
  echo "== extracting $OLD_COMMIT into $OLD"
  rm -rf "$OLD"
  mkdir -p "$OLD"
  git archive "$OLD_COMMIT" | tar -x -C "$OLD"
  mkdir -p "$OLD/build"
  ln -s "$ROOT/build/deps" "$OLD/build/deps"  # the sources scripts/setup.sh fetched (SDL 2, Dear ImGui)
  touch "$OLD/.extracted"
fi
if [ ! -f "$OLD/build/release/libferkit_core.a" ]; then
  echo "== building the old core library (native)"
  (cd "$OLD" && cmake --preset release > /dev/null && cmake --build --preset release --target ferkit_core -j2 > /dev/null)
fi
if [ ! -f "$OLD/build/wasm/libferkit_core.a" ]; then
  echo "== building the old core library (WebAssembly)"
  (cd "$OLD" && cmake --preset wasm > /dev/null && cmake --build --preset wasm --target ferkit_core -j2 > /dev/null)
fi

# One compile command for both trees, so that only the library differs.
BIN=$ROOT/build/frontend-speed
mkdir -p "$BIN"
build() {  # build <tree> <name>
  local tree=$1 name=$2
  c++ -O3 -march=native -std=c++17 -fopenmp -DFERKIT_SOURCE_DIR="\"$tree\"" -I"$tree/core" \
    bench/detector_latency.cpp "$tree/build/release/libferkit_core.a" -o "$BIN/$name"
  em++ -O3 -msimd128 -fexceptions -std=c++17 -DFERKIT_SOURCE_DIR="\"$tree\"" -I"$tree/core" -I"$ROOT/build/wasm/wasm-include" \
    bench/detector_latency.cpp "$tree/build/wasm/libferkit_core.a" -sNODERAWFS=1 -sALLOW_MEMORY_GROWTH=1 \
    -sWASM_ASYNC_COMPILATION=0 -sEXIT_RUNTIME=1 -o "$BIN/$name.js" 2> "$BIN/$name.em++.log" ||
    { cat "$BIN/$name.em++.log" >&2; exit 1; }
}
echo "== compiling bench/detector_latency.cpp against both trees"
build "$OLD" old
build "$ROOT" new

declare -A MED P10 FACES
run() {  # run <key> <command...>
  local key=$1
  shift
  local out
  out=$("$@")
  echo "$out" | sed 's/^/    /' | grep -v "^    result"
  read -r _ _ MED[$key] P10[$key] FACES[$key] <<< "$(echo "$out" | grep '^result')"
}
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
export OMP_NUM_THREADS
echo "== native (OMP_NUM_THREADS=$OMP_NUM_THREADS)"
run old-native "$BIN/old" "$OLD/assets/cascades/frontalface.cascade" "$RUNS" "$PHOTO"
run new-native "$BIN/new" "$ROOT/assets/detector/blazeface.ferkit" "$RUNS" "$PHOTO"
echo "== WebAssembly (node $(node --version))"
run old-wasm node --no-experimental-fetch "$BIN/old.js" "$OLD/assets/cascades/frontalface.cascade" "$RUNS" "$PHOTO"
run new-wasm node --no-experimental-fetch "$BIN/new.js" "$ROOT/assets/detector/blazeface.ferkit" "$RUNS" "$PHOTO"

page() {  # page <tree>: processed frames/s and the detection stage's median, as "fps detect_ms"
  node "$1/bench/page_metrics.mjs" --seconds 10 --clip "$BIN/clip.y4m" |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s.slice(s.indexOf("{")));
      console.log(j.processed_fps.toFixed(1), j.median_ms.detect_ms.toFixed(1))})'
}
build/release/tests/make_y4m "$PHOTO" "$BIN/clip.y4m" 640 480 60
echo "== the page (headless Chromium, 10 s of a 640x480 camera)"
read -r NEW_FPS NEW_PAGE_MS <<< "$(page "$ROOT")"
OLD_FPS=- OLD_PAGE_MS=-
if [ "$OLD_PAGE" = 1 ]; then
  if [ ! -f "$OLD/build/wasm/dist/index.html" ]; then
    echo "== building the old page"
    (cd "$OLD" && cmake --build --preset wasm -j2 > /dev/null)
  fi
  read -r OLD_FPS OLD_PAGE_MS <<< "$(page "$OLD")"
fi

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a > 0) printf "%.2fx", a / b; else print "-" }'; }
echo
echo "Detection of one 640x480 RGBA frame, median ms (p10), faces found on the frame:"
printf "  %-12s %-24s %-24s %s\n" "" "Haar cascade ($OLD_COMMIT)" "BlazeFace (this tree)" "old / new"
for where in native wasm; do
  printf "  %-12s %-24s %-24s %s\n" "$where" \
    "${MED[old-$where]} (${P10[old-$where]}), ${FACES[old-$where]}" \
    "${MED[new-$where]} (${P10[new-$where]}), ${FACES[new-$where]}" "$(ratio "${MED[old-$where]}" "${MED[new-$where]}")"
done
echo "The page: processed frames/s, detection stage median ms:"
printf "  %-12s %-24s %-24s\n" "" "old page (every 2nd frame)" "new page (every frame)"
printf "  %-12s %-24s %-24s\n" "page" "$OLD_FPS fps, $OLD_PAGE_MS ms" "$NEW_FPS fps, $NEW_PAGE_MS ms"
