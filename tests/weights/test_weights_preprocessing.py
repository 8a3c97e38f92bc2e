"""Preprocessing tied to weight records, in-model preprocessing, and prediction decoding."""

import json

import numpy as np
import pytest

import keras_resnets
from keras_resnets.data.preprocessing import class_names, preprocessing_for


def test_preprocess_input_uses_the_record_statistics():
    image = np.full((1, 2, 2, 3), 255.0 * np.array([0.485, 0.456, 0.406]), dtype="float32")
    np.testing.assert_allclose(keras_resnets.preprocess_input(image, "imagenet"), 0.0, atol=1e-5)
    white = np.full((2, 2, 3), 255, dtype="uint8")
    expected = (1.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(keras_resnets.preprocess_input(white, "resnet50.a1_in1k")[0, 0], expected, rtol=1e-5)
    with pytest.raises(ValueError, match="3 channels"):
        keras_resnets.preprocess_input(np.zeros((4, 4, 1)), "imagenet")


def test_preprocessing_differs_per_record_and_tag_lookup():
    assert preprocessing_for("resnet50.tv2_in1k").resize_size == 232
    assert preprocessing_for("tv_in1k").resize_size == 256
    assert preprocessing_for("resnet50.a1_in1k").interpolation == "bicubic"
    assert preprocessing_for("cifar10").input_size == 32
    assert preprocessing_for("a1h_in1k", model="resnet101").crop_pct == 0.95
    with pytest.raises(ValueError, match="pass `model`"):
        preprocessing_for("a1h_in1k")  # resnet50's a1h is evaluated differently.
    with pytest.raises(ValueError, match="Available tags"):
        preprocessing_for("bogus")


def test_prepare_image_resizes_shorter_side_and_centre_crops():
    image = np.zeros((300, 400, 3), dtype="uint8")
    image[:, 200:] = 255  # Right half white: the crop must stay centred.
    out = keras_resnets.prepare_image(image, "resnet50.tv_in1k")
    assert out.shape == (224, 224, 3) and out.dtype == np.float32
    assert out[:, :100].max() == 0 and out[:, 124:].min() == 255


def test_imagenet_class_names_ship_with_the_package(shared):
    reference = json.loads(shared("reference/imagenet_classes.json").read_text())
    names = class_names("imagenet-1k")
    assert names == [label for _, label in reference]
    scores = np.zeros((2, 1000), dtype="float32")
    scores[0, 1], scores[0, 0] = 0.9, 0.1
    scores[1, 999] = 1.0
    decoded = keras_resnets.decode_predictions(scores, top=2)
    assert decoded[0] == [("n01443537", reference[1][1], pytest.approx(0.9)), ("n01440764", reference[0][1], pytest.approx(0.1))]
    assert decoded[1][0][:2] == tuple(reference[999])


def test_decode_predictions_cifar_and_errors():
    scores = np.eye(10, dtype="float32")[[3]]
    assert keras_resnets.decode_predictions(scores, top=1) == [[("3", "cat", 1.0)]]
    with pytest.raises(ValueError, match="1000 .* or 10"):
        keras_resnets.decode_predictions(np.zeros((1, 7)))
    with pytest.raises(ValueError, match="top"):
        keras_resnets.decode_predictions(scores, top=0)


@pytest.mark.backend
def test_include_preprocessing_equals_external_preprocessing(shared):
    weights = str(shared("weights/akamaster/resnet20.npz"))
    with np.load(shared("data/cifar10-test-first100.npz")) as data:
        images = data["x"][:8]
    plain = keras_resnets.ResNet20(weights=weights, classifier_activation=None)
    inside = keras_resnets.ResNet20(weights=weights, classifier_activation=None, include_preprocessing=True)
    assert inside.input_shape == (None, None, None, 3)
    expected = np.asarray(plain(keras_resnets.preprocess_input(images, "cifar10"), training=False))
    np.testing.assert_allclose(np.asarray(inside(images.astype("float32"), training=False)), expected, atol=1e-4)
    # Any input size is resized to the weights' 32x32.
    upscaled = np.repeat(np.repeat(images.astype("float32"), 2, axis=1), 2, axis=2)
    assert inside(upscaled).shape == (8, 10)


def test_include_preprocessing_uses_the_selected_record():
    model = keras_resnets.ResNet50(include_preprocessing=True, include_top=False)
    resize = model.get_layer("preprocessing.resize")
    assert (resize.height, resize.width) == (224, 224)
