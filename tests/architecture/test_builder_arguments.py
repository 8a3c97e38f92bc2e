"""Builder arguments: wrong types raise a ValueError naming the argument; NumPy integers work as ints."""

import numpy as np
import pytest

import keras_resnets


@pytest.mark.parametrize("kwargs, argument", [
    ({"input_shape": 32}, "input_shape"),
    ({"input_shape": "32,32,3"}, "input_shape"),
    ({"input_shape": (32, 32, 0)}, "input_shape"),
    ({"input_shape": (32, 32)}, "input_shape"),
    ({"input_shape": (32.0, 32, 3)}, "input_shape"),
    ({"input_shape": (-32, 32, 3)}, "input_shape"),
    ({"input_shape": (32, 32, True)}, "input_shape"),
    ({"include_top": "False"}, "include_top"),
    ({"include_top": 1}, "include_top"),
    ({"zero_init_last_bn": "yes"}, "zero_init_last_bn"),
    ({"zero_init_last_bn": None}, "zero_init_last_bn"),
    ({"synchronized_bn": 0}, "synchronized_bn"),
    ({"include_preprocessing": "no"}, "include_preprocessing"),
    ({"input_tensor": np.zeros((1, 32, 32, 3), np.float32)}, "input_tensor"),
    ({"classes": 10.0}, "classes"),
    ({"classes": np.int64(0)}, "classes"),
    ({"classes": True}, "classes"),
])
def test_bad_arguments_raise_naming_the_argument(kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}`.*Received: {argument}="):
        keras_resnets.ResNet20(**kwargs)


def test_numpy_integers_are_accepted_where_ints_are():
    model = keras_resnets.ResNet20(classes=np.int64(7), input_shape=(np.int64(40), np.int32(40), np.int64(3)),
                                   include_top=np.bool_(True))
    assert model.output_shape == (None, 7)
    assert model.input_shape == (None, 40, 40, 3)
    assert all(type(size) is int for size in model.input_shape[1:])  # Plain ints in the saved config.
    features = keras_resnets.ResNet20(include_top=False, input_shape=np.array([32, 32, 3]), pooling="avg")
    assert features.output_shape == (None, 64)
