"""Preprocessing tied to weight records, in-model preprocessing, and prediction decoding."""

import json

import numpy as np
import pytest

import keras_resnets
from keras_resnets.data.preprocessing import class_names, preprocessing_for
from keras_resnets.tasks.model_info import ModelInfo
from keras_resnets.weights.records import Preprocessing


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
    assert preprocessing_for("cifar10").input_size == (32, 32)
    assert preprocessing_for("tv2_in1k", model="resnet50", input_size=(160, 192)).resize_size == 198  # floor(192 / 0.965)
    assert preprocessing_for(None, model="resnet20").input_size == (32, 32)  # unregistered weights: the family's
    assert preprocessing_for("/some/weights.npz", model="resnet50").crop_pct == 0.875
    with pytest.raises(ValueError, match="pass `model`"):
        preprocessing_for("/some/weights.npz")
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
    assert resize.preprocessing == keras_resnets.get_weights_record("resnet50.tv_in1k").preprocessing
    assert resize.preprocessing.input_size == (224, 224)


def test_preprocessing_validates_its_arguments():
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    assert Preprocessing(mean, std, input_size=(160, 224)).input_size == (160, 224)
    assert Preprocessing(mean, std, input_size=64).input_size == (64, 64)
    with pytest.raises(ValueError, match="input_size.*Received: input_size=0"):
        Preprocessing(mean, std, input_size=0)
    with pytest.raises(ValueError, match="input_size"):
        Preprocessing(mean, std, input_size=(1, 2, 3))
    with pytest.raises(ValueError, match="crop_pct.*1.5"):
        Preprocessing(mean, std, input_size=32, crop_pct=1.5)
    with pytest.raises(ValueError, match="crop_mode"):
        Preprocessing(mean, std, input_size=32, crop_mode="border")
    with pytest.raises(ValueError, match="std"):
        Preprocessing(mean, (0.2, 0.0, 0.2), input_size=32)


def test_model_info_json_reads_the_old_format_and_round_trips(tmp_path):
    statistics = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "interpolation": "bilinear"}
    # keras_resnets.json as fine-tuning wrote it before crop_pct was stored.
    old = {"format_version": 1, "class_names": ["a", "b"], "base_model": "resnet50", "weights": "imagenet", "extra": {},
           "preprocessing": {"input_size": [224, 224], "resize_size": 256, **statistics}}
    (tmp_path / "keras_resnets.json").write_text(json.dumps(old))
    info = ModelInfo.load(tmp_path / "keras_resnets.json")
    assert info.preprocessing == keras_resnets.get_weights_record("resnet50.tv_in1k").preprocessing
    squash = Preprocessing.from_dict({"input_size": [32, 32], "resize_size": None, **statistics})
    assert squash.crop_mode == "squash" and squash.resize_size is None
    wide = Preprocessing.from_dict({"input_size": [160, 224], "resize_size": 300, **statistics})
    assert wide.resize_size == 300 and wide.geometry(600, 800) == (300, 400, 70, 88)
    for size in range(8, 400, 13):
        for resize_size in range(size, 2 * size, 7):
            assert Preprocessing.from_dict({"input_size": size, "resize_size": resize_size, **statistics}).resize_size == resize_size
    for pre in {r.preprocessing for r in keras_resnets.list_weights()} | {squash, wide}:
        assert Preprocessing.from_dict(json.loads(json.dumps(pre.to_dict()))) == pre
    with pytest.raises(ValueError, match="contradicts"):
        Preprocessing.from_dict({"input_size": [224, 224], "resize_size": 250, "crop_pct": 0.875, **statistics})
    with pytest.raises(ValueError, match="resize_size"):
        Preprocessing.from_dict({"input_size": [224, 224], "resize_size": 200, **statistics})
