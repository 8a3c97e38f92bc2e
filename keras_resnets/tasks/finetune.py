"""Fine-tuning a zoo model on your own images: new head, frozen-backbone phase, then partial unfreezing.

Recipe (the transfer-learning default of the Keras guides and timm, adapted to ResNets):

1. **Head phase.** The pretrained network up to its global average pool is frozen; a new classifier
   ``fc`` for the classes found is trained. Frozen BatchNorm layers run in inference mode (Keras 3 does
   that for ``trainable=False``), so their moving statistics stay exactly as pretrained.
2. **Fine-tune phase.** The top `unfreeze` stages (or ``"all"``) become trainable at a learning rate
   a hundred times lower (Adam 1e-4 after 1e-2 for the head). BatchNorm stays frozen unless
   ``train_batchnorm=True``: a few hundred images give noisy batch statistics that would erase the
   pretrained ones.

Both phases use augmentation (flip + translation), a validation split, early stopping, and the
weights of the best validation epoch over both phases are kept.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from typing import Dict, List, Optional, Sequence

import keras
import numpy as np

from keras_resnets import outputs
from keras_resnets.data.finetune_data import resolve_training_data
from keras_resnets.tasks.model_info import (
    ModelInfo,
    classifier_preprocessing,
    reject_builtin_preprocessing,
    resolve_default_weights,
    save_classifier,
)
from keras_resnets.models.registry import get_model, model_entry
from keras_resnets.data.transforms import batched_model_inputs
from keras_resnets.weights.records import Preprocessing

FEATURE_LAYER = "avgpool"
HEAD_LAYER = "fc"


@dataclasses.dataclass
class FineTuneResult:
    """What :func:`fine_tune` returns.

    Attributes:
        model: the fine-tuned classifier (softmax outputs, one per class), holding the best weights.
        info: its class names and preprocessing (saved as ``keras_resnets.json`` beside the model).
        history: per-phase Keras histories: ``{"head": {...}, "fine_tune": {...}}``.
        best_epoch: 1-based epoch (counted over both phases) whose weights were kept.
        best_metrics: the logged metrics of that epoch.
        output_dir: where the model was saved, if `output_dir` was given.
    """

    model: keras.Model
    info: ModelInfo
    history: Dict[str, Dict[str, List[float]]]
    best_epoch: int
    best_metrics: Dict[str, float]
    output_dir: Optional[str] = None


class _KeepBestWeights(keras.callbacks.Callback):
    """Remembers the weights (BN statistics included) of the best epoch across several ``fit`` calls."""

    def __init__(self, monitor: str):
        super().__init__()
        self.monitor = monitor
        self.sign = 1.0 if "acc" in monitor else -1.0  # Accuracies are maximised, losses minimised.
        self.best_score = -np.inf
        self.best_weights = None
        self.best_epoch = 0
        self.best_logs: Dict[str, float] = {}

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor not in logs:
            raise ValueError(f"Metric {self.monitor!r} was not logged; available: {sorted(logs)}")
        score = self.sign * float(logs[self.monitor])
        if score > self.best_score:
            self.best_score = score
            self.best_weights = [np.array(w) for w in self.model.get_weights()]
            self.best_epoch = epoch + 1
            self.best_logs = {key: float(value) for key, value in logs.items()}


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite; the run was stopped and nothing was saved."""


