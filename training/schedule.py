"""Learning-rate schedules, evaluated on the host once per step (piecewise, cosine, constant)."""

from __future__ import annotations

import dataclasses
import math
from typing import Tuple


@dataclasses.dataclass(frozen=True)
class LearningRateSchedule:
    """A schedule in steps: optional linear warm-up, then piecewise-constant, cosine or constant.

    Attributes:
        base_lr: the rate after warm-up (already scaled for the batch size).
        total_steps: length of training.
        kind: "piecewise", "cosine" or "constant".
        boundaries: steps at which "piecewise" multiplies the rate by `decay_factor`.
        decay_factor: the piecewise multiplier.
        warmup_steps: linear warm-up from base_lr / warmup_steps to base_lr.
        low_lr: the paper's ResNet-110 warm-up rate, used while the run says it is warming up.
    """

    base_lr: float
    total_steps: int
    kind: str = "piecewise"
    boundaries: Tuple[int, ...] = ()
    decay_factor: float = 0.1
    warmup_steps: int = 0
    low_lr: float = 0.0

    def __call__(self, step: int, low_lr_warmup: bool = False) -> float:
        """The learning rate of step `step` (0-based)."""
        if low_lr_warmup:
            return self.low_lr
        if step < self.warmup_steps:
            return self.base_lr * (step + 1) / self.warmup_steps
        if self.kind == "piecewise":
            return self.base_lr * self.decay_factor ** sum(step >= b for b in self.boundaries)
        if self.kind == "cosine":
            progress = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
            return 0.5 * self.base_lr * (1.0 + math.cos(math.pi * min(1.0, progress)))
        return self.base_lr


def steps_of(length: float, unit: str, steps_per_epoch: int) -> int:
    """A length in "steps" or "epochs" as a whole number of steps."""
    return int(round(length * steps_per_epoch)) if unit == "epochs" else int(round(length))


def from_config(config, steps_per_epoch: int) -> LearningRateSchedule:
    """The schedule of a TrainConfig for a dataset of `steps_per_epoch` steps."""
    base_lr = config.base_lr
    if config.lr_reference_batch:
        base_lr *= config.global_batch_size / config.lr_reference_batch
    unit = config.schedule_unit
    return LearningRateSchedule(
        base_lr=base_lr,
        total_steps=steps_of(config.train_length, unit, steps_per_epoch),
        kind=config.lr_schedule,
        boundaries=tuple(steps_of(b, unit, steps_per_epoch) for b in config.lr_boundaries),
        decay_factor=config.lr_decay_factor,
        warmup_steps=steps_of(config.warmup_length, unit, steps_per_epoch),
        low_lr=config.warmup_lr or 0.0,
    )
