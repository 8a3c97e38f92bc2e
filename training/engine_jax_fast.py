"""The JAX engine at the accelerator's pace: data on the device, augmentation and many steps per dispatch.

The standard JAX engine (training/engine_jax.py) dispatches one jitted step per batch and feeds it
images that the host has gathered and augmented with NumPy; on a fast GPU the device then waits for
Python and the host. This engine (``engine="jax_fast"``) keeps what a step computes and what it sees,
and moves the rest onto the device:

- the training images live on the device as uint8 (CIFAR-10: 150 MB), labels as int32;
- one dispatch runs a chunk of steps (``lax.scan``); a chunk ends at the next log, checkpoint or
  evaluation step, the end of the epoch or of training, so the loop in training/train.py logs,
  evaluates and checkpoints exactly where it does with the standard engine;
- gather, pad, crop and flip run inside the compiled step. The host still draws the order and the
  crop/flip choices, with the very generators of the NumPy pipeline (``epoch_permutation`` and
  ``augment.cifar_crop_draws`` seeded by (seed, epoch, step)), and sends only those small integer
  arrays: the engine sees exactly the batches of the standard engine, and a resumed run exactly those
  of an uninterrupted one.

Chunks are padded to the longest possible chunk (at most ``log_every_steps`` steps) with skipped
(``lax.cond``) steps, so one program is compiled whatever the chunk's length. On the CPU the chunk
runs as a Python loop of the same compiled step instead (``fast_engine_loop="auto"``): XLA:CPU runs
convolutions inside a ``while`` loop about 16 times slower than at the top level of a program (ResNet-8,
batch 128: 11.6 s against 0.7 s a step), and on a CPU a dispatch per step costs nothing that matters. Mixed precision (``mixed_precision="bfloat16"``) computes
convolutions in bfloat16 while BatchNorm statistics, the loss and the weights stay float32 (Keras'
mixed policy). One device and one process: data-parallel runs use the standard engine.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from keras_resnets.data import augment as augment_lib
from keras_resnets.data import input_pipeline

from . import schedule as schedule_lib
from .engine_jax import JaxEngine


def device_augment(images, top, left, flip, padding: int):
    """Pad + crop + flip of a uint8 batch (B, H, W, C) on the device, with given per-image choices.

    `top`, `left` (ints in [0, 2 * padding]) and `flip` (bools) are what
    ``augment.cifar_crop_draws`` drew; the result equals ``augment.cifar_augment_numpy``'s exactly.
    """
    count, height, width, _ = images.shape
    padded = jnp.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    rows = top[:, None] + jnp.arange(height)[None, :]
    cols = left[:, None] + jnp.arange(width)[None, :]
    cols = jnp.where(flip[:, None], cols[:, ::-1], cols)
    return padded[jnp.arange(count)[:, None, None], rows[:, :, None], cols[:, None, :]]


class FastJaxEngine(JaxEngine):
    """Same API and state as :class:`JaxEngine`; trains a chunk of steps per dispatch on device-resident data.

    Args: as :class:`JaxEngine`. Raises ValueError for several devices or processes.
    """

    def __init__(self, config, dist, num_classes: int, image_size: int, mean: np.ndarray, std: np.ndarray):
        if dist.num_replicas != 1 or dist.num_workers != 1:
            raise ValueError(
                "`engine='jax_fast'` trains on one device in one process; use engine='standard' with "
                f"distribution='jax_data_parallel' for several. Received: distribution={dist.kind!r} with "
                f"{dist.num_replicas} devices and {dist.num_workers} processes"
            )
        super().__init__(config, dist, num_classes, image_size, mean, std)
        self.chunk_length = config.log_every_steps
        # The global step the weights are at; mid-chunk the loop has read fewer steps' metrics than that,
        # and may checkpoint or evaluate only when the two agree (``None``: no chunk run yet).
        self.state_step = None
        loop = getattr(config, "fast_engine_loop", "auto")
        self.loop = ("steps" if jax.default_backend() == "cpu" else "scan") if loop == "auto" else loop
        self._device_data = None  # (id of the split, images, labels) on the device.
        self._orders = {}  # (seed, examples, epoch) -> permutation, of the latest epoch only.
        self._run = jax.jit(self.chunk_fn, static_argnames=("padding",), donate_argnums=0)
        self._run_step = jax.jit(self.step_fn, static_argnames=("padding",), donate_argnums=0)

    # -- the compiled chunk ------------------------------------------------------------------------

    def step_fn(self, state, images, labels, index, top, left, flip, lr, padding):
        """Pure function: one training step on the examples `index` of the device-resident split.

        Returns (state after the step, (3,) float32 (loss sum, correct, count)).
        """
        batch = images[index]
        if padding:
            batch = device_augment(batch, top, left, flip, padding)
        state, metrics = self._train_step(state, batch, labels[index], lr)
        return state, jnp.stack(metrics).astype(jnp.float32)

    def chunk_fn(self, state, images, labels, indices, tops, lefts, flips, learning_rates, valid, padding):
        """Pure function: run ``len(valid)`` steps (those with ``valid`` False are skipped).

        Args:
            state: (trainable, non_trainable, optimizer variables) as in :class:`JaxEngine`.
            images, labels: the whole training split on the device (uint8 (N, H, W, C), int32 (N,)).
            indices: (K, B) example indices of each step; tops, lefts, flips: (K, B) crop/flip choices.
            learning_rates: (K,) float32; valid: (K,) bool; padding: the crop padding (static; 0: none).

        Returns:
            (state after the chunk, (K, 3) float32 per-step (loss sum, correct, count); zeros when skipped).
        """

        def body(state, step_inputs):
            index, top, left, flip, lr, is_valid = step_inputs

            def run(state):
                return self.step_fn(state, images, labels, index, top, left, flip, lr, padding)

            def skip(state):
                return state, jnp.zeros((3,), jnp.float32)

            return jax.lax.cond(is_valid, run, skip, state)

        return jax.lax.scan(body, state, (indices, tops, lefts, flips, learning_rates, valid))

    # -- host side ---------------------------------------------------------------------------------

    def _data_on_device(self, pipeline):
        if not isinstance(pipeline, input_pipeline.NumpyPipeline):
            raise ValueError(
                "`engine='jax_fast'` reproduces the NumPy input pipeline on the device: in-memory data "
                "(CIFAR-sized), augmentation 'cifar' or 'none', input_pipeline 'auto' or 'numpy'. "
                f"Received: a {type(pipeline).__name__}"
            )
        split = pipeline.split
        if self._device_data is None or self._device_data[0] is not split:
            self._device_data = (split, jax.device_put(split.images), jax.device_put(np.asarray(split.labels, np.int32)))
        return self._device_data[1], self._device_data[2]

    def _order(self, pipeline, epoch: int) -> np.ndarray:
        key = (pipeline.options.seed, pipeline.split.num_examples, epoch)
        if key not in self._orders:
            self._orders = {k: v for k, v in self._orders.items() if k[2] == epoch}
            self._orders[key] = input_pipeline.epoch_permutation(key[1], key[0], epoch)
        return self._orders[key]

    def plan_chunk(self, pipeline, epoch: int, start_step: int, num_steps: int, learning_rates) -> dict:
        """Host arrays for `num_steps` steps of `epoch` from `start_step`, padded to the chunk length.

        The order and the crop/flip choices come from the NumPy pipeline's own generators, seeded by
        (seed, epoch, step, worker), so the batches equal ``pipeline.train_batches``'s.
        """
        length = max(self.chunk_length, num_steps)
        batch, options = pipeline.global_batch, pipeline.options
        order = self._order(pipeline, epoch)
        indices = np.zeros((length, batch), np.int32)
        tops, lefts = np.zeros((length, batch), np.int32), np.zeros((length, batch), np.int32)
        flips = np.zeros((length, batch), bool)
        for k in range(num_steps):
            step = start_step + k
            indices[k] = order[step * batch : (step + 1) * batch]
            if options.augmentation == "cifar":
                rng = np.random.default_rng([options.seed, epoch, step, pipeline.worker_index])
                tops[k], lefts[k], flips[k] = augment_lib.cifar_crop_draws(rng, batch, options.padding)
        rates = np.zeros(length, np.float32)
        rates[:num_steps] = learning_rates
        return {"indices": indices, "tops": tops, "lefts": lefts, "flips": flips, "learning_rates": rates,
                "valid": np.arange(length) < num_steps, "num_steps": num_steps}

    @staticmethod
    def chunk_arguments(plan) -> tuple:
        """The per-step arrays of a plan, in :meth:`chunk_fn`'s order (after images and labels)."""
        return plan["indices"], plan["tops"], plan["lefts"], plan["flips"], plan["learning_rates"], plan["valid"]

    @staticmethod
    def padding_of(pipeline) -> int:
        """The crop padding the compiled step applies (0: no augmentation)."""
        return pipeline.options.padding if pipeline.options.augmentation == "cifar" else 0

    def dispatch_chunk(self, pipeline, plan):
        """Start a planned chunk on the device and return its (padded) metrics without waiting for them."""
        images, labels = self._data_on_device(pipeline)
        padding = self.padding_of(pipeline)
        if self.loop == "scan":
            self.state, metrics = self._run(self.state, images, labels, *self.chunk_arguments(plan), padding=padding)
            return metrics
        per_step = []
        for k in range(plan["num_steps"]):
            step_inputs = [array[k] for array in self.chunk_arguments(plan)[:5]]
            self.state, row = self._run_step(self.state, images, labels, *step_inputs, padding=padding)
            per_step.append(row)
        return jnp.stack(per_step)

    def run_chunk(self, pipeline, plan) -> np.ndarray:
        """Run a planned chunk on the device; returns its (num_steps, 3) metrics as NumPy (waits for them)."""
        return np.asarray(self.dispatch_chunk(pipeline, plan))[: plan["num_steps"]]

    def _chunk_end(self, step: int, steps_per_epoch: int, total_steps: int) -> int:
        """The first step after `step` at which the loop logs, evaluates, checkpoints or ends an epoch."""
        config = self.config
        ends = [(step // every + 1) * every for every in
                (config.log_every_steps, config.checkpoint_every_steps, config.eval_every_steps or steps_per_epoch)]
        return min(ends + [(step // steps_per_epoch + 1) * steps_per_epoch, total_steps])

    def train_steps(self, pipeline, epoch: int, steps_per_epoch: int, start_step: int):
        """An iterator that yields (loss_sum, correct, count) per step, running a chunk per dispatch.

        The first step's rate is the one last set (:meth:`set_learning_rate`); the others follow the
        config's schedule. The loop only switches the ResNet-110 low-rate warm-up off at a log step,
        which ends a chunk, so whether the chunk warms up is read from that first rate.
        """
        config = self.config
        schedule = schedule_lib.from_config(config, steps_per_epoch)
        # The longest chunk there can be: every chunk is padded to it, so one program serves them all.
        self.chunk_length = min(config.log_every_steps, config.checkpoint_every_steps,
                                config.eval_every_steps or steps_per_epoch, steps_per_epoch)
        step = epoch * steps_per_epoch + start_step
        while step < min((epoch + 1) * steps_per_epoch, schedule.total_steps):
            end = self._chunk_end(step, steps_per_epoch, schedule.total_steps)
            # Ambiguous when the low rate equals the scheduled one; that only happens after the warm-up
            # (once the schedule has decayed to it), so "not warming up" is the right reading then.
            warm = config.warmup_lr is not None and self._lr == schedule(step, True) != schedule(step, False)
            rates = [schedule(s, warm) for s in range(step, end)]
            rates[0] = self._lr
            plan = self.plan_chunk(pipeline, epoch, step - epoch * steps_per_epoch, end - step, rates)
            rows = self.run_chunk(pipeline, plan)
            self.state_step = end  # The weights now hold every step of the chunk, whatever the loop has read.
            for row in rows:
                yield tuple(row)
            step = end
