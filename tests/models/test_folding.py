"""keras_resnets.fold_batch_norm: the folded model predicts what the original does, without BatchNorm.

Every block and shortcut kind at real sizes (ResNet-20 at batch 128, option-A zero-padding shortcuts;
plain-20; ResNet-18's basic blocks with projections; ResNet-50 at 224x224 in both downsampling layouts),
with random BatchNorm statistics so that a wrong fold cannot hide behind identity statistics. Layers
that cannot be folded stay, and the original model is never touched.
"""

import keras
import numpy as np
import pytest

import keras_resnets
from keras_resnets.models.folding import fold_batch_norm


def _random_statistics(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = (w.shape for w in layer.get_weights())
            layer.set_weights([rng.uniform(0.5, 1.5, gamma), rng.normal(0, 0.2, beta),
                               rng.normal(0, 0.2, mean), rng.uniform(0.5, 1.5, variance)])


def _norms(model):
    return sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)


def _relative(a, b):
    a, b = np.asarray(a, "float64"), np.asarray(b, "float64")
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


CASES = [
    pytest.param("resnet20", {}, 128, 32, 19, id="resnet20-batch128", marks=pytest.mark.backend),
    pytest.param("plain20", {}, 32, 32, 19, id="plain20"),
    pytest.param("resnet18", {}, 4, 224, 20, id="resnet18-224"),
    pytest.param("resnet50", {}, 4, 224, 53, id="resnet50-v1.5-224"),
    pytest.param("resnet50", {"downsample": "conv1x1"}, 4, 224, 53, id="resnet50-conv1x1-224"),
]


@pytest.mark.parametrize("name, options, batch, size, norms", CASES)
def test_folded_model_predicts_what_the_original_does(name, options, batch, size, norms):
    model = keras_resnets.get_model(name, input_shape=(size, size, 3), classifier_activation=None, **options)
    _random_statistics(model)
    before = [np.array(w) for w in model.get_weights()]
    folded = fold_batch_norm(model)
    assert _norms(model) == norms and _norms(folded) == 0
    images = np.random.default_rng(1).normal(size=(batch, size, size, 3)).astype("float32")
    expected = np.asarray(model(images, training=False))
    actual = np.asarray(folded(images, training=False))
    assert _relative(actual, expected) < 1e-5
    assert (actual.argmax(-1) == expected.argmax(-1)).all()
    # Four numbers per channel (gamma, beta, mean, variance) became one bias per folded convolution.
    removed = sum(layer.count_params() for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
    assert model.count_params() - folded.count_params() == removed * 3 // 4
    assert all(np.array_equal(a, np.asarray(b)) for a, b in zip(before, model.get_weights()))


def test_norms_that_cannot_be_folded_stay():
    inputs = keras.Input((8, 8, 3))
    conv = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)  # With a bias of its own.
    normed = keras.layers.BatchNormalization(name="norm_after_conv")(conv)
    shared_conv = keras.layers.Conv2D(4, 1, use_bias=False, name="shared_conv")(normed)
    # The unnormalised output is also read by the addition: folding would change what it adds.
    reused = keras.layers.BatchNormalization(name="norm_of_reused_conv")(shared_conv)
    added = keras.layers.Add()([reused, shared_conv])
    dense = keras.layers.Dense(5, name="dense")(keras.layers.GlobalAveragePooling2D()(added))
    outputs = keras.layers.BatchNormalization(name="norm_after_dense")(dense)
    model = keras.Model(inputs, outputs)
    _random_statistics(model)
    model.get_layer("conv").bias.assign(np.linspace(-1, 1, 4))
    folded = fold_batch_norm(model)
    kept = sorted(layer.name for layer in folded.layers if isinstance(layer, keras.layers.BatchNormalization))
    assert kept == ["norm_after_dense", "norm_of_reused_conv"]
    assert folded.get_layer("conv").use_bias and not folded.get_layer("shared_conv").use_bias
    images = np.random.default_rng(2).normal(size=(16, 8, 8, 3)).astype("float32")
    assert _relative(folded(images, training=False), model(images, training=False)) < 1e-5


def test_folded_model_saves_and_loads_without_custom_objects(tmp_path):
    model = keras_resnets.get_model("resnet20", input_shape=(32, 32, 3))
    _random_statistics(model)
    folded = fold_batch_norm(model)
    path = tmp_path / "folded.keras"
    folded.save(path)
    reloaded = keras.saving.load_model(path)
    images = np.random.default_rng(3).normal(size=(8, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(reloaded.predict_on_batch(images), folded.predict_on_batch(images), rtol=1e-6, atol=1e-7)


def test_only_functional_models_are_accepted():
    sequential = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3), keras.layers.BatchNormalization()])
    with pytest.raises(ValueError, match=r"functional Keras model .* Received: model of type Sequential"):
        fold_batch_norm(sequential)
