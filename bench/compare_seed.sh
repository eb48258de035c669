#!/usr/bin/env bash
# ferkit vs PyTorch on the seed architecture, same thread count, one table.
#   bench/compare_seed.sh [BUILD_DIR] [extra bench_seed args...]
#   e.g. THREADS=1 bench/compare_seed.sh build/release --benchmark_min_time=1
# BUILD_DIR defaults to build/release (relative to the current directory, else to the repository root).
# Environment:
#   THREADS        threads for both (ferkit: OMP_NUM_THREADS, PyTorch: torch.set_num_threads); default: nproc
#   TORCH_SECONDS  seconds per PyTorch measurement (default 3)
#   TORCH_PYTHON   interpreter with torch (default /usr/bin/python3, the Debian python3-torch)
#   TORCH_ARGS     extra arguments for bench/torch_seed.py (e.g. "--layout nchw")
# Ratios: ferkit/PyTorch for throughput, PyTorch/ferkit for latency, so > 1 means ferkit is faster.
# See the header of bench/torch_seed.py about Debian's torch and the netlib reference BLAS.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"

build=build/release
if [[ $# -gt 0 && "$1" != -* ]]; then build="$1"; shift; fi
if [[ ! -d "$build" && -d "$root/$build" ]]; then build="$root/$build"; fi
bin="$build/bench/bench_seed"
[[ -x "$bin" ]] || { echo "compare_seed.sh: $bin not found (build with Google Benchmark installed)" >&2; exit 1; }

threads="${THREADS:-$(nproc)}"
seconds="${TORCH_SECONDS:-3}"
py="${TORCH_PYTHON:-/usr/bin/python3}"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "== ferkit: $bin (OMP_NUM_THREADS=$threads) $*" >&2
OMP_NUM_THREADS="$threads" "$bin" --benchmark_format=json "$@" >"$tmp/ferkit.json"
echo "== PyTorch: bench/torch_seed.py --threads $threads --seconds $seconds ${TORCH_ARGS:-}" >&2
# shellcheck disable=SC2086
"$py" "$here/torch_seed.py" --threads "$threads" --seconds "$seconds" --json ${TORCH_ARGS:-} >"$tmp/torch.txt"
grep '^{' "$tmp/torch.txt" | tail -n 1 >"$tmp/torch.json"

python3 - "$tmp/ferkit.json" "$tmp/torch.json" "$threads" <<'PY'
import json, statistics, sys

fer_path, torch_path, threads = sys.argv[1:4]
with open(fer_path) as f:
    fer = json.load(f)
with open(torch_path) as f:
    pt = json.load(f)

US = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}

def run(prefix):
    """(images/s, real time in us) of a benchmark: its median aggregate if repeated, else the mean of its runs."""
    rows = [b for b in fer["benchmarks"] if b.get("run_name", b["name"]).startswith(prefix)]
    med = [b for b in rows if b.get("run_type") == "aggregate" and b.get("aggregate_name") == "median"]
    its = [b for b in rows if b.get("run_type", "iteration") == "iteration"]
    pick = med or its
    if not pick:
        return None, None
    ips = statistics.mean(b["images/s"] for b in pick) if all("images/s" in b for b in pick) else None
    t_us = statistics.mean(b["real_time"] * US[b.get("time_unit", "ns")] for b in pick)
    return ips, t_us

train_ips, _ = run("BM_TrainStep/seed/64/0/")  # Adam, as torch_seed.py by default
_, lat1_us = run("BM_Inference/seed/1")
inf64_ips, _ = run("BM_Inference/seed/64")

def fmt(v, unit):
    return "n/a" if v is None else f"{v:,.1f} {unit}"

def ratio(num, den):
    return "n/a" if num is None or den is None or den == 0 else f"{num / den:.2f}x"

rows = [
    ("train step, batch 64", fmt(train_ips, "img/s"), fmt(pt["train_images_per_s"], "img/s"), ratio(train_ips, pt["train_images_per_s"])),
    ("inference latency, batch 1", fmt(lat1_us, "us"), fmt(pt["infer1_latency_us"], "us"), ratio(pt["infer1_latency_us"], lat1_us)),
    ("inference, batch 64", fmt(inf64_ips, "img/s"), fmt(pt["infer64_images_per_s"], "img/s"), ratio(inf64_ips, pt["infer64_images_per_s"])),
]
ctx = fer.get("context", {})
print(f"\nseed architecture, threads={threads}  |  ferkit: {ctx.get('executable', 'bench_seed')}"
      f"  |  PyTorch {pt['torch_version']}, layout {pt.get('layout', '?')}, {pt['threads']} threads")
print(f"PyTorch BLAS: {pt.get('blas', '?')}")
if pt.get("reference_blas"):
    print("WARNING: PyTorch runs on the netlib reference BLAS; its Linear layers and batch-1 convs are far slower than usual.")
w = (28, 18, 18, 16)
print(f"{'metric':<{w[0]}} {'ferkit':>{w[1]}} {'PyTorch':>{w[2]}} {'ferkit speedup':>{w[3]}}")
print("-" * (sum(w) + 3))
for name, a, b, r in rows:
    print(f"{name:<{w[0]}} {a:>{w[1]}} {b:>{w[2]}} {r:>{w[3]}}")
print("speedup > 1: ferkit faster (throughput ferkit/PyTorch, latency PyTorch/ferkit).")
print(f"batch-1 latency: ferkit = Google Benchmark mean per iteration (median if repeated); "
      f"PyTorch = median of calls (mean {pt.get('infer1_latency_us_mean', float('nan')):,.1f} us).")
PY
