#!/usr/bin/env bash
# Sets up .venv, then runs the whole test suite: everything on the TensorFlow backend, then the
# tests marked `backend` (but not `slow`) again on JAX.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export KERAS_RESNETS_SHARED_DIR="${KERAS_RESNETS_SHARED_DIR:-$(cd .. && pwd)/shared}"
KERAS_BACKEND=tensorflow .venv/bin/python -m pytest -n 2 --durations=20 "$@" tests
KERAS_BACKEND=jax .venv/bin/python -m pytest -n 2 -m "backend and not slow" "$@" tests
