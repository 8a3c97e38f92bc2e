"""Training steps on the TensorFlow backend under any ``tf.distribute`` strategy (custom loop).

Keras ``fit`` is not used because, with Keras 3.15 / TF 2.21 (checked by ``training/check_keras_fit.py``):
``fit`` under ``MultiWorkerMirroredStrategy`` fails (keras-team/keras#20585), ``jit_compile=True``
under ``MirroredStrategy`` fails (#19005) and ``steps_per_execution > 1`` fails with several replicas.
Here each replica runs ``replica_train_step`` through ``strategy.run``; the Keras optimizer all-reduces
(sums) the gradients, so each replica's loss is its share of the global-batch mean.

XLA: on a single replica the whole step is compiled (``jit_compile=True``; by default only with a GPU,
since on CPU TensorFlow's own kernels are faster). With several replicas it is
refused with a clear error: one XLA cluster cannot hold variables that live on several devices (the
#19005 failure), a nested compiled function cannot hold BatchNorm's cross-replica updates (TensorFlow
raises on the ``merge_call``), and auto-clustering cannot span several logical CPUs. For XLA on several
devices use the JAX backend (``jax_data_parallel``), where the whole step is always compiled.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from . import fused_batchnorm, modeling, objective


class TensorFlowEngine:
    """Model, optimizer and compiled steps for one run on the TensorFlow backend.

    Args:
        config: the TrainConfig.
        dist: the DistributionContext (its strategy builds the variables).
        num_classes, image_size: the model's output classes and input resolution.
        mean, std: normalisation constants on a [0, 1] scale (broadcastable to an image).
    """

    def __init__(self, config, dist, num_classes: int, image_size: int, mean: np.ndarray, std: np.ndarray):
        self.config, self.dist, self.num_classes = config, dist, num_classes
        self.strategy = dist.strategy
        self.mean, self.std = mean.astype(np.float32), std.astype(np.float32)
        self.xla = self._resolve_xla(config, dist)
        with dist.scope():
            self.model = modeling.build_model(config, num_classes, image_size)
            if config.fused_batch_norm:
                fused_batchnorm.use_fused_batch_norm(self.model)
            self.decayed = [v for v in self.model.trainable_variables if objective.decays(v, config.weight_decay_norm_and_bias)]
            self.optimizer = modeling.build_optimizer(config, self.model, self.decayed)
            self.optimizer.build(self.model.trainable_variables)
        self._sgd = modeling.inner_optimizer(self.optimizer)
        self._current_lr = None
        self._train = tf.function(self._distributed_train, jit_compile=self.xla)
        self._eval = tf.function(self._distributed_eval, jit_compile=self.xla)

    @staticmethod
    def _resolve_xla(config, dist) -> bool:
        if config.xla is None:
            # On CPU, TensorFlow's own (oneDNN) kernels beat XLA's: ResNet-20 trains at 424 images/s
            # without XLA and 250 with it on 2 cores (benchmarks/bench_training.py). Auto means: a GPU.
            return dist.num_replicas == 1 and bool(tf.config.list_logical_devices("GPU"))
        if config.xla and dist.num_replicas > 1:
            raise ValueError(
                "XLA (jit_compile) of a training step across several replicas fails on the TensorFlow "
                "backend (keras-team/keras#19005: variables on several devices in one XLA cluster). Use "
                "xla=false (the default there), or the JAX backend with distribution='jax_data_parallel'. "
                f"Received: xla=True with {dist.num_replicas} replicas ({dist.kind})"
            )
        return bool(config.xla)

    # -- steps -------------------------------------------------------------------------------------

    def _loss_and_grads(self, images, labels):
        config = self.config
        with tf.GradientTape() as tape:
            logits = self.model(objective.normalize(images, self.mean, self.std), training=True)
            losses, correct = objective.per_example_losses(logits, labels, self.num_classes, config.label_smoothing)
            # Each replica's share of the global-batch mean; the optimizer sums the replicas' gradients.
            loss = tf.reduce_sum(losses) / config.global_batch_size
            if config.weight_decay_mode == "l2" and config.weight_decay:
                loss += config.weight_decay * objective.l2_penalty(self.decayed) / self.dist.num_replicas
            if self.optimizer is not self._sgd:
                loss = self.optimizer.scale_loss(loss)
        grads = tape.gradient(loss, self.model.trainable_variables)
        return grads, tf.reduce_sum(losses), tf.reduce_sum(correct)

    def _replica_train(self, images, labels):
        grads, loss_sum, correct = self._loss_and_grads(images, labels)
        self.optimizer.apply(grads, self.model.trainable_variables)
        return loss_sum, correct, tf.cast(tf.shape(labels)[0], tf.float32)

    def _distributed_train(self, batch):
        results = self.strategy.run(self._replica_train, args=batch)
        return [self.strategy.reduce(tf.distribute.ReduceOp.SUM, r, axis=None) for r in results]

    def _replica_eval(self, images, labels, weights):
        images, views = objective.merge_crops(images)
        logits = self.model(objective.normalize(images, self.mean, self.std), training=False)
        losses, correct = objective.per_example_losses(logits, labels, self.num_classes, 0.0, views)
        return tf.reduce_sum(losses * weights), tf.reduce_sum(correct * weights), tf.reduce_sum(weights)

    def _distributed_eval(self, batch):
        results = self.strategy.run(self._replica_eval, args=batch)
        return [self.strategy.reduce(tf.distribute.ReduceOp.SUM, r, axis=None) for r in results]

    def set_learning_rate(self, lr: float) -> None:
        """Set the optimizer's rate (a variable, so compiled steps are not retraced)."""
        if lr != self._current_lr:
            self._sgd.learning_rate.assign(lr)
            self._current_lr = lr

    def train_steps(self, pipeline, epoch: int, steps_per_epoch: int, start_step: int):
        """An iterator that runs one training step per item and yields (loss_sum, correct, count)."""
        dataset = self.strategy.distribute_datasets_from_function(
            lambda context: pipeline.train_dataset(epoch, steps_per_epoch, start_step)
        )
        for batch in dataset:
            yield self._train(batch)

    def evaluate(self, pipeline, use_ema: bool):
        """(mean loss, accuracy) over a full pass of the evaluation pipeline."""
        dataset = self.strategy.distribute_datasets_from_function(lambda context: pipeline.eval_dataset())
        with self._ema_weights(use_ema):
            totals = np.zeros(3)
            for batch in dataset:
                totals += [float(t) for t in self._eval(batch)]
        return totals[0] / totals[2], totals[1] / totals[2]

    # -- state -------------------------------------------------------------------------------------

    def _state_variables(self):
        return list(self.model.weights) + list(self.optimizer.variables)

    def get_state(self):
        """Every variable needed to resume (model weights, optimizer slots and counters) as numpy."""
        return [np.asarray(v.numpy()) for v in self._state_variables()]

    def state_names(self):
        """The variable path of each array :meth:`get_state` returns, in the same order."""
        return [v.path for v in self._state_variables()]

    def set_state(self, arrays) -> None:
        """Restore what :meth:`get_state` returned."""
        variables = self._state_variables()
        if len(arrays) != len(variables) or any(tuple(a.shape) != tuple(v.shape) for a, v in zip(arrays, variables)):
            raise ValueError(
                "The checkpoint does not match this model and optimizer (different model, recipe or options). "
                f"Received: {len(arrays)} arrays for {len(variables)} variables"
            )
        for variable, value in zip(variables, arrays):
            variable.assign(value)
        self._current_lr = None

    def _ema_variables(self):
        return getattr(self._sgd, "_model_variables_moving_average", None) or []

    def export_weights(self, use_ema: bool):
        """The model's weights (``model.weights`` order) as numpy; EMA values for trainable ones if asked."""
        with self._ema_weights(use_ema):
            return [np.asarray(v.numpy()) for v in self.model.weights]

    def _ema_weights(self, use_ema: bool):
        engine = self

        class Swap:
            def __enter__(self):
                self.saved = None
                if use_ema and engine._ema_variables():
                    self.saved = [v.numpy() for v in engine.model.trainable_variables]
                    for v, ema in zip(engine.model.trainable_variables, engine._ema_variables()):
                        v.assign(ema.numpy())

            def __exit__(self, *exc):
                if self.saved is not None:
                    for v, value in zip(engine.model.trainable_variables, self.saved):
                        v.assign(value)

        return Swap()
