#!/usr/bin/env bash
# Data-parallel training's scaling: `fer-train train` as one process with all cores, against `mpirun -np N
# fer-train train --distributed` with one thread a process, in the same run, on the first IMAGES FER-2013 Training
# faces (one epoch each, the same global batch), several rounds interleaved; then what the measured step costs
# imply for a cluster of many machines (allreduce bytes a step against compute a step).
#   bench/distributed.sh [BUILD_DIR]
# Environment:
#   DATA       fer2013.csv(.gz) (default ../shared/data/fer2013/fer2013.csv.gz)
#   ARCH       architecture (default vgg-xs-fw2, the default model's)   BATCH  global batch (default 64)
#   IMAGES     training images (default 4096)                           ROUNDS rounds (default 3)
#   RANKS      process counts to run (default: 2, and 4 and 8 where the machine has that many cores)
# Needs Open MPI (scripts/setup.sh installs openmpi-bin and libopenmpi-dev) and the release build.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
build=build/release
if [[ $# -gt 0 ]]; then build="$1"; fi
if [[ ! -d "$build" && -d "$root/$build" ]]; then build="$root/$build"; fi
bin="$build/native/fer-train"
[[ -x "$bin" ]] || { echo "distributed.sh: $bin not found (cmake --preset release && cmake --build --preset release)" >&2; exit 1; }
command -v mpirun >/dev/null || { echo "distributed.sh: mpirun not found (apt-get install openmpi-bin libopenmpi-dev)" >&2; exit 1; }

data="${DATA:-$root/../shared/data/fer2013/fer2013.csv.gz}"
arch="${ARCH:-vgg-xs-fw2}"
batch="${BATCH:-64}"
images="${IMAGES:-4096}"
rounds="${ROUNDS:-3}"
cores="$(nproc)"
ranks="${RANKS:-}"
if [[ -z "$ranks" ]]; then
  ranks=2
  for n in 4 8; do ((cores >= n)) && ranks="$ranks $n"; done
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1  # containers and CI run as root

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# A small CSV: the first IMAGES Training rows and 64 rows of each test split (validation and the final evaluation
# are not what is measured: each epoch's images/s counts training only).
zcat -f "$data" | awk -F, -v n="$images" 'NR == 1 { print; next }
  $NF ~ /^Training/ { if (t++ < n) print; next }
  $NF ~ /^PublicTest/ { if (p++ < 64) print; next }
  $NF ~ /^PrivateTest/ { if (q++ < 64) print }' >"$tmp/data.csv"

args=(train --data "$tmp/data.csv" --arch "$arch" --epochs 1 --batch "$batch" --optimizer sgd --nesterov
      --lr 0.01 --seed 1)
ips() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["images_per_sec"])' "$1/history.json"; }

configs=("1x$cores" "1x1")
for n in $ranks; do configs+=("${n}x1"); done
for ((r = 1; r <= rounds; ++r)); do
  for c in "${configs[@]}"; do
    procs="${c%x*}" threads="${c#*x}" out="$tmp/run-$c-$r"
    if [[ "$procs" == 1 ]]; then
      OMP_NUM_THREADS="$threads" "$bin" "${args[@]}" --threads "$threads" --out "$out" >/dev/null 2>"$tmp/log"
    else
      mpirun -np "$procs" --oversubscribe --bind-to core -x OMP_NUM_THREADS=1 \
        "$bin" "${args[@]}" --threads 1 --distributed --out "$out" >/dev/null 2>"$tmp/log" ||
        mpirun -np "$procs" --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 \
          "$bin" "${args[@]}" --threads 1 --distributed --out "$out" >/dev/null 2>"$tmp/log"
    fi || { cat "$tmp/log" >&2; exit 1; }
    echo "$c $(ips "$out")" >>"$tmp/results"
    echo "round $r: $c $(ips "$out") images/s" >&2
  done
done
"$bin" info --model "$tmp/run-1x$cores-1/model.ferkit" >"$tmp/info" 2>&1

python3 - "$tmp/results" "$tmp/info" "$cores" "$batch" "$arch" "$images" <<'PY'
import re, statistics, sys
from collections import defaultdict

results, info, cores, batch, arch, images = sys.argv[1:7]
cores, batch = int(cores), int(batch)
runs = defaultdict(list)
for line in open(results):
    c, v = line.split()
    runs[c].append(float(v))
text = open(info).read()
m = re.search(r"parameters: (\d+) \((\d+) trainable\)", text)
trainable = int(m.group(2))
bn_layers = len(re.findall(r"^bn +\d", text, re.M))  # the summary's rows (not the spec text)

base = f"1x{cores}"
print(f"{arch}, one epoch of {images} FER-2013 Training faces, global batch {batch}, SGD; {cores} cores")
print(f"| processes x threads | images/s (median of {len(runs[base])}, min-max) | against 1 x {cores} |")
print("|---|---|---|")
for c, v in runs.items():
    med = statistics.median(v)
    print(f"| {c.replace('x', ' x ')} | {med:.0f} ({min(v):.0f}-{max(v):.0f}) | {med / statistics.median(runs[base]):.2f}x |")

# A cluster: each machine holds one process of `cores` threads running batch images a step (the global batch grows
# with the machines, as data-parallel training is used), so its compute a step is what one process measured here.
step = batch / statistics.median(runs[base])
payload = 4 * trainable  # one float sum of the trainable gradients a step
small = 3 * bn_layers + 4  # per batch-norm layer two sums forward, one backward; loss, stop, two weight checks
print()
print(f"A step of {batch} images on one such machine: {step * 1000:.0f} ms of compute. Each step sums "
      f"{trainable:,} gradients ({payload / 1e6:.2f} MB) in one allreduce, plus {small} small ones (latency only).")
print("A ring allreduce sends and receives 2(N-1)/N of the buffer on each machine; ferkit does not overlap it with "
      "the backward pass, so a step takes compute + communication:")
print("| machines N | global batch | 1 Gb/s, 50 us latency | 10 Gb/s, 20 us | 100 Gb/s, 5 us |")
print("|---|---|---|---|---|")
for n in (2, 8, 32, 128):
    cells = []
    for gbps, lat in ((1, 50e-6), (10, 20e-6), (100, 5e-6)):
        comm = 2 * (n - 1) / n * payload / (gbps * 1e9 / 8) + (2 * (n - 1) + small * (n - 1).bit_length()) * lat
        eff = step / (step + comm)
        cells.append(f"{eff * 100:.0f}% ({n * eff * batch / step:,.0f} img/s)")
    print(f"| {n} | {n * batch} | " + " | ".join(cells) + " |")
print("Each cell: scaling efficiency (compute / step time) and the cluster's images/s.")
PY
