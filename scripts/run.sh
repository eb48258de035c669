#!/usr/bin/env bash
# The main job (until the web app lands): builds ferkit, evaluates the shipped default model on FER-2013
# PrivateTest, then runs a short training demo (3 epochs of the seed architecture) and evaluates it.
#   DATA=path/to/fer2013.csv.gz scripts/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
DATA=${DATA:-../shared/data/fer2013/fer2013.csv.gz}
cmake --preset release
cmake --build --preset release -j "$(nproc)" --target fer-train
bin=build/release/native/fer-train
echo "== default model (assets/models/default.ferkit) on PrivateTest"
$bin eval --model assets/models/default.ferkit --data "$DATA" --split private --out runs/default-eval
echo "== short training demo: seed architecture, 3 epochs (the full recipe is in README.md)"
$bin train --data "$DATA" --arch seed --epochs 3 --no-augment --out runs/demo
echo "== outputs: runs/default-eval/ (metrics, confusion matrix PNG) and runs/demo/ (model, history, curves.png)"
