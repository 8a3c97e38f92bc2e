"""The training loop: ``train_and_evaluate(config, workdir)``.

Workdir format (read by the weights publishing tool; see the README's "Training" section):

    config.json          the resolved TrainConfig plus what the run derived (steps, replicas, backend, ...)
    history.json/.csv    one row per evaluation: step, epoch, learning_rate, train_loss, train_error
                         (over the steps since the previous row, augmented data, training mode),
                         eval_loss, eval_error, train_time_s, images_per_second
    tensorboard/         the same scalars plus per-interval training scalars (when TensorFlow is installed)
    checkpoints/         ckpt-<step>.npz: full state for resuming (see training/checkpoint.py)
    last.weights.h5      the final weights (EMA weights when ema_decay is set), softmax classifier:
                         ``keras_resnets.get_model(model, classes=n).load_weights(...)`` reads them
    best.weights.h5      the weights of the evaluation with the lowest error
    final_metrics.json   model, recipe, dataset, classes, preprocessing, measured eval accuracy/error,
                         steps, wall time, images/s, time to accuracy targets
"""

from __future__ import annotations

import dataclasses
import math
import os
import time

import keras
import numpy as np

from keras_resnets.data import input_pipeline
from keras_resnets.tasks.distribution import resolve_distribution
from keras_resnets.weights.catalog import IMAGENET_MEAN, IMAGENET_STD
from keras_resnets.weights.fingerprint import save_weights

from . import modeling, run_log
from . import schedule as schedule_lib
from .checkpoint import Checkpointer
from .config import TrainConfig, validate

_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite."""


def _normalization(config: TrainConfig, data: input_pipeline.Data):
    """(mean, std, description) on a [0, 1] scale for the config's normalisation."""
    images = data.train.images
    if config.normalization == "per_pixel_mean":
        if images is None:
            raise ValueError(
                "`normalization='per_pixel_mean'` needs the training images in memory (CIFAR-sized data). "
                f"Received: normalization={config.normalization!r}, dataset={config.dataset!r}"
            )
        mean = images.mean(axis=0, dtype=np.float64) / 255.0
        return mean.astype(np.float32), np.ones(3, np.float32), {"normalization": "per_pixel_mean", "pixel_mean_file": "pixel_mean.npy"}
    if config.normalization_mean is not None:
        mean = np.asarray(config.normalization_mean, np.float64)
        std = np.asarray(config.normalization_std or (1.0, 1.0, 1.0), np.float64)
    elif images is not None:
        # Two passes in float64 over uint8 chunks: exact enough and no float copy of the whole set.
        flat = images.reshape(-1, 3)
        total = np.zeros(3)
        squares = np.zeros(3)
        for start in range(0, len(flat), 1 << 22):
            chunk = flat[start : start + (1 << 22)].astype(np.float64) / 255.0
            total += chunk.sum(0)
            squares += np.square(chunk).sum(0)
        mean = total / len(flat)
        std = np.sqrt(squares / len(flat) - mean**2)
    else:
        mean, std = np.asarray(IMAGENET_MEAN), np.asarray(IMAGENET_STD)
    description = {"normalization": "per_channel", "mean": [round(float(m), 6) for m in mean], "std": [round(float(s), 6) for s in std]}
    return mean.astype(np.float32), std.astype(np.float32), description


def _make_engine(config, dist, num_classes, image_size, mean, std):
    if config.engine == "jax_fast":
        from .engine_jax_fast import FastJaxEngine

        return FastJaxEngine(config, dist, num_classes, image_size, mean, std)
    if dist.backend == "tensorflow":
        from .engine_tf import TensorFlowEngine

        return TensorFlowEngine(config, dist, num_classes, image_size, mean, std)
    from .engine_jax import JaxEngine

    return JaxEngine(config, dist, num_classes, image_size, mean, std)


