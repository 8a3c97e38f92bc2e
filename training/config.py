"""The training configuration: one dataclass of defaults, recipes that override a few fields, CLI overrides.

A recipe is a module ``training/configs/<name>.py`` with ``get_config(model: str) -> TrainConfig``;
``--set field=value`` then overrides any field (``--set lr_boundaries=30,60 --set ema_decay=none``).
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import pkgutil
import typing
from typing import Optional, Tuple

import keras

from keras_resnets.data import input_pipeline
from keras_resnets.tasks.distribution import DISTRIBUTIONS

LR_SCHEDULES = ("piecewise", "cosine", "constant")
SCHEDULE_UNITS = ("steps", "epochs")
WEIGHT_DECAY_MODES = ("l2", "decoupled")
NORMALIZATIONS = ("per_channel", "per_pixel_mean")
PRECISIONS = ("float32", "bfloat16", "float16")
INPUT_PIPELINES = ("auto", "tf_data", "numpy")
ENGINES = ("standard", "jax_fast")
FAST_ENGINE_LOOPS = ("auto", "scan", "steps")


@dataclasses.dataclass
class TrainConfig:
    """Every knob of a training run. Recipes override only what differs from these defaults."""

    # Model: any name of keras_resnets.list_models(), residual or plain.
    model: str = "resnet20"
    recipe: str = "custom"
    synchronized_bn: bool = False  # Cross-replica BN statistics (TensorFlow strategies).
    zero_init_last_bn: bool = False

    # Data.
    dataset: str = "cifar10"  # A TFDS name or "image_folder" (data_dir/<split>/<class>/<images>).
    data_dir: Optional[str] = None
    manual_dir: Optional[str] = None  # imagenet2012: folder with the ILSVRC2012 tar files.
    train_split: str = "train"
    eval_split: str = "test"
    validation_fraction: float = 0.0  # >0: evaluate on a held-out part of train (paper: 45k/5k = 0.1).
    train_examples: Optional[int] = None  # Stratified subset, for quick runs.
    eval_examples: Optional[int] = None
    in_memory: Optional[bool] = None  # None: decode into memory when image_size <= 64.
    image_size: Optional[int] = None  # None: the model's default input size (32 CIFAR, 224 ImageNet).
    augmentation: str = "cifar"  # "cifar", "imagenet" or "none".
    padding: int = 4
    scale_range: Tuple[int, int] = (256, 480)
    pca_lighting: bool = False
    eval_resize: int = 256
    eval_crops: int = 1  # 1 or 10 views per image during training.
    final_eval_crops: Optional[int] = None  # Views for the final evaluation (None: eval_crops).
    normalization: str = "per_channel"  # Or "per_pixel_mean" (the paper's CIFAR preprocessing).
    # Per-channel mean/std on a [0, 1] scale; None computes them from in-memory training data (or uses
    # the ImageNet statistics for streamed data).
    normalization_mean: Optional[Tuple[float, float, float]] = None
    normalization_std: Optional[Tuple[float, float, float]] = None
    input_pipeline: str = "auto"  # "tf_data", "numpy" (in-memory data, no TensorFlow) or "auto".

    # Optimisation: SGD with momentum, as in the paper.
    global_batch_size: int = 128
    eval_batch_size: Optional[int] = None  # None: the global batch size.
    momentum: float = 0.9
    nesterov: bool = False
    base_lr: float = 0.1
    lr_reference_batch: Optional[int] = None  # Linear scaling: lr = base_lr * batch / reference.
    lr_schedule: str = "piecewise"
    schedule_unit: str = "steps"  # Unit of train_length, lr_boundaries and warmup_length.
    train_length: float = 64000
    lr_boundaries: Tuple[float, ...] = (32000, 48000)
    lr_decay_factor: float = 0.1
    warmup_length: float = 0.0  # Linear warm-up from 0 to the base rate.
    warmup_lr: Optional[float] = None  # Paper's ResNet-110 warm-up: this rate until train error < threshold.
    warmup_until_train_error: float = 0.8
    weight_decay: float = 1e-4
    weight_decay_mode: str = "l2"  # "l2": gradient += wd * w (paper, Caffe/PyTorch SGD); "decoupled".
    weight_decay_norm_and_bias: bool = True  # False: decay only conv/dense kernels.
    label_smoothing: float = 0.0
    ema_decay: Optional[float] = None  # Exponential moving average of the weights, used for evaluation.
    mixed_precision: str = "float32"  # "bfloat16" or "float16" (loss scaling) compute.
    xla: Optional[bool] = None  # None: JAX always; TensorFlow with one GPU (CPU kernels beat XLA's on CPU).
    # "jax_fast": one device, JAX; data on the device, augmentation in the step, log_every_steps steps
    # per dispatch (training/engine_jax_fast.py). Same batches and steps as "standard".
    engine: str = "standard"
    # How "jax_fast" runs a chunk: "scan" (one dispatch), "steps" (a dispatch per step), "auto" (steps on
    # the CPU, whose XLA runs convolutions inside loops far slower, scan elsewhere). Same results.
    fast_engine_loop: str = "auto"
    # TensorFlow engine: run BatchNormalization on TensorFlow's fused kernels (training/fused_batchnorm.py;
    # the same results within float32 rounding, faster). False: Keras's own ops.
    fused_batch_norm: bool = True
    # JAX engines on a CPU, one device: compute convolution weight gradients over slices of the batch
    # whose input holds at most this many bytes (training/chunked_convolution.py; the same results
    # within float32 rounding, much faster weight gradients on XLA:CPU). 0: whole batches.
    cpu_conv_chunk_bytes: int = 1 << 19

    # Distribution.
    distribution: str = "auto"
    tpu_address: Optional[str] = None

    # Run control and outputs.
    seed: int = 0
    deterministic: bool = False  # Bitwise-reproducible ops (slower); needed for identical resumes on GPU.
    eval_every_steps: Optional[int] = None  # None: at the end of every epoch.
    log_every_steps: int = 50
    checkpoint_every_steps: int = 1000
    # Also checkpoint when this much wall time passed since the last one (None: by steps only), so a
    # slow CPU run loses at most about this much work.
    checkpoint_every_seconds: Optional[float] = 600.0
    keep_checkpoints: int = 2
    max_train_seconds: Optional[float] = None  # Stop (and finish cleanly) after this much training time.
    accuracy_targets: Tuple[float, ...] = ()  # Report the time to reach each of these eval accuracies.


def available_recipes():
    """Names of the recipe modules in ``training/configs``."""
    from . import configs

    return sorted(module.name for module in pkgutil.iter_modules(configs.__path__))


def load_recipe(name: str, model: str) -> TrainConfig:
    """The config of recipe `name` for `model` (``training/configs/<name>.py``'s ``get_config``)."""
    recipes = available_recipes()
    if name not in recipes:
        raise ValueError(f"Unknown config. Available configs: {recipes}. Received: config={name!r}")
    config = importlib.import_module(f"training.configs.{name}").get_config(model)
    config.recipe = name
    return config


def _parse_scalar(text: str, kind, field: str):
    if kind is bool:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"Field {field!r} takes true/false. Received: {field}={text!r}")
    if kind is str:
        return text
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        raise ValueError(f"Field {field!r} takes a {kind.__name__}. Received: {field}={text!r}") from None
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(f"Field {field!r} takes a {kind.__name__}. Received: {field}={text!r}")


