#!/usr/bin/env bash
# Training speed, ferkit against PyTorch on the same networks, in one run: batch 64, forward + backward + SGD with
# Nesterov momentum (the default model's recipe), the same thread count, rounds interleaved so that drift hits both.
# Also the machine's float32 multiply-add peak (bench/fma_peak), and the fraction of it each side reaches.
#   scripts/setup.sh --bench && cmake --build --preset release && bench/train_speed.sh
# Environment: ARCHS (default "vgg-xs-fw2 seed": the default's network, then the seed), THREADS (default 2),
# ROUNDS (3), SECONDS_EACH (3: seconds per measurement), BUILD (build/release), VARIANTS (below).
# PyTorch is Debian's python3-torch (1.13) on Debian's OpenMP OpenBLAS (libopenblas0-openmp, downloaded and unpacked
# into build/deps/openblas-openmp, put on LD_LIBRARY_PATH; nothing is installed), channels-last; its convolutions
# run on oneDNN. Ratios: ferkit images/s over PyTorch's, > 1 when ferkit is faster.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
archs=(${ARCHS:-vgg-xs-fw2 seed})
threads=${THREADS:-2} rounds=${ROUNDS:-3} seconds=${SECONDS_EACH:-3}
build=${BUILD:-build/release}
# ferkit's convolution paths (FERKIT_DNNL, core/kernels_dnnl.cpp): 1 oneDNN float32 (the default), 0 the portable
# im2col + Eigen path, bf16 oneDNN's bf16 dot products (experimental).
variants=(${VARIANTS:-1 0 bf16})
for bin in "$build/bench/bench_seed" "$build/bench/fma_peak"; do
  [[ -x "$bin" ]] || { echo "train_speed.sh: $bin not built (cmake --build --preset release)" >&2; exit 1; }
done
/usr/bin/python3 -c "import torch" 2>/dev/null || { echo "train_speed.sh: no PyTorch (scripts/setup.sh --bench)" >&2; exit 1; }

blas="$root/build/deps/openblas-openmp"
if [[ ! -d "$blas/usr/lib" ]]; then
  mkdir -p "$blas"
  (cd "$blas" && apt-get download libopenblas0-openmp >/dev/null && dpkg -x libopenblas0-openmp_*.deb .)
fi
blas_lib="$(dirname "$(find "$blas/usr/lib" -name 'libblas.so.3' | head -n1)")"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
OMP_NUM_THREADS=$threads "$build/bench/fma_peak" 2 >"$tmp/peak.txt"
for arch in "${archs[@]}"; do
  "$build/bench/bench_seed" --print-spec "$arch" >"$tmp/$arch.spec"
  for ((r = 1; r <= rounds; ++r)); do
    echo "== round $r/$rounds: $arch" >&2
    for v in "${variants[@]}"; do
      FERKIT_DNNL=$v OMP_NUM_THREADS=$threads "$build/bench/bench_seed" --benchmark_filter="TrainStep/$arch/64/1/" \
        --benchmark_min_time="$seconds" --benchmark_format=json >"$tmp/fer-$v-$arch-$r.json"
    done
    LD_LIBRARY_PATH="$blas_lib" OPENBLAS_NUM_THREADS=$threads /usr/bin/python3 bench/torch_seed.py --spec \
      "$tmp/$arch.spec" --optimizer sgd-nesterov --train-only --threads "$threads" --seconds "$seconds" --json |
      grep '^{' | tail -n1 >"$tmp/torch-$arch-$r.json"
  done
done

python3 - "$tmp" "$threads" "$rounds" "${variants[*]}" "${archs[@]}" <<'PY'
import json, sys
tmp, threads, rounds, variants, archs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split(), sys.argv[5:]
names = {"1": "ferkit, oneDNN", "0": "ferkit, portable", "bf16": "ferkit, oneDNN bf16"}
peak = {l.split()[1]: float(l.split()[2]) for l in open(f"{tmp}/peak.txt") if l.startswith("peak ")}
fp32 = peak.get("fp32-avx512") or peak.get("fp32-avx2")
print(f"machine peak, {threads} threads: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peak.items()))
def span(v, f="{:.0f}"):
    lo, hi = f.format(min(v)), f.format(max(v))
    return lo if lo == hi else f"{lo}-{hi}"
print(f"\nimages/s, training batch 64, SGD Nesterov, {threads} threads (ratio: to PyTorch in the same round; "
      "%: of the float32 FMA peak)\n")
print("| network | PyTorch | " + " | ".join(names.get(v, v) for v in variants) + " |")
print("|---|---|" + "---|" * len(variants))
for arch in archs:
    pt = [json.load(open(f"{tmp}/torch-{arch}-{r}.json"))["train_images_per_s"] for r in range(1, rounds + 1)]
    cells, flop = [], None
    for v in variants:
        ips, gf = [], []
        for r in range(1, rounds + 1):
            b = [x for x in json.load(open(f"{tmp}/fer-{v}-{arch}-{r}.json"))["benchmarks"] if x.get("run_type") == "iteration"]
            ips.append(sum(x["images/s"] for x in b) / len(b))
            gf.append(sum(x["GFLOP/s"] for x in b) / len(b))
        flop = gf[0] / ips[0]  # GFLOP per image: the same arithmetic on every side
        ratio = [i / p for i, p in zip(ips, pt)]
        cells.append(f"{span(ips)} ({span(ratio, '{:.2f}')}x, {span([g / fp32 * 100 for g in gf])}%)")
    ptc = f"{span(pt)} ({span([p * flop / fp32 * 100 for p in pt])}%)"
    print(f"| {arch} | {ptc} | " + " | ".join(cells) + " |")
print(f"\n{rounds} rounds, interleaved. GFLOP/s counts each convolution and dense layer's forward, weight gradient and "
      "input gradient (none for the first layer), a multiply-add as two.")
PY
