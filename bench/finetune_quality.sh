#!/usr/bin/env bash
# Fine-tuning quality with FER-2013 faces standing in for a user's samples: the first 30 PublicTest faces of each
# expression (210, a fifth held back per expression) fine-tune the shipped model with each setting; reports the
# held-back accuracy before and after, the time, and PrivateTest accuracy after (how much of the base model is kept:
# the samples are balanced, PrivateTest is not, so some loss is expected). FER-2013 has no identities, so this is a
# check of the settings against each other, not a measure of learning one person's face.
#   bench/finetune_quality.sh [build/release] [../shared/data/fer2013/fer2013.csv.gz]
# The samples are written under a temporary folder, never into the project.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build/release}"
csv="${2:-$root/../shared/data/fer2013/fer2013.csv.gz}"
fer="$build/native/fer-train"
base="$root/assets/models/default.ferkit"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 - "$csv" "$work/samples" <<'PY'
import gzip, os, struct, sys
names = ['angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral']
out = sys.argv[2]
def bmp(path, px):  # 48x48 8-bit grey BMP, bottom-up rows
    pal = b''.join(bytes([i, i, i, 0]) for i in range(256))
    data = b''.join(bytes(px[(47 - y) * 48:(48 - y) * 48]) for y in range(48))
    off = 14 + 40 + 1024
    hdr = b'BM' + struct.pack('<IHHI', off + len(data), 0, 0, off)
    hdr += struct.pack('<IiiHHIIiiII', 40, 48, 48, 1, 8, 0, len(data), 2835, 2835, 256, 0)
    open(path, 'wb').write(hdr + pal + data)
count = [0] * 7
for n in names: os.makedirs(os.path.join(out, n), exist_ok=True)
with gzip.open(sys.argv[1], 'rt') as f:
    next(f)
    for line in f:
        e, p, u = line.strip().split(',')
        e = int(e)
        if u != 'PublicTest' or count[e] >= 30: continue
        bmp(os.path.join(out, names[e], '%02d.bmp' % count[e]), [int(v) for v in p.split()])
        count[e] += 1
        if min(count) >= 30: break
PY

printf '%-44s %8s %8s %7s %9s\n' settings "held<" "held>" "time" PrivateTest
for s in "--head-layers 0 --views 0" "" "--views 0" "--head-layers 0" "--whole"; do
  log=$("$fer" finetune --model "$base" --samples "$work/samples" --out "$work/m.ferkit" --threads 1 $s 2>&1)
  before=$(grep -o 'accuracy before: [0-9.]*%' <<<"$log" | grep -o '[0-9.]*%')
  after=$(grep -o 'accuracy after: [0-9.]*%' <<<"$log" | grep -o '[0-9.]*%')
  secs=$(grep -o 'm.ferkit ([0-9.]* s)' <<<"$log" | grep -o '[0-9.]* s')
  acc=$("$fer" eval --model "$work/m.ferkit" --data "$csv" --split private --threads 1 2>&1 | grep -o 'accuracy [0-9.]*%' | head -1)
  printf '%-44s %8s %8s %7s %9s\n' "${s:-(defaults)}" "$before" "$after" "$secs" "${acc#accuracy }"
done
