"""ResNet-1202 and plain-1202: the paper's parameter count, the architecture identity and the model harness's
predict, on one build of each net.

Each net takes about half a minute to build on 2 cores and as long again for predict to trace it, so its
checks are one test: the net is built once in a run, whichever pytest-xdist worker runs the test. The
checks are those that test_architecture.py, test_identity.py and test_model_harness.py make for every
other registered model (the feature-extractor test in tests/models/ builds its own extractor of each).
"""

import numpy as np
import pytest

from helpers.deepest_nets import DEEPEST, INPUT_SHAPE, NUM_CLASSES, build_deepest_net
from test_architecture import CIFAR_PARAMS, trainable_params
from test_identity import assert_identified
from test_model_harness import assert_predicts


@pytest.mark.slow
@pytest.mark.parametrize("name", DEEPEST)
def test_parameter_count_identity_and_predict(name):
    model = build_deepest_net(name)
    assert trainable_params(model) == CIFAR_PARAMS[1202]  # 10 classes, as in the paper.
    assert_identified(name, model)  # A classifier: the graph reads the same as without the top.
    images = np.random.default_rng(0).uniform(0, 1, (4, *INPUT_SHAPE)).astype("float32")
    assert_predicts(model, images, NUM_CLASSES)