def _pipelines(config, dist, data, options, eval_options):
    """(train, eval, final eval) pipelines for this process: tf.data, or NumPy for in-memory data on JAX."""
    split_kwargs = dict(num_workers=dist.num_workers, worker_index=dist.worker_index)
    use_numpy = config.input_pipeline == "numpy" or (
        config.input_pipeline == "auto"
        and dist.backend == "jax"
        and data.train.images is not None
        and options.augmentation in ("cifar", "none")
        and eval_options.eval_crops == 1
    )
    if use_numpy:
        if dist.backend != "jax":
            raise ValueError(
                "`input_pipeline='numpy'` is for the JAX backend; TensorFlow strategies take tf.data. "
                f"Received: input_pipeline={config.input_pipeline!r}"
            )
        make = lambda split, opts, batch: input_pipeline.NumpyPipeline(split, opts, batch, **split_kwargs)  # noqa: E731
    else:
        replicas = dist.replicas_per_worker if dist.backend == "tensorflow" else 1
        make = lambda split, opts, batch: input_pipeline.TfDataPipeline(  # noqa: E731
            split, opts, batch, replicas_per_worker=replicas, **split_kwargs
        )
    eval_batch = config.eval_batch_size or config.global_batch_size
    final = None
    if eval_options.eval_crops != options.eval_crops:
        # Several views per image multiply the batch the model sees; keep it near the evaluation batch.
        replicas = dist.num_replicas
        final_batch = max(replicas, eval_batch // eval_options.eval_crops // replicas * replicas)
        final = make(data.eval, eval_options, final_batch)
    return make(data.train, options, config.global_batch_size), make(data.eval, options, eval_batch), final


def _check_batch(config, dist):
    for field in ("global_batch_size", "eval_batch_size"):
        value = getattr(config, field)
        if value is not None and value % dist.num_replicas:
            raise ValueError(
                f"`{field}` must be divisible by the number of replicas ({dist.num_replicas}, "
                f"distribution={dist.kind!r}) so every replica gets an equal share. Received: {field}={value}"
            )


def _setup_determinism(config, backend):
    keras.utils.set_random_seed(config.seed)
    if config.deterministic and backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


class _Exporter:
    """Writes ``.weights.h5`` files of a plain (undistributed, softmax) copy of the model; chief only."""

    def __init__(self, config, num_classes, image_size, workdir):
        self.config, self.num_classes, self.image_size, self.workdir = config, num_classes, image_size, workdir
        self._model = None

    def save(self, weights, name: str) -> str:
        if self._model is None:
            self._model = modeling.build_model(self.config, self.num_classes, self.image_size, logits=False)
        self._model.set_weights(weights)
        path = os.path.join(self.workdir, name)
        save_weights(self._model, path + ".tmp.weights.h5")
        os.replace(path + ".tmp.weights.h5", path)
        return path


def _resolved_config(config, dist, data, steps_per_epoch, total_steps, image_size, lr_schedule):
    resolved = dataclasses.asdict(config)
    resolved.update(image_size=image_size)
    resolved["derived"] = {
        "backend": dist.backend,
        "distribution": dist.kind,
        "num_replicas": dist.num_replicas,
        "num_workers": dist.num_workers,
        "train_examples": data.train.num_examples,
        "eval_examples": data.eval.num_examples,
        "eval_split": data.eval_split_name,
        "num_classes": data.num_classes,
        "steps_per_epoch": steps_per_epoch,
        "total_steps": total_steps,
        "base_lr_scaled": lr_schedule.base_lr,
        "lr_boundaries_steps": list(lr_schedule.boundaries),
        "keras_version": keras.__version__,
    }
    return resolved


def train_and_evaluate(config: TrainConfig, workdir: str) -> dict:
    """Train `config.model` with `config` and evaluate it, writing everything to `workdir`.

    Resumes from the newest checkpoint in `workdir` if there is one (same config expected). Returns
    the final metrics (written to ``final_metrics.json`` by the chief), plus ``weights_fingerprint``
    (per weight: sum and sum of absolute values) on every process. The global Keras dtype policy and
    distribution are restored afterwards.

    Raises:
        ValueError: invalid configuration, data or distribution setup.
        TrainingDivergedError: the loss became NaN/inf (the last good checkpoint is kept).
    """
    policy = keras.config.dtype_policy()
    distribution = keras.distribution.distribution() if keras.backend.backend() == "jax" else None
    try:
        return _train_and_evaluate(config, workdir)
    finally:
        keras.config.set_dtype_policy(policy)
        if keras.backend.backend() == "jax":
            keras.distribution.set_distribution(distribution)


def _train_and_evaluate(config: TrainConfig, workdir: str) -> dict:
    config = validate(config)
    backend = keras.backend.backend()
    if backend == "jax" and config.deterministic:
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_gpu_deterministic_ops" not in flags:
            os.environ["XLA_FLAGS"] = (flags + " --xla_gpu_deterministic_ops=true").strip()
    dist = resolve_distribution(config.distribution, tpu_address=config.tpu_address)
    _check_batch(config, dist)
    if config.max_train_seconds is not None and dist.num_workers > 1:
        raise ValueError(
            "`max_train_seconds` would let workers stop at different steps (and hang the others); with "
            f"several workers set `train_length` instead. Received: max_train_seconds={config.max_train_seconds}"
        )
    _setup_determinism(config, backend)
    keras.config.set_dtype_policy(_POLICIES[config.mixed_precision])

    image_size = config.image_size or modeling.default_image_size(config.model)
    data = input_pipeline.load_data(
        config.dataset,
        data_dir=config.data_dir,
        manual_dir=config.manual_dir,
        train_split=config.train_split,
        eval_split=config.eval_split,
        in_memory=config.in_memory,
        image_size=image_size,
        validation_fraction=config.validation_fraction,
        train_examples=config.train_examples,
        eval_examples=config.eval_examples,
        seed=config.seed,
    )
    steps_per_epoch = data.train.num_examples // config.global_batch_size
    if steps_per_epoch < 1:
        raise ValueError(
            f"The training split has {data.train.num_examples} examples, fewer than one global batch. "
            f"Received: global_batch_size={config.global_batch_size}"
        )
    lr_schedule = schedule_lib.from_config(config, steps_per_epoch)
    total_steps = lr_schedule.total_steps
    eval_every = config.eval_every_steps or steps_per_epoch
    options = input_pipeline.PipelineOptions(
        augmentation=config.augmentation, image_size=image_size, padding=config.padding,
        scale_range=tuple(config.scale_range), pca_lighting=config.pca_lighting,
        eval_resize=config.eval_resize, eval_crops=config.eval_crops, seed=config.seed,
    )
    final_options = dataclasses.replace(options, eval_crops=config.final_eval_crops or config.eval_crops)
    mean, std, preprocessing = _normalization(config, data)
    train_pipe, eval_pipe, final_pipe = _pipelines(config, dist, data, options, final_options)
    engine = _make_engine(config, dist, data.num_classes, image_size, mean, std)

    if dist.is_chief:
        os.makedirs(workdir, exist_ok=True)
        run_log.write_json(
            os.path.join(workdir, "config.json"),
            _resolved_config(config, dist, data, steps_per_epoch, total_steps, image_size, lr_schedule),
        )
        if config.normalization == "per_pixel_mean":
            np.save(os.path.join(workdir, "pixel_mean.npy"), mean)
    checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"), dist.is_chief, config.keep_checkpoints)
    loop = {
        "step": 0, "low_lr_warmup": config.warmup_lr is not None, "since_eval": [0.0, 0.0, 0.0],
        "since_log": [0.0, 0.0, 0.0], "train_time_s": 0.0, "wall_time_s": 0.0, "train_time_at_eval": 0.0,
        "best_eval_error": None, "best_step": None, "time_to_accuracy_s": {},
    }
    restored = checkpointer.restore_latest()
    log = None
    if restored is not None:
        step, arrays, loop = restored
        engine.set_state(arrays)
    log = run_log.RunLog(workdir, dist.is_chief, loop["step"], total_steps)
    if restored is not None:
        log.message(f"Resumed from {checkpointer.directory} at step {loop['step']}.")
    exporter = _Exporter(config, data.num_classes, image_size, workdir)
    use_ema = config.ema_decay is not None

    def absorb(pending):
        """Fetch pending step metrics, check them, and add them to the running sums."""
        if not pending:
            return
        totals = np.sum(np.asarray([[float(v) for v in m] for m in pending]), axis=0)
        pending.clear()
        if not math.isfinite(totals[0]):
            raise TrainingDivergedError(
                f"Training loss became {totals[0]} by step {loop['step']} (learning rate "
                f"{lr_schedule(loop['step'] - 1, loop['low_lr_warmup']):.4g}). The run stopped; its last good "
                f"checkpoint is in {checkpointer.directory}. Lower `base_lr`, add warm-up, or use float32."
            )
        for key in ("since_eval", "since_log"):
            loop[key] = [a + b for a, b in zip(loop[key], totals)]

    def log_interval():
        loss_sum, correct, count = loop["since_log"]
        if not count:
            return
        train_error = 1.0 - correct / count
        if loop["low_lr_warmup"] and train_error < config.warmup_until_train_error:
            loop["low_lr_warmup"] = False
            log.message(f"Low-rate warm-up over at step {loop['step']} (training error {100 * train_error:.1f}%).")
        log.scalars(loop["step"], {"train_loss": loss_sum / count, "train_error": train_error,
                                   "learning_rate": lr_schedule(loop["step"] - 1, loop["low_lr_warmup"])})
        loop["since_log"] = [0.0, 0.0, 0.0]

    def evaluate_and_record():
        eval_loss, eval_accuracy = engine.evaluate(eval_pipe, use_ema)
        loss_sum, correct, count = loop["since_eval"]
        trained = loop["train_time_s"] - loop["train_time_at_eval"]
        row = {
            "step": loop["step"], "epoch": loop["step"] / steps_per_epoch,
            "learning_rate": lr_schedule(loop["step"] - 1, loop["low_lr_warmup"]),
            "train_loss": loss_sum / count if count else float("nan"),
            "train_error": 1.0 - correct / count if count else float("nan"),
            "eval_loss": eval_loss, "eval_error": 1.0 - eval_accuracy,
            "train_time_s": loop["train_time_s"], "wall_time_s": loop["wall_time_s"],
            "images_per_second": count / trained if trained > 0 else float("nan"),
        }
        loop["since_eval"], loop["train_time_at_eval"] = [0.0, 0.0, 0.0], loop["train_time_s"]
        for target in config.accuracy_targets:
            if eval_accuracy >= target and str(target) not in loop["time_to_accuracy_s"]:
                loop["time_to_accuracy_s"][str(target)] = loop["wall_time_s"]
        log.add_row(row)
        if loop["best_eval_error"] is None or row["eval_error"] < loop["best_eval_error"]:
            loop["best_eval_error"], loop["best_step"] = row["eval_error"], loop["step"]
            weights = engine.export_weights(use_ema)
            if dist.is_chief:
                exporter.save(weights, "best.weights.h5")

    stopped_reason = None
    pending = []
    clock = time.perf_counter()
    segment_start = clock
    while loop["step"] < total_steps and stopped_reason is None:
        epoch, start = divmod(loop["step"], steps_per_epoch)
        engine.set_learning_rate(lr_schedule(loop["step"], loop["low_lr_warmup"]))
        step_clock = time.perf_counter()
        for metrics in engine.train_steps(train_pipe, epoch, steps_per_epoch, start):
            pending.append(metrics)
            loop["step"] += 1
            step = loop["step"]
            checkpoint_due = step % config.checkpoint_every_steps == 0
            eval_due = step % eval_every == 0 or step == total_steps
            if step % config.log_every_steps == 0 or checkpoint_due or eval_due:
                absorb(pending)
                now = time.perf_counter()
                loop["train_time_s"] += now - step_clock
                loop["wall_time_s"] += now - segment_start
                segment_start = step_clock = now
                if step % config.log_every_steps == 0:
                    log_interval()
                if config.max_train_seconds is not None and loop["wall_time_s"] >= config.max_train_seconds:
                    stopped_reason = f"max_train_seconds={config.max_train_seconds:g} reached"
                if eval_due or stopped_reason:
                    evaluate_and_record()
                if checkpoint_due or stopped_reason or step == total_steps:
                    checkpointer.save(step, engine.get_state(), loop)
                now = time.perf_counter()
                loop["wall_time_s"] += now - segment_start
                segment_start = step_clock = now
            if stopped_reason or step >= total_steps:
                break
            engine.set_learning_rate(lr_schedule(step, loop["low_lr_warmup"]))

    # The final evaluation: the last row (or a fresh pass with the final number of crops).
    final_row = log.rows[-1] if log.rows else None
    if final_row is None or final_row["step"] != loop["step"]:
        evaluate_and_record()
        final_row = log.rows[-1]
    eval_error, eval_loss = final_row["eval_error"], final_row["eval_loss"]
    if final_pipe is not None:
        eval_loss, accuracy = engine.evaluate(final_pipe, use_ema)
        eval_error = 1.0 - accuracy
    weights = engine.export_weights(use_ema)
    entry_error = None
    try:
        import keras_resnets

        entry_error = keras_resnets.model_entry(config.model).paper_top1_error
    except ValueError:
        pass
    total_images = loop["step"] * config.global_batch_size
    metrics = {
        "model": config.model.lower(),
        "residual": not config.model.lower().startswith("plain"),
        "recipe": config.recipe,
        "dataset": config.dataset,
        "data_dir": config.data_dir,
        "eval_split": data.eval_split_name,
        "eval_examples": data.eval.num_examples,
        "num_classes": data.num_classes,
        "class_names": data.class_names,
        "image_size": image_size,
        "preprocessing": {"input_scale": "1/255", **preprocessing},
        "eval_accuracy": 1.0 - eval_error,
        "eval_error": eval_error,
        "eval_loss": eval_loss,
        "eval_crops": final_options.eval_crops,
        "best_eval_error": loop["best_eval_error"],
        "best_step": loop["best_step"],
        "paper_top1_error_pct": entry_error,
        "steps": loop["step"],
        "total_steps": total_steps,
        "epochs": loop["step"] / steps_per_epoch,
        "completed": loop["step"] >= total_steps,
        "stopped_reason": stopped_reason,
        "train_time_s": loop["train_time_s"],
        "wall_time_s": loop["wall_time_s"],
        "images_per_second": total_images / loop["train_time_s"] if loop["train_time_s"] else None,
        "time_to_accuracy_s": loop["time_to_accuracy_s"],
        "weights": {"last": "last.weights.h5", "best": "best.weights.h5", "ema": use_ema},
        "backend": dist.backend,
        "distribution": dist.kind,
        "num_replicas": dist.num_replicas,
        "mixed_precision": config.mixed_precision,
        "keras_version": keras.__version__,
    }
    if dist.is_chief:
        exporter.save(weights, "last.weights.h5")
        run_log.write_json(os.path.join(workdir, "final_metrics.json"), metrics)
    log.message(
        f"Finished {config.model} ({config.recipe}) at step {loop['step']}/{total_steps}: eval error "
        f"{100 * eval_error:.2f}% on {data.eval_split_name} ({data.eval.num_examples} examples), "
        f"{metrics['images_per_second'] or 0:.0f} img/s, wall {loop['wall_time_s']:.0f}s."
    )
    log.close()
    # Per-variable (sum, sum of |w|): lets processes and runs compare their weights without files.
    metrics["weights_fingerprint"] = [[float(np.sum(w, dtype=np.float64)), float(np.sum(np.abs(w), dtype=np.float64))] for w in weights]
    return metrics
