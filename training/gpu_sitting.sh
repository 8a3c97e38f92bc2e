#!/usr/bin/env bash
# One GPU sitting of the Figure 6 / Table 6 runs (training/sitting.py), from the CIFAR-10 JPEGs.
#
#   bash training/gpu_sitting.sh DATA RUNS_DIR MINUTES [RUN ...]
#
# DATA      the cifar10-jpeg.tar.gz tarball (extracted into a temporary folder) or an extracted folder.
# RUNS_DIR  one workdir per run; keep it between sittings: the same command resumes every run.
# MINUTES   length of the sitting; every run checkpoints and stops when it is up.
# RUN       MODEL, MODEL@PRECISION or torch:MODEL (default: the Figure 6 set and both controls); other
#           arguments go to `python -m training.sitting` too (e.g. --set train_length=200 for a smoke test).
# Environment: PYTHON (default python3), PARALLEL (training processes at once, default 3).
# Needs jax (with a GPU), keras, numpy, pillow, h5py, and torch for the controls; no TensorFlow.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
DATA="$1"
RUNS_DIR="$2"
MINUTES="$3"
shift 3
if [ "$#" -eq 0 ]; then
  set -- resnet20 plain20 resnet56 plain56 resnet32 plain32 resnet44 plain44 resnet110 torch:resnet20 torch:resnet56
fi
if [ -f "$DATA" ]; then
  EXTRACTED="$(mktemp -d)"
  trap 'rm -rf "$EXTRACTED"' EXIT
  tar xzf "$DATA" -C "$EXTRACTED"
  DATA_DIR="$EXTRACTED/cifar10-jpeg"
else
  DATA_DIR="$DATA"
fi
export KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
"$PYTHON" -c "import jax, keras; print('devices:', jax.devices(), 'jax', jax.__version__, 'keras', keras.__version__)"
"$PYTHON" -m training.sitting --data-dir "$DATA_DIR" --runs-dir "$RUNS_DIR" --minutes "$MINUTES" \
  --parallel "${PARALLEL:-3}" "$@"
