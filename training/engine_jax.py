"""Training steps on the JAX backend: one jitted, stateless step, data-parallel through Keras' DataParallel.

Under ``keras.distribution.DataParallel`` the model's variables are replicated over the device mesh and
each batch is sharded along its first axis; XLA (GSPMD) partitions the jitted step and inserts the
gradient all-reduce. BatchNorm statistics are computed over the whole global batch (the computation is
written for the global array), so several devices give the same result as one, synchronized BN or not.
No TensorFlow is imported here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import keras
import numpy as np

from . import chunked_convolution, modeling, objective


class JaxEngine:
    """Model, optimizer state and jitted steps for one run on the JAX backend (same API as TensorFlowEngine)."""

    def __init__(self, config, dist, num_classes: int, image_size: int, mean: np.ndarray, std: np.ndarray):
        self.config, self.dist, self.num_classes = config, dist, num_classes
        self.mean, self.std = jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32)
        if config.xla is False:
            raise ValueError(
                "The JAX backend always compiles its training step with XLA (jax.jit). Received: xla=False"
            )
        self.model = modeling.build_model(config, num_classes, image_size)
        self.conv_chunk_bytes = self._conv_chunk_bytes(config, dist)
        if self.conv_chunk_bytes:
            chunked_convolution.use_batch_chunked_convolutions(self.model, self.conv_chunk_bytes)
        self.decayed_mask = [objective.decays(v, config.weight_decay_norm_and_bias) for v in self.model.trainable_variables]
        decayed = [v for v, d in zip(self.model.trainable_variables, self.decayed_mask) if d]
        self.optimizer = modeling.build_optimizer(config, self.model, decayed)
        self.optimizer.build(self.model.trainable_variables)
        self._sgd = modeling.inner_optimizer(self.optimizer)
        optimizer_variables = list(self.optimizer.variables)
        self._lr_index = next(i for i, v in enumerate(optimizer_variables) if v is self._sgd._learning_rate)
        ema = getattr(self._sgd, "_model_variables_moving_average", None) or []
        self._ema_indices = [next(i for i, o in enumerate(optimizer_variables) if o is v) for v in ema]
        self.state = (
            [v.value for v in self.model.trainable_variables],
            [v.value for v in self.model.non_trainable_variables],
            [v.value for v in optimizer_variables],
        )
        self._lr = 0.0
        self._train = jax.jit(self._train_step, donate_argnums=0)
        self._eval = jax.jit(self._eval_step)

    @staticmethod
    def _conv_chunk_bytes(config, dist) -> int:
        """Bytes per convolution slice: the config's on a CPU with one device, else 0 (whole batches)."""
        # Accelerators convolve whole batches at full speed; a batch sharded over several devices
        # would be resliced across them.
        one_cpu = jax.default_backend() == "cpu" and dist.num_replicas == 1 and dist.num_workers == 1
        return config.cpu_conv_chunk_bytes if one_cpu else 0

    # -- steps -------------------------------------------------------------------------------------

    def _loss_fn(self, trainable, non_trainable, optimizer_vars, images, labels):
        config = self.config
        logits, non_trainable = self.model.stateless_call(
            trainable, non_trainable, objective.normalize(images, self.mean, self.std), training=True
        )
        losses, correct = objective.per_example_losses(logits, labels, self.num_classes, config.label_smoothing)
        loss = jnp.mean(losses)
        if config.weight_decay_mode == "l2" and config.weight_decay:
            decayed = [w for w, d in zip(trainable, self.decayed_mask) if d]
            loss = loss + config.weight_decay * objective.l2_penalty(decayed)
        if self.optimizer is not self._sgd:
            mapping = list(zip(self.optimizer.variables, optimizer_vars))
            with keras.StatelessScope(state_mapping=mapping):
                loss = self.optimizer.scale_loss(loss)
        return loss, (non_trainable, jnp.sum(losses), jnp.sum(correct))

    def _train_step(self, state, images, labels, lr):
        trainable, non_trainable, optimizer_vars = state
        optimizer_vars = list(optimizer_vars)
        optimizer_vars[self._lr_index] = lr.astype(optimizer_vars[self._lr_index].dtype)
        grad_fn = jax.value_and_grad(self._loss_fn, has_aux=True)
        (_, (non_trainable, loss_sum, correct)), grads = grad_fn(trainable, non_trainable, optimizer_vars, images, labels)
        trainable, optimizer_vars = self.optimizer.stateless_apply(optimizer_vars, grads, trainable)
        count = jnp.asarray(labels.shape[0], jnp.float32)
        return (trainable, non_trainable, optimizer_vars), (loss_sum, correct, count)

    def _eval_step(self, trainable, non_trainable, images, labels, weights):
        images, views = objective.merge_crops(images)
        logits, _ = self.model.stateless_call(trainable, non_trainable, objective.normalize(images, self.mean, self.std), training=False)
        losses, correct = objective.per_example_losses(logits, labels, self.num_classes, 0.0, views)
        return jnp.sum(losses * weights), jnp.sum(correct * weights), jnp.sum(weights)

    def _put(self, array):
        """A host batch (this process's share) as a global array sharded along the batch axis."""
        if self.dist.jax_distribution is None:
            return jnp.asarray(array)
        global_shape = (array.shape[0] * self.dist.num_workers,) + array.shape[1:]
        sharding = self.dist.jax_distribution.get_data_layout(global_shape).backend_layout
        if self.dist.num_workers > 1:
            return jax.make_array_from_process_local_data(sharding, array, global_shape)
        return jax.device_put(array, sharding)

    def set_learning_rate(self, lr: float) -> None:
        """Set the rate the next steps use."""
        self._lr = lr

    def train_steps(self, pipeline, epoch: int, steps_per_epoch: int, start_step: int):
        """An iterator that runs one training step per item and yields (loss_sum, correct, count)."""
        for images, labels in pipeline.train_batches(epoch, steps_per_epoch, start_step):
            self.state, metrics = self._train(self.state, self._put(images), self._put(labels), jnp.float32(self._lr))
            yield metrics

    def evaluate(self, pipeline, use_ema: bool):
        """(mean loss, accuracy) over a full pass of the evaluation pipeline."""
        trainable, non_trainable, optimizer_vars = self.state
        if use_ema and self._ema_indices:
            trainable = [optimizer_vars[i] for i in self._ema_indices]
        totals = [0.0, 0.0, 0.0]
        for images, labels, weights in pipeline.eval_batches():
            results = self._eval(trainable, non_trainable, self._put(images), self._put(labels), self._put(weights))
            totals = [t + r for t, r in zip(totals, results)]
        totals = [float(t) for t in totals]
        return totals[0] / totals[2], totals[1] / totals[2]

    # -- state -------------------------------------------------------------------------------------

    @staticmethod
    def _to_numpy(array):
        # Replicated arrays: every device (and process) holds the full value; read the local copy.
        return np.asarray(array.addressable_data(0)) if hasattr(array, "addressable_data") else np.asarray(array)

    def get_state(self):
        """Every array needed to resume (weights, optimizer slots and counters) as numpy."""
        trainable, non_trainable, optimizer_vars = self.state
        return [self._to_numpy(a) for a in (*trainable, *non_trainable, *optimizer_vars)]

    def state_names(self):
        """The variable path of each array :meth:`get_state` returns, in the same order."""
        variables = (*self.model.trainable_variables, *self.model.non_trainable_variables, *self.optimizer.variables)
        return [v.path for v in variables]

    def set_state(self, arrays) -> None:
        """Restore what :meth:`get_state` returned."""
        current = [*self.state[0], *self.state[1], *self.state[2]]
        if len(arrays) != len(current) or any(tuple(a.shape) != tuple(c.shape) for a, c in zip(arrays, current)):
            raise ValueError(
                "The checkpoint does not match this model and optimizer (different model, recipe or options). "
                f"Received: {len(arrays)} arrays for {len(current)} variables"
            )
        restored = [jax.device_put(np.asarray(a, c.dtype), c.sharding) for a, c in zip(arrays, current)]
        sizes = [len(self.state[0]), len(self.state[1])]
        self.state = (restored[: sizes[0]], restored[sizes[0] : sizes[0] + sizes[1]], restored[sizes[0] + sizes[1] :])

    def export_weights(self, use_ema: bool):
        """The model's weights (``model.weights`` order) as numpy; EMA values for trainable ones if asked."""
        trainable, non_trainable, optimizer_vars = self.state
        if use_ema and self._ema_indices:
            trainable = [optimizer_vars[i] for i in self._ema_indices]
        values = {}
        for variable, value in zip(self.model.trainable_variables, trainable):
            values[id(variable)] = value
        for variable, value in zip(self.model.non_trainable_variables, non_trainable):
            values[id(variable)] = value
        return [self._to_numpy(values[id(v)]) for v in self.model.weights]
