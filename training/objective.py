"""What a training step computes, in keras.ops so that both engines (TensorFlow, JAX) share it."""

from __future__ import annotations

import numpy as np
from keras import ops


def normalize(images, mean: np.ndarray, std: np.ndarray):
    """uint8 images -> float32 ``(images / 255 - mean) / std`` (mean/std on a [0, 1] scale)."""
    return (ops.cast(images, "float32") * (1.0 / 255.0) - mean) / std


def merge_crops(images):
    """(B, V, H, W, C) multi-view batches -> (B*V, H, W, C) and V (1 for ordinary batches)."""
    if len(images.shape) == 5:
        views = images.shape[1]
        return ops.reshape(images, (-1,) + tuple(images.shape[2:])), views
    return images, 1


def per_example_losses(logits, labels, num_classes: int, label_smoothing: float = 0.0, views: int = 1):
    """Cross-entropy per example and whether its prediction is right (both float32, shape (B,)).

    With several views per example (10-crop), the class probabilities of the views are averaged.
    """
    logits = ops.cast(logits, "float32")
    labels = ops.cast(labels, "int32")
    if views > 1:
        probabilities = ops.mean(ops.reshape(ops.softmax(logits), (-1, views, num_classes)), axis=1)
        log_probabilities = ops.log(ops.maximum(probabilities, 1e-12))
    else:
        log_probabilities = ops.log_softmax(logits)
    targets = ops.one_hot(labels, num_classes)
    if label_smoothing:
        targets = targets * (1.0 - label_smoothing) + label_smoothing / num_classes
    losses = -ops.sum(targets * log_probabilities, axis=-1)
    correct = ops.cast(ops.equal(ops.argmax(log_probabilities, axis=-1), labels), "float32")
    return losses, correct


def l2_penalty(variables):
    """``0.5 * sum(w**2)``: its gradient is ``w``, so ``weight_decay * l2_penalty`` is SGD weight decay."""
    if not variables:
        return 0.0
    return 0.5 * ops.sum(ops.stack([ops.sum(ops.square(ops.cast(v, "float32"))) for v in variables]))


def decays(variable, include_norm_and_bias: bool) -> bool:
    """Whether weight decay applies to `variable`: always to kernels; to BN/bias only if asked."""
    return include_norm_and_bias or len(variable.shape) > 1
