"""A saved ``.keras`` zoo model (fine-tuned ones included) loads with plain ``keras.saving.load_model`` in a
process that has never imported keras_resnets: the graph uses standard Keras layers only."""

import os
import subprocess
import sys

import numpy as np
import pytest

import keras_resnets

# Runs in a fresh interpreter from a neutral folder, without the checkout on sys.path.
LOADER = r"""
import sys
import numpy as np
import keras
model_file, inputs_file, out_file = sys.argv[1:]
model = keras.saving.load_model(model_file)  # safe_mode stays on
np.save(out_file, model.predict(np.load(inputs_file), verbose=0))
assert not any(name.startswith("keras_resnets") for name in sys.modules), "loading must not need keras_resnets"
"""


def _load_elsewhere(model_file, inputs, tmp_path):
    inputs_file, out_file = tmp_path / "inputs.npy", tmp_path / "outputs.npy"
    np.save(inputs_file, inputs)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    result = subprocess.run(
        [sys.executable, "-c", LOADER, str(model_file), str(inputs_file), str(out_file)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return np.load(out_file)


@pytest.mark.backend
@pytest.mark.parametrize(
    "build, input_shape",
    [
        (lambda: keras_resnets.ResNet20(), (32, 32, 3)),
        (lambda: keras_resnets.ResNet50(input_shape=(96, 96, 3), classes=7), (96, 96, 3)),
        (lambda: keras_resnets.PlainNet20(), (32, 32, 3)),
    ],
    ids=["resnet20", "resnet50", "plain20"],
)
def test_saved_model_loads_without_keras_resnets(build, input_shape, tmp_path):
    model = build()
    # Trained-looking BN statistics, so a wrong or missing layer would change the outputs.
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if layer.__class__.__name__ == "BatchNormalization":
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma + rng.normal(0, 0.1, gamma.shape), beta + rng.normal(0, 0.1, beta.shape),
                               rng.normal(0, 0.1, mean.shape), var + rng.uniform(0, 0.5, var.shape)])
    inputs = rng.normal(size=(4, *input_shape)).astype("float32")
    path = tmp_path / "model.keras"
    model.save(path)
    expected = model.predict(inputs, verbose=0)
    np.testing.assert_array_equal(_load_elsewhere(path, inputs, tmp_path), expected)


def test_fine_tuned_classifier_loads_without_keras_resnets(tmp_path):
    from keras_resnets.tasks.finetune import build_classifier

    model, _ = build_classifier("resnet20", num_classes=3, weights=None, dropout=0.2)
    inputs = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype("float32")
    path = tmp_path / "model.keras"
    model.save(path)
    np.testing.assert_array_equal(_load_elsewhere(path, inputs, tmp_path), model.predict(inputs, verbose=0))


def test_option_a_shortcut_matches_the_reference_definition():
    """The standard-layer shortcut equals x[:, ::2, ::2, :] zero-padded by planes // 4 on each side."""
    import keras

    model = keras_resnets.ResNet20(include_top=False, input_shape=(8, 8, 3))
    shortcut = model.get_layer("layer2.0.shortcut")
    block_input = model.get_layer("layer1.2.out").output
    probe = keras.Model(model.input, [block_input, shortcut.output])
    x = np.random.default_rng(2).normal(size=(2, 8, 8, 3)).astype("float32")
    before, after = (keras.ops.convert_to_numpy(t) for t in probe(x))
    reference = np.pad(before[:, ::2, ::2, :], [(0, 0), (0, 0), (0, 0), (8, 8)])
    np.testing.assert_array_equal(after, reference)
