"""Runs tiny training jobs in a fresh process (device setup must precede TensorFlow/JAX start-up).

Usage: python tests/helpers/training_subprocess.py MODE DATA_DIR WORKDIR [KEY=VALUE ...]; prints one JSON line
``RESULT {...}`` with what the calling test compares. Modes:
  mirrored   2 logical CPUs: single device vs MirroredStrategy with synchronized BN vs with plain BN
  worker     one MultiWorkerMirroredStrategy worker (TF_CONFIG from the environment)
  single     one plain run (KEY=VALUE config overrides)
  jax_dp     JAX with 2 host devices: single device vs DataParallel
"""

import json
import os
import sys


def tiny_config(data_dir, **overrides):
    from training.config import TrainConfig

    fields = dict(
        model="resnet8", dataset="image_folder", data_dir=data_dir, image_size=16, global_batch_size=16,
        # A small learning rate: one device and 2 replicas sum in different orders, and over 6 steps at
        # lr 0.02 those rounding differences grew to ~1e-2 (relative) on an AVX2 CPU; at 0.002 they stay
        # ~1e-6 while plain BN over 2 replicas still differs by ~1e-1.
        train_length=6, base_lr=0.002, lr_boundaries=(), log_every_steps=2, eval_every_steps=1000, checkpoint_every_steps=1000,
        deterministic=True, xla=False, seed=3,
    )
    fields.update(overrides)
    return TrainConfig(**fields)


def run(config, workdir):
    from training.train import train_and_evaluate

    metrics = train_and_evaluate(config, workdir)
    return {"fingerprint": metrics["weights_fingerprint"], "eval_error": metrics["eval_error"]}


def error_of(function):
    try:
        function()
    except ValueError as error:
        return str(error)
    return None


def main():
    mode, data_dir, workdir = sys.argv[1:4]
    overrides = dict(item.split("=", 1) for item in sys.argv[4:])
    result = {}
    if mode == "mirrored":
        import tensorflow as tf
        from training.config import parse_field_value

        typed = {key: parse_field_value(key, value) for key, value in overrides.items()}

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        result["plain"] = run(tiny_config(data_dir, distribution="mirrored", **typed), f"{workdir}/plain")
        result["single"] = run(tiny_config(data_dir, distribution="none", synchronized_bn=True, **typed), f"{workdir}/single")
        result["sync"] = run(tiny_config(data_dir, distribution="mirrored", synchronized_bn=True, **typed), f"{workdir}/sync")
        result["xla"] = error_of(lambda: run(tiny_config(data_dir, distribution="mirrored", xla=True), f"{workdir}/xla"))
        result["odd_batch"] = error_of(lambda: run(tiny_config(data_dir, distribution="mirrored", global_batch_size=15), f"{workdir}/odd"))
    elif mode == "worker":
        result["worker"] = run(tiny_config(data_dir, distribution="multi_worker", synchronized_bn=True), workdir)
    elif mode == "single":
        from training.config import parse_field_value

        typed = {key: parse_field_value(key, value) for key, value in overrides.items()}
        result["single"] = run(tiny_config(data_dir, **typed), workdir)
    elif mode == "jax_dp":
        import jax

        assert jax.device_count() == 2, jax.devices()
        result["single"] = run(tiny_config(data_dir, distribution="none", xla=None), f"{workdir}/single")
        result["odd_batch"] = error_of(lambda: run(tiny_config(data_dir, distribution="jax_data_parallel", global_batch_size=15, xla=None), f"{workdir}/odd"))
        result["data_parallel"] = run(tiny_config(data_dir, distribution="jax_data_parallel", xla=None), f"{workdir}/dp")
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    main()
