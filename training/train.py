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
import json
import math
import os
import signal
import threading
import time
from typing import Optional, Tuple

import keras
import numpy as np

from keras_resnets.data import input_pipeline
from keras_resnets.tasks.distribution import resolve_distribution
from keras_resnets.weights.catalog import IMAGENET_MEAN, IMAGENET_STD
from keras_resnets.weights.fingerprint import save_weights

from . import modeling, run_log
from . import workdir as workdir_lib
from . import schedule as schedule_lib
from .checkpoint import Checkpointer
from .loop_state import LoopState
from .config import TrainConfig, validate

_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite."""


class TrainingInterrupted(Exception):
    """SIGTERM or SIGINT stopped the run after a step; that step's checkpoint is written.

    Attributes:
        signal_number: the signal received.
        step, total_steps: where the run stopped.
        exit_status: the conventional status of a process stopped by that signal (128 + number:
            143 for SIGTERM, 130 for SIGINT), which ``python -m training`` exits with.
    """

    def __init__(self, signal_number: int, step: int, total_steps: int, checkpoint: str):
        self.signal_number, self.step, self.total_steps = signal_number, step, total_steps
        self.exit_status = 128 + signal_number
        super().__init__(
            f"Stopped by {signal.Signals(signal_number).name} at step {step}/{total_steps}; checkpoint written "
            f"to {checkpoint}. Rerun the same command to resume."
        )


class _StopSignals:
    """While active (main thread only), SIGTERM and SIGINT ask the loop to checkpoint and stop.

    A second signal stops at once (the default behaviour), e.g. a second Ctrl-C during a long evaluation.
    """

    NUMBERS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.received: Optional[int] = None
        self._previous = {}

    def _handle(self, number, frame):
        if self.received is not None:
            self._restore()
            signal.raise_signal(number)
            return
        self.received = number

    def _restore(self):
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}

    def __enter__(self) -> "_StopSignals":
        if threading.current_thread() is threading.main_thread():
            for number in self.NUMBERS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        self._restore()


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


def _single_inter_op_thread(config, backend) -> Optional[str]:
    """With `deterministic` on one CPU device, run TensorFlow with one inter-op thread.

    With several inter-op threads TensorFlow runs independent ops of a step concurrently, and on a
    multi-core CPU two identical ResNet-20 runs then differ after one step even with op determinism
    (oneDNN on or off); with one (each op still uses every core) they are identical. Not for several
    replicas or workers: their collective ops need ops to run concurrently. Must run before TensorFlow
    executes its first operation (its thread pools are fixed then). Returns a warning when that is too
    late, else None.
    """
    if not (config.deterministic and backend == "tensorflow"):
        return None
    import tensorflow as tf

    single_cpu_device = (
        config.distribution in ("auto", "none") and not os.environ.get("TF_CONFIG")
        and not tf.config.list_physical_devices("GPU") and not tf.config.list_physical_devices("TPU")
    )
    if not single_cpu_device or tf.config.threading.get_inter_op_parallelism_threads() == 1 \
            or os.environ.get("TF_NUM_INTEROP_THREADS") == "1":
        return None
    try:
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        return (
            "warning: deterministic=true, but TensorFlow already started with several inter-op threads, so "
            "runs may differ in the last bits on a multi-core CPU. Start the process with "
            "TF_NUM_INTEROP_THREADS=1 (or train through `python -m training`, which sets it in time)."
        )
    return None


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
        temporary = path + ".tmp.weights.h5"
        try:
            save_weights(self._model, temporary)
            os.replace(temporary, path)
        except OSError as error:
            if os.path.exists(temporary):
                os.remove(temporary)
            raise workdir_lib.write_failure(path, error, "The checkpoints are intact; a rerun resumes and writes it again.") from error
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


def train_and_evaluate(config: TrainConfig, workdir: str, new_run: bool = False) -> dict:
    """Train `config.model` with `config` and evaluate it, writing everything to `workdir`.

    Resumes from the newest intact checkpoint in `workdir` if there is one. The workdir remembers its
    run (``run.json``): other result-changing settings or data are refused, as is a workdir with history
    but no intact checkpoint. `new_run` starts from step 0 instead, after moving the workdir's earlier
    run files into ``previous/<time>/``. SIGTERM and SIGINT stop the run after the current step with a
    checkpoint. Returns the final metrics (written to ``final_metrics.json`` by the chief), plus
    ``weights_fingerprint`` (per weight: sum and sum of absolute values) on every process. The global
    Keras dtype policy and distribution are restored afterwards.

    Raises:
        ValueError: invalid configuration, data or distribution setup.
        RunMismatchError, RunStateError (ValueErrors): the workdir holds another run, or cannot resume.
        WorkdirWriteError (an OSError): a file of the workdir could not be written (names the file).
        TrainingDivergedError: the loss became NaN/inf (the last good checkpoint is kept).
        TrainingInterrupted: SIGTERM/SIGINT arrived; the checkpoint of the step reached is written.
    """
    policy = keras.config.dtype_policy()
    distribution = keras.distribution.distribution() if keras.backend.backend() == "jax" else None
    try:
        return _train_and_evaluate(config, workdir, new_run)
    finally:
        keras.config.set_dtype_policy(policy)
        if keras.backend.backend() == "jax":
            keras.distribution.set_distribution(distribution)


def _prepare_workdir(config, workdir, image_size, is_chief, new_run, checkpointer, notes):
    """Check that `workdir` may hold this run and find where to resume; returns (prior record, restored).

    Runs before the data is loaded, so refusals come at once.
    """
    if is_chief:
        workdir_lib.ensure_workdir(workdir)
    if new_run:
        moved = workdir_lib.set_aside(workdir) if is_chief else None
        if moved:
            notes.append(f"--new-run: the earlier run's files are now in {moved}.")
        return None, None
    prior = workdir_lib.read_run_record(workdir) if workdir_lib.has_progress(workdir) else None
    if prior is not None:
        resolved = dict(dataclasses.asdict(config), image_size=image_size)
        workdir_lib.check_same_run(workdir, prior, config=workdir_lib.result_fields(resolved))
    restored = checkpointer.restore_latest(report=notes.append)
    if restored is None:
        found = []
        history = os.path.join(workdir, "history.json")
        if os.path.exists(history):
            try:
                with open(history) as handle:
                    steps = [row["step"] for row in json.load(handle)]
                found.append(f"history.json: {len(steps)} evaluation rows up to step {max(steps, default=0)}")
            except (OSError, ValueError, KeyError, TypeError):
                found.append("history.json (unreadable)")
        if os.path.exists(os.path.join(workdir, "final_metrics.json")):
            found.append("final_metrics.json")
        if found:
            raise workdir_lib.RunStateError(
                f"The workdir {workdir} holds the results of a run ({'; '.join(found)}) but no intact checkpoint "
                f"in {checkpointer.directory}, so it cannot resume; starting again from step 0 would overwrite "
                f"them. Pass --new-run (new_run=True) to move them into {os.path.join(workdir, workdir_lib.PREVIOUS_DIR)}/ "
                "and start from step 0, or use another --workdir."
            )
    return prior, restored


def _train_and_evaluate(config: TrainConfig, workdir: str, new_run: bool) -> dict:
    config = validate(config)
    backend = keras.backend.backend()
    if backend == "jax" and config.deterministic:
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_gpu_deterministic_ops" not in flags:
            os.environ["XLA_FLAGS"] = (flags + " --xla_gpu_deterministic_ops=true").strip()
    notes = []
    determinism_warning = _single_inter_op_thread(config, backend)  # Before the first TensorFlow op.
    dist = resolve_distribution(config.distribution, tpu_address=config.tpu_address)
    _check_batch(config, dist)
    if config.max_train_seconds is not None and dist.num_workers > 1:
        raise ValueError(
            "`max_train_seconds` would let workers stop at different steps (and hang the others); with "
            f"several workers set `train_length` instead. Received: max_train_seconds={config.max_train_seconds}"
        )
    # Seeded after the distribution is set up, as always: creating a strategy may draw random numbers.
    _setup_determinism(config, backend)
    keras.config.set_dtype_policy(_POLICIES[config.mixed_precision])

    image_size = config.image_size or modeling.default_image_size(config.model)
    checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"), dist.is_chief, config.keep_checkpoints)
    prior, restored = _prepare_workdir(config, workdir, image_size, dist.is_chief, new_run, checkpointer, notes)
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
    identity = workdir_lib.data_identity(
        data.class_names, data.train.labels, data.eval.labels, data.train.num_examples, data.eval.num_examples
    )
    if prior is not None:
        workdir_lib.check_same_run(workdir, prior, data=identity)
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
        resolved = _resolved_config(config, dist, data, steps_per_epoch, total_steps, image_size, lr_schedule)
        if prior is None or prior.get("format", 0) < 1:
            # A new run, or one of an older version: record what it is from now on.
            workdir_lib.write_run_record(workdir, workdir_lib.result_fields(resolved), identity)
        run_log.write_json(os.path.join(workdir, "config.json"), resolved)
        if config.normalization == "per_pixel_mean":
            workdir_lib.atomic_write(os.path.join(workdir, "pixel_mean.npy"), lambda handle: np.save(handle, mean), mode="wb")
    state = LoopState(low_lr_warmup=config.warmup_lr is not None)
    if restored is not None:
        _, arrays, saved_state = restored
        state = LoopState.from_dict(saved_state)
        engine.set_state(arrays)
    log = run_log.RunLog(workdir, dist.is_chief, state.step, total_steps)
    for note in notes + ([determinism_warning] if determinism_warning else []):
        log.message(note)
    if restored is not None:
        log.message(f"Resumed from {checkpointer.path(restored[0])} at step {state.step}.")
        if state.step >= total_steps:
            log.message(f"The run is already complete ({state.step}/{total_steps} steps); its final outputs are written again.")
    loop = _TrainingLoop(
        config=config, dist=dist, engine=engine, lr_schedule=lr_schedule, log=log, checkpointer=checkpointer,
        exporter=_Exporter(config, data.num_classes, image_size, workdir), state=state,
        steps_per_epoch=steps_per_epoch, eval_every=eval_every, train_pipe=train_pipe, eval_pipe=eval_pipe,
    )
    stopped_reason = loop.run()
    eval_error, eval_loss = loop.final_evaluation(final_pipe)
    weights = engine.export_weights(loop.use_ema)
    loop.require_finite(weights, "final weights", loop.weight_names())
    entry_error = None
    try:
        import keras_resnets

        entry_error = keras_resnets.model_entry(config.model).paper_top1_error
    except ValueError:
        pass
    total_images = state.step * config.global_batch_size
    metrics = {
        "model": config.model.lower(),
        "residual": modeling.model_architecture(config.model).residual,
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
        "best_eval_error": state.best_eval_error,
        "best_step": state.best_step,
        "paper_top1_error_pct": entry_error,
        "steps": state.step,
        "total_steps": total_steps,
        "epochs": state.step / steps_per_epoch,
        "completed": state.step >= total_steps,
        "stopped_reason": stopped_reason,
        "train_time_s": state.train_time_s,
        "wall_time_s": state.wall_time_s,
        "images_per_second": total_images / state.train_time_s if state.train_time_s else None,
        "time_to_accuracy_s": state.time_to_accuracy_s,
        "weights": {"last": "last.weights.h5", "best": "best.weights.h5", "ema": loop.use_ema},
        "backend": dist.backend,
        "distribution": dist.kind,
        "num_replicas": dist.num_replicas,
        "mixed_precision": config.mixed_precision,
        "keras_version": keras.__version__,
    }
    if dist.is_chief:
        loop.exporter.save(weights, "last.weights.h5")
        run_log.write_json(os.path.join(workdir, "final_metrics.json"), metrics)
    log.message(
        f"Finished {config.model} ({config.recipe}) at step {state.step}/{total_steps}: eval error "
        f"{100 * eval_error:.2f}% on {data.eval_split_name} ({data.eval.num_examples} examples), "
        f"{metrics['images_per_second'] or 0:.0f} img/s, wall {state.wall_time_s:.0f}s."
    )
    log.close()
    # Per-variable (sum, sum of |w|): lets processes and runs compare their weights without files.
    metrics["weights_fingerprint"] = [[float(np.sum(w, dtype=np.float64)), float(np.sum(np.abs(w), dtype=np.float64))] for w in weights]
    return metrics


class _TrainingLoop:
    """Runs the steps of one process: learning rate, metrics, log lines, evaluations and checkpoints.

    Everything that must survive a restart lives in `state` (a :class:`LoopState`, saved in every
    checkpoint); the rest is this process's wiring.
    """

    def __init__(self, *, config, dist, engine, lr_schedule, log, checkpointer, exporter, state: LoopState,
                 steps_per_epoch: int, eval_every: int, train_pipe, eval_pipe):
        self.config, self.dist, self.engine, self.lr_schedule = config, dist, engine, lr_schedule
        self.log, self.checkpointer, self.exporter, self.state = log, checkpointer, exporter, state
        self.steps_per_epoch, self.eval_every = steps_per_epoch, eval_every
        self.train_pipe, self.eval_pipe = train_pipe, eval_pipe
        self.total_steps = lr_schedule.total_steps
        self.use_ema = config.ema_decay is not None
        self._pending = []

    def _learning_rate(self, step: int) -> float:
        return self.lr_schedule(step, self.state.low_lr_warmup)

    def _absorb(self) -> None:
        """Fetch the pending step metrics, check them, and add them to the running sums."""
        if not self._pending:
            return
        totals = np.sum(np.asarray([[float(v) for v in m] for m in self._pending]), axis=0)
        self._pending.clear()
        if not math.isfinite(totals[0]):
            raise TrainingDivergedError(
                f"Training loss became {totals[0]} by step {self.state.step} (learning rate "
                f"{self._learning_rate(self.state.step - 1):.4g}). The run stopped; its last good "
                f"checkpoint is in {self.checkpointer.directory}. Lower `base_lr`, add warm-up, or use float32."
            )
        self.state.add(totals)

    def weight_names(self):
        """The variable path of each array the engine's ``export_weights`` returns (``model.weights`` order)."""
        return [w.path for w in self.engine.model.weights]

    def require_finite(self, arrays, what: str, names) -> None:
        """Raise TrainingDivergedError if `arrays` (about to be saved as `what`) hold NaN or inf.

        `names` gives each array's variable path, so the error says which variable went bad first.
        The loss alone can miss a divergence: in training mode BatchNorm renormalises each batch, so the
        loss may stay finite while a moving variance has overflowed.
        """
        for name, array in zip(names, arrays, strict=True):
            array = np.asarray(array)
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                bad = int(np.size(array) - np.isfinite(array).sum())
                raise TrainingDivergedError(
                    f"The model's state became non-finite ({bad} NaN or inf values in {name!r} of the {what}) by step "
                    f"{self.state.step} (learning rate {self._learning_rate(self.state.step - 1):.4g}). The run "
                    f"stopped without writing it; its last good checkpoint is in {self.checkpointer.directory}. "
                    "Lower `base_lr`, add warm-up, or use float32."
                )

    def _tick(self, training: bool) -> None:
        """Add the time since the previous tick to the wall time (and to the training time if `training`).

        One clock runs through the whole loop, epoch ends included, so every second lands in exactly
        one of training and overhead (evaluation, checkpoints, logging).
        """
        now = time.perf_counter()
        elapsed = now - self._mark
        self.state.wall_time_s += elapsed
        if training:
            self.state.train_time_s += elapsed
        self._mark = now

    def _eta_s(self) -> Optional[float]:
        """Seconds until the end of the schedule at this session's average wall time per step."""
        start_step, start_wall = self._session_start
        done = self.state.step - start_step
        if done <= 0:
            return None
        return (self.total_steps - self.state.step) * (self.state.wall_time_s - start_wall) / done

    def _log_interval(self) -> None:
        state = self.state
        interval = state.take_log_interval()
        if interval is None:
            return
        train_loss, train_error = interval
        if state.low_lr_warmup and train_error < self.config.warmup_until_train_error:
            state.low_lr_warmup = False
            self.log.message(f"Low-rate warm-up over at step {state.step} (training error {100 * train_error:.1f}%).")
        start_step, start_train = self._interval_start
        seconds = state.train_time_s - start_train
        images = (state.step - start_step) * self.config.global_batch_size
        self._interval_start = (state.step, state.train_time_s)
        self.log.training_line(
            state.step,
            {"train_loss": train_loss, "train_error": train_error, "learning_rate": self._learning_rate(state.step - 1)},
            images / seconds if seconds > 0 else math.nan,
            self._eta_s(),
        )

    def evaluate_and_record(self) -> None:
        """Evaluate, add a history row, and export the weights when they are the best so far."""
        state = self.state
        eval_loss, eval_accuracy = self.engine.evaluate(self.eval_pipe, self.use_ema)
        train_loss, train_error, images_per_second = state.take_eval_interval()
        row = {
            "step": state.step, "epoch": state.step / self.steps_per_epoch,
            "learning_rate": self._learning_rate(state.step - 1),
            "train_loss": train_loss, "train_error": train_error,
            "eval_loss": eval_loss, "eval_error": 1.0 - eval_accuracy,
            "train_time_s": state.train_time_s, "wall_time_s": state.wall_time_s,
            "images_per_second": images_per_second,
        }
        state.record_accuracy(eval_accuracy, self.config.accuracy_targets)
        self.log.add_row(row, self._eta_s())
        if state.improves_best(row["eval_error"]):
            weights = self.engine.export_weights(self.use_ema)
            self.require_finite(weights, "best weights", self.weight_names())
            if self.dist.is_chief:
                self.exporter.save(weights, "best.weights.h5")

    def run(self) -> Optional[str]:
        """Train until the schedule ends or the time budget is spent; returns why it stopped early (or None).

        Raises:
            TrainingInterrupted: SIGTERM or SIGINT arrived; the checkpoint of the step reached is written.
        """
        with _StopSignals() as signals:
            return self._run(signals)

    def _run(self, signals: "_StopSignals") -> Optional[str]:
        config, state, total_steps = self.config, self.state, self.total_steps
        stopped_reason = None
        self._session_start = (state.step, state.wall_time_s)
        self._interval_start = (state.step, state.train_time_s)
        rows = self.log.rows
        if (state.step % self.eval_every == 0 or state.step == total_steps) and state.step and (not rows or rows[-1]["step"] != state.step):
            # A signal stopped the run on an evaluation step before it evaluated: do it now, as an
            # uninterrupted run would have.
            self.evaluate_and_record()
        self._mark = last_checkpoint = time.perf_counter()
        while state.step < total_steps and stopped_reason is None:
            epoch, start = divmod(state.step, self.steps_per_epoch)
            self.engine.set_learning_rate(self._learning_rate(state.step))
            for metrics in self.engine.train_steps(self.train_pipe, epoch, self.steps_per_epoch, start):
                self._pending.append(metrics)
                state.step += 1
                step = state.step
                log_due = step % config.log_every_steps == 0
                # A chunked engine's weights are at the chunk's end while the loop reads the chunk's
                # steps one by one: a stop or a timed checkpoint waits for that end (chunks end at
                # every log, checkpoint and evaluation step), else it would label those weights wrongly.
                weights_at_step = getattr(self.engine, "state_step", None) in (None, step)
                checkpoint_due = (
                    step % config.checkpoint_every_steps == 0
                    or (weights_at_step and signals.received is not None)
                    or (weights_at_step and config.checkpoint_every_seconds is not None
                        and time.perf_counter() - last_checkpoint >= config.checkpoint_every_seconds)
                )
                eval_due = step % self.eval_every == 0 or step == total_steps
                if log_due or checkpoint_due or eval_due:
                    self._absorb()
                    self._tick(training=True)
                    if log_due:
                        self._log_interval()
                    if config.max_train_seconds is not None and state.wall_time_s >= config.max_train_seconds:
                        stopped_reason = f"max_train_seconds={config.max_train_seconds:g} reached"
                    if (eval_due or stopped_reason) and signals.received is None:
                        self.evaluate_and_record()
                    if checkpoint_due or stopped_reason or step == total_steps:
                        engine_state = self.engine.get_state()
                        self.require_finite(engine_state, "checkpoint", self.engine.state_names())
                        saved = self.checkpointer.save(step, engine_state, state.to_dict())
                        last_checkpoint = time.perf_counter()
                        if signals.received is not None:
                            self._tick(training=False)
                            interrupted = TrainingInterrupted(signals.received, step, total_steps, saved or self.checkpointer.directory)
                            self.log.message(str(interrupted))
                            self.log.close()
                            raise interrupted
                    self._tick(training=False)
                if stopped_reason or step >= total_steps:
                    break
                self.engine.set_learning_rate(self._learning_rate(step))
        return stopped_reason

    def final_evaluation(self, final_pipe) -> Tuple[float, float]:
        """(eval error, eval loss) of the final weights: the last row, or a pass with the final crops."""
        rows = self.log.rows
        if not rows or rows[-1]["step"] != self.state.step:
            self.evaluate_and_record()
        eval_error, eval_loss = rows[-1]["eval_error"], rows[-1]["eval_loss"]
        if final_pipe is not None:
            eval_loss, accuracy = self.engine.evaluate(final_pipe, self.use_ema)
            eval_error = 1.0 - accuracy
        return eval_error, eval_loss
