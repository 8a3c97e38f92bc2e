#!/usr/bin/env bash
# Sets up .venv, then runs the main job: the paper's CIFAR-10 recipe (section 4.2: batch 128, SGD, lr 0.1
# /10 at 32k and 48k iterations, 64k iterations) for one model of the zoo on the CIFAR-10 JPEG data in
# ../shared, writing a workdir (history, curves.png, weights). Rerunning the same command resumes.
#
#   bash scripts/main.sh                      # ResNet-20, workdir runs/resnet20
#   MODEL=plain56 bash scripts/main.sh        # any CIFAR model: resnet20..1202, plain20..1202
#   bash scripts/main.sh --set train_length=30 --set lr_boundaries=10,20   # runs/resnet20-<hash>
#   WORKDIR=runs/mine bash scripts/main.sh    # choose the workdir
#
# Overrides that change the result get their own workdir, runs/<model>-<8 hex of the overrides>, so a
# smoke run never resumes or finishes the full one (python -m training.workdir prints the name).
# The training process replaces this script (exec): its PID is the script's, so `kill <pid>` stops the
# training itself. It draws curves.png at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
MODEL="${MODEL:-resnet20}"
SHARED="${KERAS_RESNETS_SHARED_DIR:-$(cd .. && pwd)/shared}"
if [ ! -f runs/data/.complete ]; then
    mkdir -p runs/data
    tar xzf "$SHARED/data/cifar10-jpeg.tar.gz" -C runs/data
    touch runs/data/.complete
fi
export KERAS_BACKEND="${KERAS_BACKEND:-tensorflow}"
WORKDIR="${WORKDIR:-$(.venv/bin/python -m training.workdir runs "$MODEL" "$@")}"
echo "Workdir: $WORKDIR"
exec .venv/bin/python -m training --config cifar10_paper --model "$MODEL" --workdir "$WORKDIR" \
    --curves "$WORKDIR/curves.png" --set dataset=image_folder --set data_dir=runs/data/cifar10-jpeg "$@"
