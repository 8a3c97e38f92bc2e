"""Feature extractors: stated shapes and strides for every zoo model, equality with the classifier's
intermediate activations, and a two-step fit of a dense head."""

import keras
import numpy as np
import pytest
from helpers.deepest_nets import DEEPEST
from helpers.feature_maps import assert_feature_maps

import keras_resnets
from keras_resnets.models.features import feature_extractor, feature_info

EXPENSIVE = {"resnet101", "resnet152", "resnet110", "plain101", "plain152", "plain110"}


def _model_params():
    # ResNet-1202 and plain-1202: test_deepest_nets.py makes these checks on the build its other checks share.
    return [pytest.param(name, marks=pytest.mark.slow) if name in EXPENSIVE else name
            for name in keras_resnets.list_models() if name not in DEEPEST]


@pytest.mark.parametrize("name", _model_params())
def test_shapes_and_strides_of_every_model_at_two_sizes(name):
    assert_feature_maps(name, feature_extractor(name))


def test_features_equal_classifier_activations_with_real_cifar_weights(shared):
    weights = str(shared("weights/akamaster/resnet20.npz"))
    classifier = keras_resnets.ResNet20(weights=weights)
    extractor = feature_extractor("resnet20", weights=weights, as_list=True)
    images = keras_resnets.preprocess_input(
        np.load(shared("data/cifar10-test-first100.npz"))["x"][:8], "cifar10")
    taps = keras.Model(classifier.input, [classifier.get_layer(i.layer).output for i in extractor.feature_info])
    for ours, theirs in zip(extractor.predict_on_batch(images), taps.predict_on_batch(images)):
        np.testing.assert_array_equal(ours, theirs)
        assert float(np.abs(ours).max()) > 0


def test_imagenet_features_and_stem_level_equal_classifier_with_a_weights_file(tmp_path):
    keras.utils.set_random_seed(3)
    classifier = keras_resnets.ResNet18(input_shape=(64, 64, 3), classes=7)
    path = str(tmp_path / "resnet18.weights.h5")
    classifier.save_weights(path)
    extractor = feature_extractor("resnet18", weights=path, levels=("P1", 3, "P5"))
    assert [i.name for i in extractor.feature_info] == ["P1", "P3", "P5"]
    assert extractor.feature_info[0].layer == "relu" and extractor.feature_info[0].stride == 2
    images = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype("float32")
    ours = extractor.predict_on_batch(images)
    for info in extractor.feature_info:
        tap = keras.Model(classifier.input, classifier.get_layer(info.layer).output)
        np.testing.assert_allclose(ours[info.name], tap.predict_on_batch(images), rtol=1e-5, atol=1e-5)
    # The extractor stops at the deepest level asked for.
    shallow = feature_extractor("resnet18", levels=(2,))
    assert not any(layer.name.startswith("layer2.") for layer in shallow.layers)


@pytest.mark.parametrize("levels, message", [
    ((6,), "does not offer"), (("P3",), "does not offer"), ("P2", "non-empty list"), ((), "non-empty list"),
    ((0, "P0"), "twice"),
])
def test_bad_levels_name_the_argument(levels, message):
    with pytest.raises(ValueError, match=message) as info:
        feature_info("resnet20", levels)
    assert "levels=" in str(info.value)


def test_classifier_options_are_refused():
    with pytest.raises(ValueError, match="include_top=True"):
        feature_extractor("resnet20", include_top=True)
    with pytest.raises(ValueError, match="Unknown model name"):
        feature_extractor("resnet21")


def test_two_step_fit_of_a_dense_head():
    """Head only with the backbone frozen, then everything: both steps lower the loss."""
    keras.utils.set_random_seed(0)
    backbone = feature_extractor("resnet20")
    images = keras.Input((16, 16, 3))
    features = backbone(images)
    # A tiny FPN-style top-down merge, then per-pixel logits at stride 1.
    top = keras.layers.Conv2D(8, 1)(features["P2"])
    merged = keras.layers.Add()([keras.layers.UpSampling2D(2)(top), keras.layers.Conv2D(8, 1)(features["P1"])])
    merged = keras.layers.Add()([keras.layers.UpSampling2D(2)(merged), keras.layers.Conv2D(8, 1)(features["P0"])])
    logits = keras.layers.Conv2D(2, 3, padding="same")(merged)
    segmenter = keras.Model(images, logits)

    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 16, 16, 3)).astype("float32")
    y = (x[..., :1] > 0).astype("int32")  # A learnable per-pixel target.
    backbone_before = [w.copy() for w in backbone.get_weights()]

    backbone.trainable = False
    segmenter.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    first = segmenter.fit(x, y, batch_size=8, epochs=4, verbose=0).history["loss"]
    assert first[-1] < first[0]
    assert all(np.array_equal(a, b) for a, b in zip(backbone_before, backbone.get_weights()))

    backbone.trainable = True
    segmenter.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    second = segmenter.fit(x, y, batch_size=8, epochs=3, verbose=0).history["loss"]
    assert second[-1] < first[0]
    assert any(not np.array_equal(a, b) for a, b in zip(backbone_before, backbone.get_weights()))
