"""ResNet-1202 and plain-1202 (3,600+ layers), built once per test process and read by several tests.

One build takes about half a minute on 2 cores. The model harness (predict), the parameter-count test and
the identity test only read the model, so they share one build per net instead of building their own.
Each test of a net carries ``xdist_group(<net>)`` (``--dist loadgroup`` in pyproject.toml), so pytest-xdist
runs them on one worker, which builds that net once.

The nets are built at a 16x16 input (the harness's CIFAR size; parameter counts and the layer graph do
not depend on it) with the default 10 classes (so the parameter count is the paper's figure).
"""

import functools

import pytest

DEEPEST = ("resnet1202", "plain1202")
INPUT_SHAPE = (16, 16, 3)


def group(name):
    """The xdist group that keeps every test of the net `name` on one worker."""
    return pytest.mark.xdist_group(name)


@functools.lru_cache(maxsize=None)
def deepest_net(name):
    """The registered model `name` ("resnet1202" or "plain1202"), built once per process. Do not modify it."""
    import keras_resnets

    assert name in DEEPEST, name
    # Untrained, in inference mode (BN moving statistics still 0/1) every residual block roughly doubles the
    # activations' scale: 600 blocks overflow float32. Starting the branches at zero keeps the forward pass
    # finite while still running every layer. (Parameter counts and the graph are the same either way.)
    return keras_resnets.get_model(name, input_shape=INPUT_SHAPE, zero_init_last_bn=name.startswith("resnet"))
