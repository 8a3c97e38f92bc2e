#!/usr/bin/env bash
# Sets up .venv, then runs the main job: prints the model table (every model of the zoo built and measured).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
KERAS_BACKEND="${KERAS_BACKEND:-tensorflow}" .venv/bin/python -m keras_resnets.summary
