"""Weight files remember the architecture they were made for; a twin with the same variables refuses them."""

import numpy as np
import pytest

import keras_resnets
from keras_resnets.weights import WeightsMismatchError
from keras_resnets.architecture.identity import Architecture
from keras_resnets.weights import fingerprint


@pytest.mark.parametrize(
    "build, expected",
    [
        (lambda: keras_resnets.ResNet50(input_shape=(64, 64, 3)),
         dict(family="imagenet", depth=50, block="bottleneck", residual=True, shortcut="B", downsample="conv3x3")),
        (lambda: keras_resnets.ResNet50(input_shape=(64, 64, 3), downsample="conv1x1", shortcut="C"),
         dict(family="imagenet", depth=50, block="bottleneck", residual=True, shortcut="C", downsample="conv1x1")),
        (lambda: keras_resnets.PlainNet34(input_shape=(64, 64, 3)),
         dict(family="imagenet", depth=34, block="basic", residual=False, shortcut=None, downsample=None)),
        (lambda: keras_resnets.ResNet56(),
         dict(family="cifar", depth=56, block="basic", residual=True, shortcut="A", downsample=None)),
    ],
)
def test_architecture_is_read_back_from_the_layer_graph(build, expected):
    assert Architecture.from_model(build()).to_dict() == expected


def test_plain_weights_refused_by_residual_twin(tmp_path):
    plain = keras_resnets.PlainNet20()
    path = str(tmp_path / "plain20.weights.h5")
    fingerprint.save_weights(plain, path)
    with pytest.raises(WeightsMismatchError, match="residual: weights False vs model True"):
        keras_resnets.ResNet20(weights=path)
    same = keras_resnets.PlainNet20(weights=path)
    for a, b in zip(plain.get_weights(), same.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_keras_file_of_another_layout_refused(tmp_path):
    path = str(tmp_path / "paper_layout.keras")
    keras_resnets.ResNet50(input_shape=(64, 64, 3), downsample="conv1x1").save(path)
    with pytest.raises(WeightsMismatchError, match="downsample: weights 'conv1x1' vs model 'conv3x3'"):
        keras_resnets.ResNet50(weights=path, input_shape=(64, 64, 3))
    keras_resnets.ResNet50(weights=path, input_shape=(64, 64, 3), downsample="conv1x1")