class _FailOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops a run whose loss becomes NaN/inf with an error that says where and what to try."""

    def __init__(self, phase: str, learning_rate: float):
        super().__init__()
        self.phase, self.learning_rate = phase, learning_rate
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise TrainingDivergedError(
                f"The training loss became {float(loss)} in the {self.phase} phase (epoch {self.epoch + 1}, batch "
                f"{batch + 1}) at learning_rate={self.learning_rate!r}; nothing was saved. Lower the learning "
                "rate, or check the data for broken images or labels."
            )


def _check_learning_rate(argument: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)) or value <= 0:
        raise ValueError(f"`{argument}` must be a finite number > 0. Received: {argument}={value!r}")


class _PhaseBanner(keras.callbacks.Callback):
    """Prints which phase is running, so long runs show their progress in words as well as bars."""

    def __init__(self, text: str, verbose: int):
        super().__init__()
        self.text = text
        self.verbose = verbose

    def on_train_begin(self, logs=None):
        if self.verbose:
            print(self.text, flush=True)


def _check_positive_int(argument: str, value, allow_zero: bool = False):
    lowest = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lowest:
        raise ValueError(f"`{argument}` must be an integer >= {lowest}. Received: {argument}={value!r}")


def _image_shape(model_or_name, image_size) -> Optional[tuple]:
    if image_size is not None:
        if isinstance(image_size, int):
            image_size = (image_size, image_size)
        image_size = tuple(image_size)
        if len(image_size) != 2 or any(not isinstance(s, (int, np.integer)) or s < 1 for s in image_size):
            raise ValueError(f"`image_size` must be an int or (height, width). Received: image_size={image_size!r}")
        return (*image_size, 3)
    if isinstance(model_or_name, str):
        return model_entry(model_or_name).spec.default_input_shape
    shape = tuple(model_or_name.input_shape[1:])
    return shape if None not in shape[:2] else None


def _backbone_features(model_or_name, weights, image_shape):
    """Build (or clone) the network and return ``(inputs, pooled features, base name)``."""
    if isinstance(model_or_name, str):
        entry = model_entry(model_or_name)
        base = get_model(entry.name, weights=resolve_default_weights(entry.name, weights), input_shape=image_shape)
        base_name = entry.name
    elif isinstance(model_or_name, keras.Model):
        if weights not in (None, "default"):
            raise ValueError(
                "`weights` only applies when `model` is a registry name; a keras.Model brings its own "
                f"weights. Received: weights={weights!r}"
            )
        source = model_or_name
        reject_builtin_preprocessing(source)
        if FEATURE_LAYER not in [layer.name for layer in source.layers]:
            raise ValueError(
                f"`model` must be a keras_resnets network with its global average pool layer {FEATURE_LAYER!r} "
                f"(build it with include_top=True or pooling='avg'). Received: model={source.name!r}"
            )
        # Cloning creates the variables inside the active strategy scope (if any) and applies the
        # requested input size; the source model stays untouched.
        new_input = keras.Input(image_shape, name="input")
        base = keras.models.clone_model(
            source, input_tensors=[new_input] if isinstance(source.input, (list, tuple)) else new_input
        )
        base.set_weights(source.get_weights())
        base_name = None
    else:
        raise ValueError(
            f"`model` must be a registry name (e.g. 'resnet50') or a keras.Model. Received: model={model_or_name!r}"
        )
    return base.inputs, base.get_layer(FEATURE_LAYER).output, base_name


def build_classifier(model_or_name, num_classes: int, *, weights="default", image_size=None, dropout: float = 0.0):
    """A zoo network with a new ``fc`` softmax head of `num_classes` units on its pooled features.

    Args:
        model_or_name: registry name (built with `weights`) or a keras_resnets ``keras.Model``.
        num_classes: number of outputs of the new head.
        weights: starting weights for a registry name: "default" (the family's pretrained tag,
            "imagenet" or "cifar10"), another tag, a path, or None for random initialisation.
        image_size: input (height, width); default the model's own.
        dropout: dropout rate before the new head.

    Returns:
        ``(model, base_name)``.
    """
    _check_positive_int("num_classes", num_classes)
    if not isinstance(model_or_name, (str, keras.Model)):
        raise ValueError(
            f"`model` must be a registry name (e.g. 'resnet50') or a keras.Model. Received: model={model_or_name!r}"
        )
    image_shape = _image_shape(model_or_name, image_size)
    if image_shape is None:
        raise ValueError("`image_size` is required when `model` has no fixed input size. Received: image_size=None")
    inputs, features, base_name = _backbone_features(model_or_name, weights, image_shape)
    x = features
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    head_dtype = "float32" if keras.config.dtype_policy().name.startswith("mixed") else None
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype=head_dtype, name=HEAD_LAYER)(x)
    name = f"{base_name or 'resnet'}_finetuned"
    return keras.Model(inputs, outputs, name=name), base_name


def stage_layer_names(model) -> List[List[str]]:
    """Names of the layers of each residual stage (``layer1.*``, ``layer2.*``, ...), in stage order."""
    stages: Dict[int, List[str]] = {}
    for layer in model.layers:
        head = layer.name.split(".", 1)[0]
        if head.startswith("layer") and head[5:].isdigit():
            stages.setdefault(int(head[5:]), []).append(layer.name)
    return [stages[index] for index in sorted(stages)]


def set_trainable_stages(model, unfreeze, train_batchnorm: bool = False) -> List[str]:
    """Freeze the backbone except the top `unfreeze` stages (int) or everything (``"all"``).

    The head ``fc`` always trains. BatchNorm layers of unfrozen stages train only if `train_batchnorm`.

    Returns:
        Names of the backbone layers left trainable.
    """
    stages = stage_layer_names(model)
    if unfreeze == "all":
        chosen = {layer.name for layer in model.layers}
    else:
        if isinstance(unfreeze, bool) or not isinstance(unfreeze, (int, np.integer)) or not 0 <= unfreeze <= len(stages):
            raise ValueError(
                f"`unfreeze` must be 'all' or a number of top stages between 0 and {len(stages)}. "
                f"Received: unfreeze={unfreeze!r}"
            )
        chosen = {name for stage in stages[len(stages) - unfreeze :] for name in stage}
    model.trainable = True
    unfrozen = []
    for layer in model.layers:
        if layer.name in (HEAD_LAYER, "head_dropout"):
            layer.trainable = True
            continue
        is_bn = isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = layer.name in chosen and (train_batchnorm or not is_bn)
        if layer.trainable and layer.weights:
            unfrozen.append(layer.name)
    return unfrozen


def _compile(model, learning_rate: float):
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )


def _strategy_scope(distribution):
    if distribution is None:
        return contextlib.nullcontext()
    if not hasattr(distribution, "scope"):
        raise ValueError(
            "`distribution` must be a tf.distribute.Strategy, a resolve_distribution() context or None. "
            f"Received: distribution={distribution!r}"
        )
    return distribution.scope()


def fine_tune(
    model,
    data,
    *,
    weights="default",
    class_names: Optional[Sequence[str]] = None,
    validation_data=None,
    validation_fraction: float = 0.2,
    image_size=None,
    preprocessing: Optional[Preprocessing] = None,
    batch_size: int = 32,
    head_epochs: int = 5,
    fine_tune_epochs: int = 5,
    unfreeze=1,
    learning_rate: float = 1e-2,
    fine_tune_learning_rate: Optional[float] = None,
    train_batchnorm: bool = False,
    dropout: float = 0.0,
    augment: bool = True,
    early_stopping_patience: Optional[int] = 3,
    monitor: Optional[str] = None,
    distribution=None,
    output_dir=None,
    overwrite: bool = False,
    seed: int = 0,
    verbose: int = 1,
    max_image_pixels: Optional[int] = None,
) -> FineTuneResult:
    """Fine-tune a zoo model on your images; see the module docstring for the recipe.

    Args:
        model: registry name ("resnet50", "resnet20", ...) or a keras_resnets ``keras.Model``.
        data: a folder with one sub-folder of images per class (non-image files are skipped with a
            warning), or a ``tf.data.Dataset`` of ``(image, label)`` (uint8 or 0-255 float images of any
            size, integer or one-hot labels, batched or not; give it in a fixed order: it is split and
            shuffled here).
        weights: starting weights when `model` is a name: "default" (the family's pretrained tag,
            "imagenet" or "cifar10"), another tag or path, or None to train from scratch.
        class_names: label names; default the folder's sub-folder names (or ``data.class_names``).
            With a folder it selects and orders the classes used.
        validation_data: held-out folder or dataset; default a stratified `validation_fraction` split.
        validation_fraction: share of `data` held out when `validation_data` is None; 0 disables
            validation (early stopping then watches the training loss).
        image_size: input (height, width); default the model's (224 for ImageNet nets, 32 for CIFAR).
        preprocessing: resize/normalisation override; default the starting weights' evaluation transform
            (or the family's) at `image_size`.
        batch_size: global batch size (split across replicas under a strategy).
        head_epochs: epochs of the head phase (backbone frozen).
        fine_tune_epochs: epochs of the fine-tune phase; 0 skips it.
        unfreeze: top stages trained in the fine-tune phase (1 = last stage), or "all".
        learning_rate: Adam learning rate of the head phase.
        fine_tune_learning_rate: of the fine-tune phase; default ``learning_rate / 100``.
        train_batchnorm: also train BatchNorm (statistics and affine) of unfrozen stages.
        dropout: dropout rate before the new head.
        augment: random flips and translations on training images.
        early_stopping_patience: epochs without improvement before a phase stops; None disables.
        monitor: metric that picks the best epoch; default "val_loss" (or "loss" without validation).
        distribution: a ``tf.distribute.Strategy``, or the context returned by
            :func:`keras_resnets.tasks.distribution.resolve_distribution` (the training pipeline's), whose
            scope builds and trains the model; a scope the caller has already entered is used as it is.
        output_dir: if given, save ``model.keras`` and ``keras_resnets.json`` (class names,
            preprocessing, metrics) there. Checked before training: an existing non-empty folder is
            refused unless `overwrite`; the output is written beside it and renamed into place.
        overwrite: replace an earlier output of keras_resnets in `output_dir` (never other files).
        seed: seed of the validation split, shuffling and augmentation.
        verbose: 0 silent, 1 progress bars and phase messages, 2 one line per epoch.
        max_image_pixels: images of a folder with more pixels are skipped with a warning, before
            training (default ``$KERAS_RESNETS_MAX_IMAGE_PIXELS`` or 40 megapixels). Unreadable or
            corrupt images are skipped the same way, so training never stops on one mid-epoch.

    Raises:
        TrainingDivergedError: the loss became NaN or infinite.

    Returns:
        A :class:`FineTuneResult`.
    """
    _check_positive_int("batch_size", batch_size)
    _check_positive_int("head_epochs", head_epochs)
    _check_positive_int("fine_tune_epochs", fine_tune_epochs, allow_zero=True)
    if early_stopping_patience is not None:
        _check_positive_int("early_stopping_patience", early_stopping_patience)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout!r}")
    _check_learning_rate("learning_rate", learning_rate)
    if fine_tune_learning_rate is not None:
        _check_learning_rate("fine_tune_learning_rate", fine_tune_learning_rate)
    if output_dir is not None:  # Before any work: a refused destination must not cost a training run.
        outputs.check_destination(os.fspath(output_dir), overwrite=overwrite, kind="fine-tuning output")

    train, validation, names, train_count = resolve_training_data(
        data, validation_data, validation_fraction, class_names, seed, max_image_pixels=max_image_pixels
    )
    monitor = monitor or ("val_loss" if validation is not None else "loss")
    if monitor.startswith("val_") and validation is None:
        raise ValueError(f"`monitor` needs validation data, but there is none. Received: monitor={monitor!r}")

    with _strategy_scope(distribution):
        classifier, base_name = build_classifier(
            model, len(names), weights=weights, image_size=image_size, dropout=dropout
        )
        if preprocessing is None:
            input_size = classifier.input_shape[1:3]
            start = resolve_default_weights(base_name, weights) if base_name else None
            preprocessing = classifier_preprocessing(base_name, start, input_size)
        elif tuple(preprocessing.input_size) != tuple(classifier.input_shape[1:3]):
            raise ValueError(
                f"`preprocessing.input_size` must match the model input {classifier.input_shape[1:3]}. "
                f"Received: preprocessing={preprocessing!r}"
            )

        train_batches = batched_model_inputs(train, preprocessing, batch_size, training=augment, seed=seed)
        validation_batches = None
        if validation is not None:
            validation_batches = batched_model_inputs(validation, preprocessing, batch_size)

        keep_best = _KeepBestWeights(monitor)
        history = {}

        def run_phase(phase, epochs, initial_epoch, text, rate):
            callbacks = [_PhaseBanner(text, verbose), _FailOnNonFiniteLoss(phase, rate), keep_best]
            if early_stopping_patience is not None:
                callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor, patience=early_stopping_patience,
                                                               mode="max" if "acc" in monitor else "min"))
            fit = classifier.fit(
                train_batches,
                validation_data=validation_batches,
                epochs=initial_epoch + epochs,
                initial_epoch=initial_epoch,
                shuffle=False,  # The training pipeline shuffles its files itself.
                callbacks=callbacks,
                verbose=verbose,
            )
            history[phase] = {key: [float(v) for v in values] for key, values in fit.history.items()}
            return initial_epoch + len(fit.history.get("loss", []))

        set_trainable_stages(classifier, 0)
        _compile(classifier, learning_rate)
        size = f"{train_count} images, " if train_count is not None else ""
        done = run_phase(
            "head",
            head_epochs,
            0,
            f"Phase 1/2: training the new {len(names)}-class head, backbone frozen ({size}{head_epochs} epochs max)",
            learning_rate,
        )
        if fine_tune_epochs and unfreeze != 0:
            unfrozen = set_trainable_stages(classifier, unfreeze, train_batchnorm=train_batchnorm)
            phase_rate = fine_tune_learning_rate or learning_rate / 100
            _compile(classifier, phase_rate)
            stages = "all stages" if unfreeze == "all" else f"top {unfreeze} stage(s)"
            run_phase(
                "fine_tune",
                fine_tune_epochs,
                done,
                f"Phase 2/2: fine-tuning the {stages} ({len(unfrozen)} layers) and the head "
                f"({fine_tune_epochs} epochs max)",
                phase_rate,
            )
        if keep_best.best_weights is not None:
            classifier.set_weights(keep_best.best_weights)
        set_trainable_stages(classifier, "all", train_batchnorm=True)

    info = ModelInfo(
        class_names=names,
        preprocessing=preprocessing,
        base_model=base_name,
        weights=None if weights is None or not isinstance(model, str) else os.fspath(resolve_default_weights(base_name, weights)),
        extra={"best_epoch": keep_best.best_epoch, "best_metrics": keep_best.best_logs, "monitor": monitor},
    )
    if verbose:
        shown = ", ".join(f"{k}={v:.4f}" for k, v in keep_best.best_logs.items())
        print(f"Kept the weights of epoch {keep_best.best_epoch} ({shown})", flush=True)
    saved = None
    if output_dir is not None:
        saved = save_classifier(classifier, info, output_dir, overwrite=overwrite)
        if verbose:
            print(f"Saved the fine-tuned model and its class names to {saved}", flush=True)
    return FineTuneResult(classifier, info, history, keep_best.best_epoch, keep_best.best_logs, saved)
