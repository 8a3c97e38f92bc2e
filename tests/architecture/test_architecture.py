"""Architecture facts: parameter counts, layer names, shortcuts, layouts, numerics, bad input."""

import numpy as np
import pytest

import keras
import keras_resnets
from keras_resnets.architecture.specs import cifar_spec, imagenet_spec


def trainable_params(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


# torchvision's counts (1000 classes, v1.5, option B).
IMAGENET_PARAMS = {18: 11_689_512, 34: 21_797_672, 50: 25_557_032, 101: 44_549_160, 152: 60_192_808}
# The paper's 0.27M ... 19.4M (10 classes, option A).
CIFAR_PARAMS = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962, 1202: 19_421_274}


@pytest.mark.parametrize("depth", sorted(IMAGENET_PARAMS))
def test_imagenet_parameter_counts(depth):
    assert trainable_params(keras_resnets.ResNet(depth, family="imagenet")) == IMAGENET_PARAMS[depth]


# ResNet-1202 and plain-1202: test_deepest_nets.py (one build of each net for all of its checks).
@pytest.mark.parametrize("depth", [d for d in sorted(CIFAR_PARAMS) if d != 1202])
def test_cifar_parameter_counts_residual_and_plain(depth):
    residual = keras_resnets.ResNet(depth, family="cifar")
    plain = keras_resnets.ResNet(depth, family="cifar", residual=False)
    assert trainable_params(residual) == CIFAR_PARAMS[depth]
    assert trainable_params(plain) == CIFAR_PARAMS[depth]


@pytest.mark.parametrize("depth", [18, 34, 50])
def test_imagenet_plain_has_residual_params_without_projections(depth):
    plain = keras_resnets.ResNet(depth, residual=False, input_shape=(64, 64, 3))
    residual_a = keras_resnets.ResNet(depth, shortcut="A", input_shape=(64, 64, 3))
    assert trainable_params(plain) == trainable_params(residual_a)
    assert not any("downsample" in layer.name for layer in plain.layers)


def torchvision_weight_keys(depth):
    """Module names that carry weights in torchvision's resnet{depth}, written out independently."""
    block, stage_blocks = {18: ("basic", (2, 2, 2, 2)), 50: ("bottleneck", (3, 4, 6, 3))}[depth]
    convs = 2 if block == "basic" else 3
    keys = {"conv1", "bn1", "fc"}
    for stage, blocks in enumerate(stage_blocks, start=1):
        for b in range(blocks):
            for c in range(1, convs + 1):
                keys |= {f"layer{stage}.{b}.conv{c}", f"layer{stage}.{b}.bn{c}"}
            if b == 0 and (stage > 1 or block == "bottleneck"):
                keys |= {f"layer{stage}.{b}.downsample.0", f"layer{stage}.{b}.downsample.1"}
    return keys


@pytest.mark.parametrize("depth", [18, 50])
def test_layer_names_map_onto_torchvision_keys(depth):
    model = keras_resnets.ResNet(depth)
    weighted = {layer.name for layer in model.layers if layer.weights}
    assert weighted == torchvision_weight_keys(depth)


def test_option_a_pads_channels_on_both_sides_after_subsampling():
    x = np.arange(1 * 4 * 4 * 2, dtype="float32").reshape(1, 4, 4, 2) + 1
    y = keras.ops.convert_to_numpy(keras_resnets.ZeroPadShortcut(filters=4, stride=2)(x))
    expected = np.zeros((1, 2, 2, 4), "float32")
    expected[..., 1:3] = x[:, ::2, ::2, :]
    np.testing.assert_array_equal(y, expected)


def test_option_a_pads_planes_quarter_each_side_in_model():
    model = keras_resnets.ResNet20()
    block_input = model.get_layer("layer1.2.out").output
    probe = keras.Model(model.input, [block_input, model.get_layer("layer2.0.shortcut").output])
    x = np.random.default_rng(0).normal(size=(1, 32, 32, 3)).astype("float32")
    before, y = (keras.ops.convert_to_numpy(t) for t in probe(x))
    assert y.shape == (1, 16, 16, 32)
    np.testing.assert_array_equal(y[..., :8], 0)
    np.testing.assert_array_equal(y[..., 24:], 0)
    np.testing.assert_array_equal(y[..., 8:24], before[:, ::2, ::2, :])


