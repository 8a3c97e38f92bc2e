"""Check whether the known Keras 3 ``fit`` problems under tf.distribute still reproduce.

    python -m training.check_keras_fit

The training pipeline uses its own loop (training/engine_tf.py) because of these; run this after a Keras
or TensorFlow upgrade to see whether ``fit`` has caught up. Each case trains a tiny model with
``model.fit`` in a fresh process: MirroredStrategy over 2 logical CPUs (plain, ``jit_compile=True``,
``steps_per_execution=2``) and MultiWorkerMirroredStrategy with two local workers.
Observed with Keras 3.15.1 / TensorFlow 2.21 (CPU): mirrored OK; jit_compile FAILED (keras#19005:
"Trying to access resource ... located in device CPU:1 from device CPU:0"); steps_per_execution FAILED
("You must feed a value for placeholder tensor ... while/cond/Placeholder"); multi_worker FAILED
(keras#20585: "Attempt to convert a value (PerReplica:{...}) ...").
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

CASES = ("mirrored", "jit_compile", "steps_per_execution", "multi_worker")


def _case(name: str) -> str:
    """Runs in the subprocess: fit a tiny model under the case's setup; returns "OK" or the error."""
    import numpy as np
    import tensorflow as tf

    if name == "multi_worker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    import keras

    rng = np.random.default_rng(0)
    dataset = tf.data.Dataset.from_tensor_slices(
        (rng.random((64, 8, 8, 3), np.float32), rng.integers(0, 10, 64))
    ).batch(16)
    with strategy.scope():
        model = keras.Sequential([
            keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3), keras.layers.BatchNormalization(),
            keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10),
        ])
        options = {"jit_compile": name == "jit_compile"}
        if name == "steps_per_execution":
            options["steps_per_execution"] = 2
        model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True), **options)
    try:
        model.fit(dataset, epochs=1, verbose=0)
    except Exception as error:  # Reporting any failure is the point of this tool.
        return f"FAILED {type(error).__name__}: {' '.join(str(error).split())[-300:]}"
    return "OK"


def _run(name: str) -> str:
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    command = [sys.executable, "-m", "training.check_keras_fit", "--case", name]
    if name != "multi_worker":
        output = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600).stdout
        return output.strip().splitlines()[-1] if output.strip() else "FAILED (no output)"
    sockets = [socket.socket() for _ in range(2)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    workers = [f"127.0.0.1:{s.getsockname()[1]}" for s in sockets]
    for s in sockets:
        s.close()
    processes = []
    for index in range(2):
        worker_env = dict(env, TF_CONFIG=json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}))
        processes.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=worker_env))
    outputs = [p.communicate(timeout=600)[0].strip() for p in processes]
    return outputs[0].splitlines()[-1] if outputs[0] else "FAILED (no output)"


def main() -> None:
    """Run every case and print one line each."""
    if len(sys.argv) == 3 and sys.argv[1] == "--case":
        print(_case(sys.argv[2]), flush=True)
        return
    import keras
    import tensorflow as tf

    print(f"keras {keras.__version__}, tensorflow {tf.__version__}")
    for name in CASES:
        print(f"{name:20s} {_run(name)}", flush=True)


if __name__ == "__main__":
    main()
