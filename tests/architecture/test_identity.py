"""One architecture identity: names, model graphs and stored descriptions agree, and differences are named."""

import pytest

import keras_resnets
from helpers.deepest_nets import DEEPEST
from keras_resnets.architecture.identity import Architecture, WeightsMismatchError
from keras_resnets.architecture.specs import cifar_spec, imagenet_spec


def assert_identified(name, model):
    """The registered model `name` as built (`model`), its name and its stored description are one architecture."""
    from_model = Architecture.from_model(model)
    assert from_model == Architecture.from_name(name) == keras_resnets.model_entry(name).architecture
    assert Architecture.from_dict(from_model.to_dict()) == from_model
    assert from_model.name == name


# ResNet-1202 and plain-1202: test_deepest_nets.py (one build of each net for all of its checks).
@pytest.mark.parametrize("name", [name for name in keras_resnets.list_models() if name not in DEEPEST])
def test_name_model_and_dict_agree_for_every_registered_model(name):
    assert_identified(name, keras_resnets.get_model(name, include_top=False, input_shape=(64, 64, 3)))


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        (dict(shortcut="C"), dict(shortcut="C", downsample="conv3x3")),
        (dict(downsample="conv1x1"), dict(shortcut="B", downsample="conv1x1")),
        (dict(downsample="conv1x1", shortcut="A"), dict(shortcut="A", downsample="conv1x1")),
    ],
)
def test_options_are_read_back_from_the_graph(kwargs, expected):
    model = keras_resnets.ResNet50(include_top=False, input_shape=(64, 64, 3), **kwargs)
    architecture = Architecture.from_model(model)
    assert (architecture.shortcut, architecture.downsample) == (expected["shortcut"], expected["downsample"])


def test_options_that_do_not_change_a_network_are_normalised_away():
    assert Architecture(cifar_spec(20), residual=False, shortcut="B") == Architecture.from_name("plain20")
    assert Architecture(imagenet_spec(34), downsample="conv1x1") == Architecture.from_name("resnet34")
    assert Architecture.from_dict(dict(family="cifar", depth=20, residual=False, shortcut="A", downsample="conv3x3")) \
        == Architecture.from_name("plain20")  # Older config.json files spelled these out.


def test_require_same_names_every_difference():
    model = Architecture.from_name("resnet20")
    with pytest.raises(WeightsMismatchError, match=r"residual: weights False vs model True"):
        model.require_same(Architecture.from_name("plain20"), "plain.weights.h5")
    with pytest.raises(WeightsMismatchError, match=r"depth: weights 56 vs model 20"):
        model.require_same(Architecture.from_name("resnet56"), "resnet56.npz")
    model.require_same(Architecture.from_name("ResNet20"), "same")  # Builder-style names parse too.
    assert issubclass(WeightsMismatchError, ValueError)


@pytest.mark.parametrize("bad", ["resnet", "resnet21", "vgg16", "plain-20", 20, None])
def test_bad_names_are_refused(bad):
    with pytest.raises(ValueError, match="Received"):
        Architecture.from_name(bad)


def test_a_model_of_another_zoo_is_not_identified():
    import keras

    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3, name="conv")(inputs))
    with pytest.raises(WeightsMismatchError, match="not a keras_resnets model"):
        Architecture.from_model(model)
