#!/usr/bin/env bash
# ResNet-20 with the cifar10_paper schedule, bfloat16 on the JAX backend (one GPU), from the CIFAR-10 JPEGs.
#
#   bash training/gpu_run.sh DATA OUTDIR [--set field=value ...]
#
# DATA    the cifar10-jpeg.tar.gz tarball (extracted into a temporary folder) or an extracted
#         cifar10-jpeg folder (with train/ and test/).
# OUTDIR  receives resnet20/ (the run's workdir: history.json, final_metrics.json, weights, checkpoints),
#         curves.png and summary.json.
# Environment: PYTHON (default python3), ENGINE (standard or jax_fast, default standard), MINUTES
# (training-time budget, default 6; the full 64k-step schedule stops earlier if it is done). Needs jax, keras, numpy, pillow, h5py; no TensorFlow: images
# are decoded with Pillow and augmented with NumPy (keras_resnets.data.input_pipeline.NumpyPipeline), or,
# with ENGINE=jax_fast, kept on the GPU as uint8 and augmented inside the compiled step, 390 steps per
# dispatch (training/engine_jax_fast.py; same batches and steps; not yet timed on a GPU).
# Extra arguments are passed on to `python -m training` (e.g. --set train_length=200 for a smoke test).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
MINUTES="${MINUTES:-6}"
ENGINE="${ENGINE:-standard}"
DATA="$1"
OUT="$2"
shift 2
mkdir -p "$OUT"
if [ -f "$DATA" ]; then
  EXTRACTED="$(mktemp -d)"
  trap 'rm -rf "$EXTRACTED"' EXIT
  tar xzf "$DATA" -C "$EXTRACTED"
  DATA_DIR="$EXTRACTED/cifar10-jpeg"
else
  DATA_DIR="$DATA"
fi
export KERAS_BACKEND=jax
"$PYTHON" -c "import jax, keras; print('devices:', jax.devices(), 'jax', jax.__version__, 'keras', keras.__version__)"
"$PYTHON" -m training --config cifar10_paper --model resnet20 --workdir "$OUT/resnet20" \
  --set dataset=image_folder --set data_dir="$DATA_DIR" --set mixed_precision=bfloat16 \
  --set input_pipeline=numpy --set "engine=$ENGINE" --set eval_batch_size=1000 --set log_every_steps=390 \
  --set checkpoint_every_steps=3900 --set "max_train_seconds=$((MINUTES * 60))" \
  --set accuracy_targets=0.5,0.8,0.85,0.9,0.91 "$@"
"$PYTHON" -m training.plot "$OUT/resnet20" --out "$OUT/curves.png"
"$PYTHON" - "$OUT" <<'PY'
import json, os, sys

out = sys.argv[1]
final = json.load(open(os.path.join(out, "resnet20", "final_metrics.json")))
summary = {k: final[k] for k in ("model", "steps", "total_steps", "epochs", "completed", "eval_error", "eval_accuracy",
                                 "images_per_second", "train_time_s", "wall_time_s", "time_to_accuracy_s", "mixed_precision")}
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=2)
print(f"ResNet-20 bf16 JAX: {final['steps']}/{final['total_steps']} steps ({final['epochs']:.1f} epochs) in "
      f"{final['wall_time_s']:.0f}s; test error {100 * final['eval_error']:.2f}%; "
      f"{final['images_per_second']:.0f} images/s (training steps incl. first-step compile)")
for target, seconds in sorted(final["time_to_accuracy_s"].items()):
    print(f"  time to {100 * float(target):.0f}% test accuracy: {seconds:.0f}s")
PY
