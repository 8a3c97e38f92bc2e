"""training/gpu_run.sh on CPU with a tiny step count, on a Python where TensorFlow and matplotlib are absent.

The GPU machine has JAX, keras, numpy, pillow and h5py only; a sitecustomize that makes `import
tensorflow`, `tensorflow_datasets` and `matplotlib` fail reproduces that here, so any import of them on
this path fails the test.
"""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT


BLOCKER = """
import sys
for name in ("tensorflow", "tensorflow_datasets", "matplotlib"):
    sys.modules[name] = None  # `import name` now raises ImportError.
"""


@pytest.mark.slow
def test_gpu_script_runs_without_tensorflow(tiny_cifar_root, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    out = tmp_path / "out"
    env = dict(os.environ, PYTHON=sys.executable, PYTHONPATH=f"{site}{os.pathsep}{REPO_ROOT}", MINUTES="5")
    env.pop("KERAS_BACKEND", None)  # The script sets jax itself.
    process = subprocess.run(
        ["bash", str(REPO_ROOT / "training" / "gpu_run.sh"), str(tiny_cifar_root), str(out), "--set", "train_length=6"],
        capture_output=True, text=True, env=env, timeout=400,
    )
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-5000:]
    assert "images/s" in process.stdout and "ResNet-20 bf16 JAX: 6/6 steps" in process.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mixed_precision"] == "bfloat16" and summary["steps"] == 6
    final = json.loads((out / "resnet20" / "final_metrics.json").read_text())
    assert final["backend"] == "jax" and final["recipe"] == "cifar10_paper"
    assert len(json.loads((out / "resnet20" / "history.json").read_text())) == 3  # 2 steps per epoch.
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert not (out / "resnet20" / "tensorboard").exists()  # No TensorFlow, no TensorBoard.
