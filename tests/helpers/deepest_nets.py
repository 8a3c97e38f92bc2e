"""ResNet-1202 and plain-1202 (3,600+ layers), built for tests/architecture/test_deepest_nets.py.

One build takes about half a minute on 2 cores, so each net is built once per run, in the one test that
makes all of its expensive checks (parameter count, architecture identity, a forward pass, feature maps).

The nets are built at a 16x16 input (the harness's CIFAR size; parameter counts and the layer graph do
not depend on it) with the default 10 classes (so the parameter count is the paper's figure).
"""

DEEPEST = ("resnet1202", "plain1202")
INPUT_SHAPE = (16, 16, 3)
NUM_CLASSES = 10


def build_deepest_net(name):
    """The registered model `name` ("resnet1202" or "plain1202"), untrained."""
    import keras_resnets

    assert name in DEEPEST, name
    # Untrained, in inference mode (BN moving statistics still 0/1) every residual block roughly doubles the
    # activations' scale: 600 blocks overflow float32. Starting the branches at zero keeps the forward pass
    # finite while still running every layer. (Parameter counts and the graph are the same either way.)
    return keras_resnets.get_model(name, input_shape=INPUT_SHAPE, zero_init_last_bn=name.startswith("resnet"))


def any_size_feature_maps(model, name):
    """A feature extractor of the built net `model` (registered as `name`) that takes any input size.

    Its outputs are a dict of the stage outputs ``feature_info(name)`` names, keyed "P{level}", and it has
    that ``feature_info``: what ``feature_extractor(name)`` returns, made of `model`'s own layers (shared,
    not copied) instead of a second build (another half minute). The classifier has a fixed input size,
    so its graph is replayed on an input of unknown height and width, recording each layer's new output.
    """
    import keras

    from keras_resnets.models.features import feature_info

    outputs = {}

    def call(layer, *args, **kwargs):
        outputs[layer.name] = layer(*args, **kwargs)
        return outputs[layer.name]

    replayed = keras.models.clone_model(
        model, input_tensors=keras.Input((None, None, model.input.shape[-1])), clone_function=lambda layer: layer,
        call_function=call,
    )
    infos = feature_info(name)
    extractor = keras.Model(replayed.inputs[0], {info.name: outputs[info.layer] for info in infos})
    extractor.feature_info = tuple(infos)
    return extractor