def test_residual_blocks_are_identities_when_branches_start_at_zero():
    """With zero-initialised last BN scales every residual branch outputs 0, so each block passes its
    shortcut through: the last feature map is the stem output, subsampled and zero-padded (option A).
    A plain net with the same weights outputs exactly zero, so this proves the shortcuts exist."""
    kwargs = dict(include_top=False, input_shape=(16, 16, 3), zero_init_last_bn=True)
    residual = keras_resnets.ResNet20(**kwargs)
    plain = keras_resnets.PlainNet20(**kwargs)
    plain.set_weights(residual.get_weights())
    images = np.random.default_rng(1).normal(size=(2, 16, 16, 3)).astype("float32")
    stem = keras.Model(residual.input, residual.get_layer("relu").output)(images)
    stem = keras.ops.convert_to_numpy(stem)
    expected = np.zeros((2, 4, 4, 64), "float32")
    expected[..., 24:40] = stem[:, ::4, ::4, :]  # 16 -> 32 -> 64 channels: 8 then 16 zeros each side.
    np.testing.assert_allclose(keras.ops.convert_to_numpy(residual(images)), expected, atol=1e-6)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(plain(images)), 0)


def test_plain_and_residual_differ_with_same_weights():
    residual = keras_resnets.ResNet20(input_shape=(16, 16, 3))
    plain = keras_resnets.PlainNet20(input_shape=(16, 16, 3))
    plain.set_weights(residual.get_weights())
    images = np.random.default_rng(2).normal(size=(2, 16, 16, 3)).astype("float32")
    assert np.abs(residual.predict(images, verbose=0) - plain.predict(images, verbose=0)).max() > 1e-3
    assert not any(isinstance(layer, keras.layers.Add) for layer in plain.layers)
    assert sum(isinstance(layer, keras.layers.Add) for layer in residual.layers) == 9


@pytest.mark.parametrize("shortcut, projections", [("A", 0), ("B", 3), ("C", 16)])
def test_shortcut_options_on_resnet50(shortcut, projections):
    model = keras_resnets.ResNet50(shortcut=shortcut, input_shape=(64, 64, 3), classes=10)
    convs = [layer for layer in model.layers if layer.name.endswith("downsample.0")]
    # Option B: stage 1 block 0 (64 -> 256 channels) also projects: 4 projections.
    assert len(convs) == (4 if shortcut == "B" else projections)


def test_resnet34_option_b_projects_only_where_dimensions_change():
    model = keras_resnets.ResNet34(input_shape=(64, 64, 3))
    names = sorted(layer.name for layer in model.layers if layer.name.endswith("downsample.0"))
    assert names == ["layer2.0.downsample.0", "layer3.0.downsample.0", "layer4.0.downsample.0"]


@pytest.mark.parametrize("downsample, strided", [("conv3x3", "layer2.0.conv2"), ("conv1x1", "layer2.0.conv1")])
def test_downsample_placement(downsample, strided):
    model = keras_resnets.ResNet50(downsample=downsample, input_shape=(64, 64, 3))
    strides = {l.name: l.strides for l in model.layers if isinstance(l, keras.layers.Conv2D) and l.name.startswith("layer2.0.conv")}
    assert strides[strided] == (2, 2)
    assert [s for s in strides.values() if s == (2, 2)] == [(2, 2)]


def test_numerics_match_pytorch_conventions():
    model = keras_resnets.ResNet50(input_shape=(64, 64, 3))
    bns = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert {(l.epsilon, l.momentum) for l in bns} == {(1e-5, 0.9)}
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    assert not any(l.use_bias for l in convs)
    for conv in convs:
        if conv.strides == (2, 2) and conv.kernel_size[0] > 1:
            assert conv.padding == "valid"
            assert isinstance(model.get_layer(f"{conv.name}_pad"), keras.layers.ZeroPadding2D)
    assert model.get_layer("maxpool").padding == "valid"


def test_strided_conv_matches_symmetric_padding_reference():
    """A stride-2 3x3 conv must see one zero row/column on every side, as in PyTorch."""
    model = keras_resnets.ResNet20(include_top=False, input_shape=(8, 8, 3))
    conv = model.get_layer("layer2.0.conv1")
    sub = keras.Model(model.get_layer("layer1.2.out").output, conv.output)
    x = np.random.default_rng(3).normal(size=(1, 8, 8, 16)).astype("float32")
    kernel = keras.ops.convert_to_numpy(conv.kernel)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    expected = np.zeros((1, 4, 4, 32), "float32")
    for i in range(4):
        for j in range(4):
            patch = padded[0, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3, :]
            expected[0, i, j] = np.tensordot(patch, kernel, axes=3)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(sub(x)), expected, rtol=1e-4, atol=1e-4)


