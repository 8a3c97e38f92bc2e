#!/usr/bin/env bash
# Sets up .venv, then runs the main job: the paper's CIFAR-10 recipe (section 4.2: batch 128, SGD, lr 0.1
# /10 at 32k and 48k iterations, 64k iterations) for one model of the zoo on the CIFAR-10 JPEG data in
# ../shared, writing runs/<model>/ (history, curves, weights). Rerunning resumes from the last checkpoint.
#
#   bash scripts/main.sh                      # ResNet-20
#   MODEL=plain56 bash scripts/main.sh        # any CIFAR model: resnet20..1202, plain20..1202
#   bash scripts/main.sh --set train_length=2000 --set lr_boundaries=1000,1500   # a shorter schedule
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
.venv/bin/python -m training --config cifar10_paper --model "$MODEL" --workdir "runs/$MODEL" \
    --set dataset=image_folder --set data_dir=runs/data/cifar10-jpeg "$@"
.venv/bin/python -m training.plot "runs/$MODEL" --out "runs/$MODEL/curves.png"