def parse_field_value(field: str, text: str):
    """Convert the string `text` to the type of TrainConfig field `field` (tuples: comma separated)."""
    hints = typing.get_type_hints(TrainConfig)
    if field not in hints:
        names = [f.name for f in dataclasses.fields(TrainConfig)]
        raise ValueError(f"Unknown config field. Fields: {names}. Received: {field}={text!r}")
    kind = hints[field]
    if typing.get_origin(kind) is typing.Union:
        if text.strip().lower() in ("none", "null", ""):
            return None
        kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
    if typing.get_origin(kind) is tuple:
        element = typing.get_args(kind)[0]
        parts = [part for part in text.strip().strip("()[]").split(",") if part.strip()]
        return tuple(_parse_scalar(part, element, field) for part in parts)
    return _parse_scalar(text, kind, field)


def apply_overrides(config: TrainConfig, overrides) -> TrainConfig:
    """A copy of `config` with ``"field=value"`` strings applied in order."""
    changes = {}
    for item in overrides or ():
        field, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"Overrides take the form field=value. Received: {item!r}")
        changes[field.strip()] = parse_field_value(field.strip(), text)
    return dataclasses.replace(config, **changes)


def _choice(config, field, accepted):
    value = getattr(config, field)
    if value not in accepted:
        raise ValueError(f"`{field}` must be one of {tuple(accepted)}. Received: {field}={value!r}")


