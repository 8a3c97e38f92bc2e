"""The model and optimizer a config asks for."""

from __future__ import annotations

import keras

import keras_resnets
from keras_resnets.architecture.identity import Architecture


def model_family(name: str) -> str:
    """"cifar" or "imagenet" for a model name (raises ValueError for unknown names)."""
    return model_architecture(name).family


def model_architecture(name: str) -> Architecture:
    """The architecture of a model name: a registered one, or any CIFAR depth 6n+2 as resnetN/plainN."""
    try:
        return Architecture.from_name(name)
    except ValueError:
        raise ValueError(
            f"Unknown model name. Available models: {keras_resnets.list_models()} (and any CIFAR depth "
            f"6n+2 >= 8 as resnetN/plainN, e.g. resnet8). Received: model={name!r}"
        ) from None


def model_spec(name: str):
    """The ResNetSpec of a model name (see :func:`model_architecture`)."""
    return model_architecture(name).spec


def default_image_size(name: str) -> int:
    """The model's default input resolution (32 for CIFAR nets, 224 for ImageNet nets)."""
    return model_spec(name).default_input_shape[0]


def build_model(config, num_classes: int, image_size: int, logits: bool = True) -> keras.Model:
    """The config's model for `num_classes` classes at `image_size`; logits output unless `logits=False`."""
    architecture = model_architecture(config.model)
    return keras_resnets.build_resnet(
        architecture.spec,
        residual=architecture.residual,
        input_shape=(image_size, image_size, 3),
        classes=num_classes,
        classifier_activation=None if logits else "softmax",
        # Keras BN only synchronizes on TensorFlow; under JAX DataParallel the statistics are computed
        # over the global batch anyway (the step is written for the global array).
        synchronized_bn=config.synchronized_bn and keras.backend.backend() == "tensorflow",
        zero_init_last_bn=config.zero_init_last_bn,
        name=config.model.lower(),
    )


def all_layers(model: keras.Model):
    """Every layer of `model`, depth first, including the layers of nested models."""
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from all_layers(layer)


def build_optimizer(config, model: keras.Model, decayed_variables) -> keras.optimizers.Optimizer:
    """SGD with momentum; decoupled weight decay, EMA and float16 loss scaling when configured.

    With ``weight_decay_mode="l2"`` (the paper's) the decay is a loss term added by the engines, so the
    optimizer itself has none.
    """
    decoupled = config.weight_decay if config.weight_decay_mode == "decoupled" else None
    optimizer = keras.optimizers.SGD(
        learning_rate=0.0,  # Set before every step from the schedule.
        momentum=config.momentum,
        nesterov=config.nesterov,
        weight_decay=decoupled or None,
        use_ema=config.ema_decay is not None,
        ema_momentum=config.ema_decay if config.ema_decay is not None else 0.99,
    )
    if decoupled:
        decayed_ids = {id(v) for v in decayed_variables}
        optimizer.exclude_from_weight_decay(var_list=[v for v in model.trainable_variables if id(v) not in decayed_ids])
    if config.mixed_precision == "float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def inner_optimizer(optimizer):
    """The SGD optimizer inside a LossScaleOptimizer (or the optimizer itself)."""
    return getattr(optimizer, "inner_optimizer", optimizer)
