#!/usr/bin/env bash
# Installs what ferkit needs to build and test, from Debian's packages. Idempotent: installs only what is missing.
#   scripts/setup.sh           build + test dependencies
#   scripts/setup.sh --bench   also PyTorch (python3-torch) for the side-by-side speed benchmark
set -euo pipefail

packages=(cmake make g++ libeigen3-dev libstb-dev libcli11-dev nlohmann-json3-dev zlib1g-dev
          googletest libgtest-dev libbenchmark-dev)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(python3-torch)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
