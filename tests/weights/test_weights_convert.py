"""Torch/timm layout -> Keras conversion, checked against an independent numpy forward pass."""

import warnings

import numpy as np
import pytest
from safetensors.numpy import save_file

import keras_resnets
from keras_resnets.weights import WeightsMismatchError
from helpers.torch_reference import resnet_forward, timm_resnet_state_dict


def _write(tmp_path, state, name="model.safetensors"):
    path = tmp_path / name
    if name.endswith(".npz"):
        np.savez(path, **state)
    else:
        save_file(state, str(path))
    return str(path)


@pytest.mark.slow
@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_full_size_timm_checkpoint_matches_numpy_reference(tmp_path, depth):
    """Every tensor of a full-size timm state dict lands in the model; logits match a numpy forward pass.

    Weights do not depend on the input size, so the forward pass runs at 64x64 for speed.
    """
    state = timm_resnet_state_dict(depth, seed=depth)
    path = _write(tmp_path, state)
    full = keras_resnets.ResNet(depth, weights=path, classifier_activation=None)
    assert full.count_params() == sum(v.size for k, v in state.items() if not k.endswith("num_batches_tracked"))

    small = keras_resnets.ResNet(depth, weights=path, include_top=False, pooling="avg", input_shape=(64, 64, 3))
    images = np.random.default_rng(0).standard_normal((2, 64, 64, 3)).astype("float32")
    features = np.asarray(small(images, training=False))
    head = full.get_layer("fc")
    logits = features @ head.kernel.numpy() + head.bias.numpy()
    reference = resnet_forward(state, depth, images)
    np.testing.assert_allclose(logits, reference, rtol=1e-4, atol=1e-4 * np.abs(reference).max())


@pytest.mark.backend
def test_small_input_end_to_end_with_top(tmp_path):
    """A model with the top at a non-224 size gives the reference logits (any backend)."""
    state = timm_resnet_state_dict(18, seed=1)
    model = keras_resnets.ResNet18(weights=_write(tmp_path, state), input_shape=(48, 48, 3),
                                   classifier_activation=None)
    images = np.random.default_rng(2).standard_normal((1, 48, 48, 3)).astype("float32")
    reference = resnet_forward(state, 18, images)
    np.testing.assert_allclose(np.asarray(model(images, training=False)), reference, rtol=1e-4, atol=1e-4)


def test_missing_tensor_raises_naming_the_key(tmp_path):
    state = timm_resnet_state_dict(18)
    del state["layer3.1.bn2.running_var"]
    with pytest.raises(WeightsMismatchError, match=r"'layer3\.1\.bn2\.running_var'"):
        keras_resnets.ResNet18(weights=_write(tmp_path, state))


def test_misshaped_tensor_raises_naming_the_key_and_shapes(tmp_path):
    state = timm_resnet_state_dict(18)
    state["layer2.0.conv1.weight"] = state["layer2.0.conv1.weight"][:, :32]
    with pytest.raises(WeightsMismatchError, match=r"'layer2\.0\.conv1\.weight' has shape \(128, 32, 3, 3\)"):
        keras_resnets.ResNet18(weights=_write(tmp_path, state))


def test_weights_of_another_architecture_are_refused(tmp_path):
    """ResNet-34 tensors cover every ResNet-18 key with the right shapes; the unused ones give it away."""
    path = _write(tmp_path, timm_resnet_state_dict(34))
    with pytest.raises(WeightsMismatchError, match=r"no place for: 'layer1\.2\.bn1\.bias'"):
        keras_resnets.ResNet18(weights=path)
    with pytest.raises(WeightsMismatchError, match=r"'layer1\.0\.conv1\.weight' has shape \(64, 64, 3, 3\)"):
        keras_resnets.ResNet50(weights=path)


def test_num_batches_tracked_is_ignored_and_its_absence_is_fine(tmp_path):
    with_counter = keras_resnets.ResNet18(weights=_write(tmp_path, timm_resnet_state_dict(18), "a.safetensors"))
    without = keras_resnets.ResNet18(
        weights=_write(tmp_path, timm_resnet_state_dict(18, batches_tracked=False), "b.npz"))
    for a, b in zip(with_counter.get_weights(), without.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_other_class_count_loads_backbone_and_fresh_head_with_warning(tmp_path):
    state = timm_resnet_state_dict(18)
    with pytest.warns(UserWarning, match="1000-class classifier but the model has classes=5"):
        model = keras_resnets.ResNet18(weights=_write(tmp_path, state), classes=5)
    np.testing.assert_array_equal(model.get_layer("layer4.1.conv2").kernel.numpy(),
                                  state["layer4.1.conv2.weight"].transpose(2, 3, 1, 0))
    assert model.get_layer("fc").kernel.shape == (512, 5)
    np.testing.assert_array_equal(model.get_layer("fc").bias.numpy(), np.zeros(5))


def test_include_top_false_any_input_shape_loads_backbone_without_warning(tmp_path):
    state = timm_resnet_state_dict(18)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = keras_resnets.ResNet18(weights=_write(tmp_path, state), include_top=False, input_shape=(96, 160, 3))
    assert model.output_shape == (None, 3, 5, 512)
    np.testing.assert_array_equal(model.get_layer("bn1").gamma.numpy(), state["bn1.weight"])


def test_keras_native_files_round_trip_with_and_without_top(tmp_path):
    source = keras_resnets.ResNet20()
    source.save_weights(str(tmp_path / "r20.weights.h5"))
    source.save(str(tmp_path / "r20.keras"))
    for name in ("r20.weights.h5", "r20.keras"):
        same = keras_resnets.ResNet20(weights=str(tmp_path / name))
        for a, b in zip(source.get_weights(), same.get_weights()):
            np.testing.assert_array_equal(a, b)
        backbone = keras_resnets.ResNet20(weights=str(tmp_path / name), include_top=False)
        np.testing.assert_array_equal(backbone.get_layer("layer3.2.conv2").kernel.numpy(),
                                      source.get_layer("layer3.2.conv2").kernel.numpy())
        with pytest.warns(UserWarning, match="classes=100"):
            keras_resnets.ResNet20(weights=str(tmp_path / name), classes=100)
    with pytest.raises(WeightsMismatchError):
        keras_resnets.ResNet32(weights=str(tmp_path / "r20.weights.h5"))


@pytest.mark.parametrize(
    "weights, match",
    [
        ("no/such/file.safetensors", "no such file exists"),
        (42, "Received: weights=42"),
    ],
)
def test_bad_weights_arguments(weights, match):
    with pytest.raises(ValueError, match=match):
        keras_resnets.ResNet20(weights=weights)


def test_unsupported_file_type(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"\0" * 8)
    with pytest.raises(ValueError, match="Unsupported weights file type"):
        keras_resnets.ResNet20(weights=str(path))
