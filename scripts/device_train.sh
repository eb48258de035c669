#!/bin/bash
# Runs fer-train on a lent device machine's CPU cores: how rows W-a and W-b of docs/results.md were
# trained (session 9, issue 5): vgg-xs-f6 widened into vgg-xs-fw (--init) and trained by two recipes side by side,
# 8 threads each, for as many epochs as fit BUDGET seconds (a 3,200-image probe measures the speed). Training rows
# only (the machine takes 64 MiB of files with the repository), so no validation there: the models come back in
# $OUT and are judged on PublicTest here. Prepare, in the repository root (.dev/ is ignored):
#   python3 scripts/teacher_gpu.py pack ../shared/data/fer2013/fer2013.csv.gz .dev/fer-t.xz --keep Training
#   for v in v4 v3: cmake -S . -B build/dev-$v -DCMAKE_BUILD_TYPE=Release -DFERKIT_NATIVE_ARCH=OFF \
#     -DCMAKE_CXX_FLAGS=-march=x86-64-$v && cmake --build build/dev-$v --target fer-train
#   then fer-train-v4, fer-train-v3 and libgomp.so.1, libz.so.1, libstdc++.so.6, libgcc_s.so.1 in .dev/bin.tar.xz
#   and the --init model (INIT, default .dev/vgg-xs-f6.ferkit: row G, the default then, retired from the tree):
#   git show ed08b7a:assets/models/vgg-xs-f6/vgg-xs-f6.ferkit > .dev/vgg-xs-f6.ferkit
# and run there: BUDGET=560 THREADS=8 bash scripts/device_train.sh (carry .dev). In session 9 --arch was the
# spec-file form of vgg-xs-fw.
set -u
t0=$(date +%s); deadline=$((t0 + ${BUDGET:-560}))
mkdir -p /tmp/b && tar -xJf .dev/bin.tar.xz -C /tmp/b || exit 1
FT=/tmp/b/fer-train-v3; grep -q avx512bw /proc/cpuinfo && FT=/tmp/b/fer-train-v4
nproc; grep -m1 "model name" /proc/cpuinfo; echo "binary $FT"
python3 scripts/teacher_gpu.py unpack .dev/fer-t.xz /tmp/fer.csv || exit 1
echo "unpacked at $(( $(date +%s) - t0 )) s"
export LD_LIBRARY_PATH=/tmp/b  # after python3: only fer-train takes these libraries
common=(--data /tmp/fer.csv --arch vgg-xs-fw --init "${INIT:-.dev/vgg-xs-f6.ferkit}" --batch 64 --optimizer sgd
  --nesterov --momentum 0.9 --weight-decay 5e-4 --schedule cosine --warmup 1 --flip
  --class-weights 1.058,3.20,1.045,0.788,0.962,1.19,0.950 --soft-targets assets/training-inputs/gpu-teacher/soft_targets.csv
  --soft-targets-weight 0.5 --ema 0.9995 --patience 0 --threads ${THREADS:-8})
A=(--lr 0.005 --init-noise 0.01 --seed 8 --name w1-a)
B=(--lr 0.01 --init-noise 0.05 --seed 9 --name w1-b)
# Probe: both recipes at once for 3,200 images, for the images/s that sets the epochs.
$FT train "${common[@]}" "${A[@]}" --epochs 1 --limit 3200 --out /tmp/pa > /tmp/pa.log 2>&1 &
$FT train "${common[@]}" "${B[@]}" --epochs 1 --limit 3200 --out /tmp/pb > /tmp/pb.log 2>&1 &
wait
ips=$(tail -1 /tmp/pa/history.csv | awk -F, '{print $NF}')
left=$(( deadline - $(date +%s) ))
epochs=$(awk -v l=$left -v s=$ips 'BEGIN { e = int((l - 30) * s / 28709 / 1.08); print (e > 25 ? 25 : (e < 1 ? 1 : e)) }')
echo "probe: $ips images/s per run; $left s left; $epochs epochs"
tail -3 /tmp/pa.log
[ -n "${PROBE_ONLY:-}" ] && exit 0
timeout $((left - 8)) $FT train "${common[@]}" "${A[@]}" --epochs $epochs --out /tmp/A > $OUT/A.log 2>&1 &
timeout $((left - 8)) $FT train "${common[@]}" "${B[@]}" --epochs $epochs --out /tmp/B > $OUT/B.log 2>&1 &
wait
for r in A B; do
  mkdir -p $OUT/$r
  for f in checkpoint.ferkit model.ferkit history.csv; do [ -f /tmp/$r/$f ] && cp /tmp/$r/$f $OUT/$r/; done
done
echo "done at $(( $(date +%s) - t0 )) s"
