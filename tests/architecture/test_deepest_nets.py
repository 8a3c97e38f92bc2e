"""ResNet-1202 and plain-1202: the paper's parameter count, the architecture identity, a forward pass and
the feature maps, on one build of each net.

Each net takes about half a minute to build on 2 cores, so its checks are one test: the net is built once
in a run, whichever pytest-xdist worker runs the test. The checks are those that test_architecture.py,
test_identity.py, test_model_harness.py and tests/models/test_features.py make for every other registered
model, with two differences that keep them to seconds: the forward pass is a direct call in inference mode
(model.predict would trace the 3,600-layer graph, about 40 s; the predict path itself is model-independent
and checked on every other model), and the feature maps are read from this build's layers
(helpers.deepest_nets.any_size_feature_maps) instead of a second build by feature_extractor.
"""

import keras
import numpy as np
import pytest

from helpers.deepest_nets import DEEPEST, INPUT_SHAPE, NUM_CLASSES, any_size_feature_maps, build_deepest_net
from helpers.feature_maps import assert_feature_maps
from test_architecture import CIFAR_PARAMS, trainable_params
from test_identity import assert_identified


@pytest.mark.slow
@pytest.mark.parametrize("name", DEEPEST)
def test_parameter_count_identity_forward_pass_and_feature_maps(name):
    model = build_deepest_net(name)
    assert trainable_params(model) == CIFAR_PARAMS[1202]  # 10 classes, as in the paper.
    assert_identified(name, model)  # A classifier: the graph reads the same as without the top.
    # Probabilities over the classes (finite: an overflow in any of the 3,600 layers would give NaN sums).
    images = np.random.default_rng(0).uniform(0, 1, (4, *INPUT_SHAPE)).astype("float32")
    probabilities = keras.ops.convert_to_numpy(model(images, training=False))
    assert probabilities.shape == (4, NUM_CLASSES)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, rtol=1e-5)
    assert_feature_maps(name, any_size_feature_maps(model, name))
