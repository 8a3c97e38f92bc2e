"""The real akamaster CIFAR-10 checkpoints converted into this zoo's option-A CIFAR ResNets."""


import numpy as np
import pytest

import keras_resnets

# Top-1 (%) of the original PyTorch models on the 100 lossless test images (shared/README.md).
EXPECTED_TOP1_FIRST100 = {20: 94, 32: 92, 44: 93, 56: 96}


@pytest.fixture(scope="module")
def first100(shared):
    with np.load(shared("data/cifar10-test-first100.npz")) as data:
        return data["x"], data["y"]


def _logits(depth, weights, images):
    model = keras_resnets.ResNet(depth, weights=str(weights), classifier_activation=None)
    return np.asarray(model.predict(keras_resnets.preprocess_input(images, "cifar10"), verbose=0))


@pytest.mark.parametrize("depth", [20, 32, 44, 56])
def test_akamaster_checkpoint_reproduces_pytorch_logits_and_accuracy(shared, first100, depth):
    images, labels = first100
    logits = _logits(depth, shared(f"weights/akamaster/resnet{depth}.npz"), images)
    reference = np.load(shared(f"weights/akamaster/resnet{depth}_logits_first100.npy"))
    assert np.abs(logits - reference).max() < 1e-3
    assert round(100 * float((logits.argmax(axis=1) == labels).mean())) == EXPECTED_TOP1_FIRST100[depth]


@pytest.mark.backend
def test_akamaster_resnet20_parity_on_every_backend(shared, first100):
    images, _ = first100
    logits = _logits(20, shared("weights/akamaster/resnet20.npz"), images[:16])
    reference = np.load(shared("weights/akamaster/resnet20_logits_first100.npy"))[:16]
    assert np.abs(logits - reference).max() < 1e-3


def test_legacy_torch_checkpoint(shared, first100):
    """The .th pickle loads with or without torch (restricted reader) and gives the reference logits."""
    path = shared("weights/akamaster/resnet20-12fca82f.th")
    images, _ = first100
    reference = np.load(shared("weights/akamaster/resnet20_logits_first100.npy"))
    assert np.abs(_logits(20, path, images) - reference).max() < 1e-3


def test_cifar_checkpoint_into_the_wrong_depth_is_refused(shared):
    with pytest.raises(ValueError, match="layer1.3"):
        keras_resnets.ResNet20(weights=str(shared("weights/akamaster/resnet32.npz")))