def _check_fast_engine(config: TrainConfig) -> None:
    if keras.backend.backend() != "jax":
        raise ValueError(
            "`engine='jax_fast'` runs on the JAX backend (set KERAS_BACKEND=jax). "
            f"Received: engine='jax_fast' with backend {keras.backend.backend()!r}"
        )
    single_crop = config.eval_crops == 1 and config.final_eval_crops in (None, 1)
    if config.input_pipeline == "tf_data" or config.augmentation not in ("cifar", "none") or not single_crop:
        raise ValueError(
            "`engine='jax_fast'` reproduces the NumPy pipeline on the device: input_pipeline 'auto' or "
            "'numpy', augmentation 'cifar' or 'none', single-crop evaluation. Received: "
            f"input_pipeline={config.input_pipeline!r}, augmentation={config.augmentation!r}, "
            f"eval_crops={config.eval_crops!r}, final_eval_crops={config.final_eval_crops!r}"
        )


def validate(config: TrainConfig) -> TrainConfig:
    """Check every field's value, raising ValueError naming the field, the value and what is accepted."""
    from .modeling import model_family

    model_family(config.model)  # Raises for an unknown model name.
    _choice(config, "dataset", input_pipeline.DATASETS)
    _choice(config, "augmentation", input_pipeline.AUGMENTATIONS)
    _choice(config, "lr_schedule", LR_SCHEDULES)
    _choice(config, "schedule_unit", SCHEDULE_UNITS)
    _choice(config, "weight_decay_mode", WEIGHT_DECAY_MODES)
    _choice(config, "normalization", NORMALIZATIONS)
    _choice(config, "mixed_precision", PRECISIONS)
    _choice(config, "distribution", DISTRIBUTIONS)
    _choice(config, "input_pipeline", INPUT_PIPELINES)
    _choice(config, "eval_crops", (1, 10))
    _choice(config, "engine", ENGINES)
    _choice(config, "fast_engine_loop", FAST_ENGINE_LOOPS)
    if config.engine == "jax_fast":
        _check_fast_engine(config)
    _choice(config, "final_eval_crops", (None, 1, 10))
    chunk = config.cpu_conv_chunk_bytes
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 0:
        raise ValueError(
            "`cpu_conv_chunk_bytes` must be an integer >= 0 (0: whole batches). "
            f"Received: cpu_conv_chunk_bytes={chunk!r}"
        )
    positive = ("global_batch_size", "log_every_steps", "checkpoint_every_steps", "keep_checkpoints")
    for field in positive:
        if getattr(config, field) < 1:
            raise ValueError(f"`{field}` must be >= 1. Received: {field}={getattr(config, field)!r}")
    if config.train_length <= 0 or config.base_lr <= 0:
        raise ValueError(
            f"`train_length` and `base_lr` must be > 0. Received: train_length={config.train_length}, base_lr={config.base_lr}"
        )
    if list(config.lr_boundaries) != sorted(config.lr_boundaries):
        raise ValueError(f"`lr_boundaries` must be increasing. Received: lr_boundaries={config.lr_boundaries!r}")
    if not 0.0 <= config.label_smoothing < 1.0:
        raise ValueError(f"`label_smoothing` must be in [0, 1). Received: label_smoothing={config.label_smoothing!r}")
    if config.ema_decay is not None and not 0.0 < config.ema_decay < 1.0:
        raise ValueError(f"`ema_decay` must be in (0, 1) or None. Received: ema_decay={config.ema_decay!r}")
    if config.checkpoint_every_seconds is not None and not config.checkpoint_every_seconds > 0:
        raise ValueError(
            "`checkpoint_every_seconds` must be > 0 or None (checkpoints by steps only). "
            f"Received: checkpoint_every_seconds={config.checkpoint_every_seconds!r}"
        )
    if config.eval_every_steps is not None and config.eval_every_steps < 1:
        raise ValueError(f"`eval_every_steps` must be >= 1 or None. Received: eval_every_steps={config.eval_every_steps!r}")
    return config
