"""Torch state-dict layout -> Keras variables, in numpy only (no torch needed).

Layer names of this zoo equal torchvision's module names, so each Keras layer reads the tensors
``"{layer.name}.{suffix}"``:

* Conv2D: ``weight`` (out, in, kh, kw) -> kernel (kh, kw, in, out);
* BatchNormalization: ``weight``, ``bias``, ``running_mean``, ``running_var`` -> gamma, beta,
  moving_mean, moving_variance (``num_batches_tracked`` is a training counter and ignored);
* Dense: ``weight`` (out, in) -> kernel (in, out), ``bias``.

Some checkpoints name the classifier differently (akamaster's CIFAR nets call it ``linear``); pass
``head_name`` to read it. Every tensor the model needs must be present with the right shape, and
every tensor of the checkpoint must be used, so weights of another architecture cannot load silently.
"""

from __future__ import annotations

import warnings
from typing import Dict, Mapping, Optional

import keras
import numpy as np

from keras_resnets.architecture.identity import WeightsMismatchError

IGNORED_SUFFIXES = ("num_batches_tracked",)
CLASSIFIER_LAYER = "fc"


def _tensor_suffixes(layer):
    """(torch tensor suffix, torch -> Keras transform) for each variable of `layer`, in Keras order."""
    if isinstance(layer, keras.layers.Conv2D):
        return [("weight", lambda w: np.transpose(w, (2, 3, 1, 0)))] + (
            [("bias", None)] if layer.use_bias else []
        )
    if isinstance(layer, keras.layers.BatchNormalization):
        parts = []
        if layer.scale:
            parts.append(("weight", None))
        if layer.center:
            parts.append(("bias", None))
        return parts + [("running_mean", None), ("running_var", None)]
    if isinstance(layer, keras.layers.Dense):
        return [("weight", np.transpose)] + ([("bias", None)] if layer.use_bias else [])
    raise WeightsMismatchError(
        f"Cannot convert torch tensors into layer {layer.name!r} of type {type(layer).__name__}."
    )


def keras_values_from_state_dict(
    model: keras.Model,
    state_dict: Mapping[str, np.ndarray],
    *,
    load_head: bool = True,
    head_name: str = CLASSIFIER_LAYER,
) -> Dict[str, list]:
    """Map a torch-layout state dict onto `model`'s layers; returns ``{layer name: [numpy values]}``.

    Args:
        model: a model of this zoo (torchvision layer names).
        state_dict: tensor name -> numpy array in torch layout.
        load_head: False leaves the classifier ``fc`` (if the model has one) at its initialisation and
            ignores the checkpoint's classifier tensors (fresh head, or a model without top).
        head_name: the checkpoint's name for the classifier layer ``fc``.

    Raises:
        WeightsMismatchError: naming the key, if a tensor is missing or mis-shaped, or if the checkpoint
            has tensors the model does not use.
    """
    used = set()
    values: Dict[str, list] = {}
    for layer in model.layers:
        if not layer.weights or (layer.name == CLASSIFIER_LAYER and not load_head):
            continue
        prefix = head_name if layer.name == CLASSIFIER_LAYER else layer.name
        layer_values = []
        for variable, (suffix, transform) in zip(layer.weights, _tensor_suffixes(layer)):
            key = f"{prefix}.{suffix}"
            if key not in state_dict:
                raise WeightsMismatchError(
                    f"The checkpoint has no tensor {key!r}, which layer {layer.name!r} of model "
                    f"{model.name!r} needs. Are these weights for another architecture?"
                )
            array = np.asarray(state_dict[key])
            converted = transform(array) if transform is not None else array
            if tuple(converted.shape) != tuple(variable.shape):
                raise WeightsMismatchError(
                    f"Tensor {key!r} has shape {tuple(array.shape)} (torch layout), but layer {layer.name!r} of "
                    f"model {model.name!r} needs {tuple(variable.shape)} in Keras layout. Are these weights for "
                    "another architecture?"
                )
            layer_values.append(converted.astype(variable.dtype, copy=False))
            used.add(key)
        values[layer.name] = layer_values

    skipped_prefixes = () if load_head else (f"{head_name}.",)
    unused = sorted(
        key
        for key in state_dict
        if key not in used and not key.endswith(IGNORED_SUFFIXES) and not key.startswith(skipped_prefixes)
    )
    if unused:
        shown = ", ".join(repr(k) for k in unused[:8]) + (" ..." if len(unused) > 8 else "")
        raise WeightsMismatchError(
            f"The checkpoint has {len(unused)} tensor(s) that model {model.name!r} has no place for: {shown}. "
            "These weights belong to another architecture."
        )
    return values


def _to_torch(layer, suffix: str, value: np.ndarray) -> np.ndarray:
    if suffix != "weight":
        return value
    if isinstance(layer, keras.layers.Conv2D):
        return np.transpose(value, (3, 2, 0, 1))
    if isinstance(layer, keras.layers.Dense):
        return np.transpose(value)
    return value


def state_dict_from_model(model: keras.Model) -> Dict[str, np.ndarray]:
    """`model`'s variables as a torch-layout state dict: the inverse of :func:`keras_values_from_state_dict`."""
    state_dict = {}
    for layer in model.layers:
        if not layer.weights:
            continue
        for variable, (suffix, _) in zip(layer.weights, _tensor_suffixes(layer)):
            value = np.asarray(keras.ops.convert_to_numpy(variable), dtype=np.float32)
            state_dict[f"{layer.name}.{suffix}"] = np.ascontiguousarray(_to_torch(layer, suffix, value))
    return state_dict


def classifier_shape(state_dict: Mapping[str, np.ndarray], head_name: str = CLASSIFIER_LAYER):
    """(classes, features) of the checkpoint's classifier, or None if it has none."""
    weight = state_dict.get(f"{head_name}.weight")
    return None if weight is None else tuple(np.shape(weight))


def should_load_head(model: keras.Model, source_classes: Optional[int], weights_name: str) -> bool:
    """Whether the checkpoint's classifier goes into `model`.

    Not when the model has no top, nor (with a warning) when its number of classes differs from the
    checkpoint's: then the backbone is loaded and the classifier keeps its fresh initialisation.
    """
    head = model_classifier(model)
    if head is None:
        return False
    model_classes = head.units
    if source_classes is not None and model_classes != source_classes:
        warnings.warn(
            f"Weights {weights_name!r} have a {source_classes}-class classifier but the model has "
            f"classes={model_classes}: loading the backbone only; the classifier `fc` keeps its fresh "
            "initialisation and needs training.",
            UserWarning,
            stacklevel=4,
        )
        return False
    return True


def model_classifier(model: keras.Model):
    """The classifier layer ``fc`` of `model`, or None for a model built without top."""
    names = {layer.name for layer in model.layers}
    return model.get_layer(CLASSIFIER_LAYER) if CLASSIFIER_LAYER in names else None


def assign_values(model: keras.Model, values: Mapping[str, list]) -> None:
    """Set the variables of `model`'s layers from ``{layer name: [numpy values]}``."""
    for name, layer_values in values.items():
        model.get_layer(name).set_weights(layer_values)
