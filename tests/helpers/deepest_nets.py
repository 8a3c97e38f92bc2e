"""ResNet-1202 and plain-1202 (3,600+ layers), built for tests/architecture/test_deepest_nets.py.

One build takes about half a minute on 2 cores, so each net is built once per run, in the one test that
makes all of its expensive checks (parameter count, architecture identity, the model harness's predict).

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