def test_two_models_live_in_one_graph():
    inputs = keras.Input((32, 32, 3))
    a, b = keras_resnets.ResNet20(), keras_resnets.ResNet20()
    assert a.name != b.name
    outputs = keras.layers.Concatenate()([a(inputs), b(inputs)])
    combined = keras.Model(inputs, outputs)
    assert combined.output_shape == (None, 20)


def test_input_tensor_and_pooling_variants():
    tensor = keras.Input((40, 40, 3))
    model = keras_resnets.ResNet18(input_tensor=tensor, include_top=False, pooling="max")
    assert model.output_shape == (None, 512)
    assert keras_resnets.ResNet50(include_top=False).output_shape == (None, None, None, 2048)
    assert keras_resnets.ResNet56(include_top=False, pooling="avg").output_shape == (None, 64)


def test_generic_builder_accepts_any_6n_plus_2_and_custom_specs():
    assert trainable_params(keras_resnets.ResNet(14)) < trainable_params(keras_resnets.ResNet(20))
    assert keras_resnets.ResNet(50, family="cifar").name.startswith("resnet50")
    spec = keras_resnets.ResNetSpec(
        family="imagenet", depth=10, block="basic", stage_blocks=(1, 1, 1, 1), stage_filters=(8, 16, 32, 64),
        stem="imagenet", stem_filters=8, default_shortcut="B", default_input_shape=(64, 64, 3),
        default_classes=3,
    )
    model = keras_resnets.build_resnet(spec)
    assert model.output_shape == (None, 3)


def test_registry_lookup_and_duplicates():
    names = keras_resnets.list_models()
    assert len(names) == 22 and len(set(names)) == 22
    assert keras_resnets.list_models(family="cifar", residual=False) == [
        "plain20", "plain32", "plain44", "plain56", "plain110", "plain1202",
    ]
    assert keras_resnets.model_entry("PlainNet56").name == "plain56"
    assert keras_resnets.model_entry("ResNet110").paper_top1_error == 6.43
    from keras_resnets.models.registry import MODELS

    with pytest.raises(ValueError, match="already registered"):
        MODELS.register(keras_resnets.model_entry("resnet20"))


BAD_INPUTS = [
    (lambda: keras_resnets.ResNet(21), "depth", "21"),
    (lambda: keras_resnets.ResNet(19, family="imagenet"), "depth", "19"),
    (lambda: keras_resnets.ResNet18(input_shape=(16, 16, 3)), "input_shape", "(16, 16, 3)"),
    (lambda: keras_resnets.ResNet20(input_shape=(2, 2, 3)), "input_shape", "(2, 2, 3)"),
    (lambda: keras_resnets.ResNet20(input_shape=(32, 32, 1), weights="imagenet"), "input_shape", "(32, 32, 1)"),
    (lambda: keras_resnets.ResNet20(include_top=False, pooling="mean"), "pooling", "'mean'"),
    (lambda: keras_resnets.ResNet20(classes=0), "classes", "0"),
    (lambda: keras_resnets.ResNet20(input_shape=(None, None, 3)), "input_shape", "None"),
    (lambda: keras_resnets.ResNet20(shortcut="D"), "shortcut", "'D'"),
    (lambda: keras_resnets.ResNet50(downsample="pool"), "downsample", "'pool'"),
    (lambda: keras_resnets.ResNet(20, family="mnist"), "family", "'mnist'"),
    (lambda: keras_resnets.get_model("resnet19"), "name", "'resnet19'"),
    (lambda: keras_resnets.ResNet20(input_shape=(32, 32)), "input_shape", "(32, 32)"),
]


@pytest.mark.parametrize("make, argument, value", BAD_INPUTS)
def test_bad_input_names_argument_value_and_accepted(make, argument, value):
    with pytest.raises(ValueError) as error:
        make()
    message = str(error.value)
    assert argument in message and value in message
    assert "Received" in message


def test_spec_properties():
    assert imagenet_spec(50).num_features == 2048
    assert imagenet_spec(50).total_stride == 32
    assert cifar_spec(20).total_stride == 4
    assert cifar_spec(1202).stage_blocks == (200, 200, 200)
