"""The training loop's own state: what it carries from step to step and saves in every checkpoint.

Checkpoints store :meth:`LoopState.to_dict` as JSON under the key ``loop_state``. The key names are the
ones the loop has always written, so checkpoints of earlier versions resume unchanged.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Dict, List, Optional, Tuple


def _zeros() -> List[float]:
    return [0.0, 0.0, 0.0]


@dataclasses.dataclass
class LoopState:
    """Progress, partial metrics, timing and the best result of a run.

    Attributes:
        step: training steps done.
        low_lr_warmup: whether the low-rate warm-up (``warmup_lr``) is still on.
        since_eval, since_log: (loss sum, correct count, example count) of the training batches since
            the last evaluation row and since the last log line.
        train_time_s: seconds spent in training steps (evaluation and checkpoints excluded).
        wall_time_s: seconds of the training loop, evaluation and checkpoints included.
        train_time_at_eval: ``train_time_s`` at the last evaluation row.
        best_eval_error, best_step: the lowest evaluation error so far and its step.
        time_to_accuracy_s: wall time at which each accuracy target (a string key) was first reached.
    """

    step: int = 0
    low_lr_warmup: bool = False
    since_eval: List[float] = dataclasses.field(default_factory=_zeros)
    since_log: List[float] = dataclasses.field(default_factory=_zeros)
    train_time_s: float = 0.0
    wall_time_s: float = 0.0
    train_time_at_eval: float = 0.0
    best_eval_error: Optional[float] = None
    best_step: Optional[int] = None
    time_to_accuracy_s: Dict[str, float] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        """The JSON-ready form saved in checkpoints (the key names of every earlier version)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, saved: dict) -> "LoopState":
        """Rebuild the state saved by :meth:`to_dict` (or by the dict-based loop of earlier versions).

        Raises:
            ValueError: `saved` is not a dict or has keys this version does not know.
        """
        if not isinstance(saved, dict):
            raise ValueError(f"A checkpoint's loop state must be a JSON object. Received: {type(saved).__name__}")
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(saved) - known)
        if unknown:
            raise ValueError(f"The checkpoint's loop state has unknown keys {unknown}; accepted: {sorted(known)}")
        state = cls(**saved)
        state.since_eval, state.since_log = [float(v) for v in state.since_eval], [float(v) for v in state.since_log]
        return state

    def add(self, totals) -> None:
        """Add one or more steps' (loss sum, correct, count) to both running sums."""
        self.since_eval = [a + float(b) for a, b in zip(self.since_eval, totals)]
        self.since_log = [a + float(b) for a, b in zip(self.since_log, totals)]

    def take_log_interval(self) -> Optional[Tuple[float, float]]:
        """(mean loss, error) of the training batches since the last log line, then start a new interval.

        None when no example was seen since the last line.
        """
        loss_sum, correct, count = self.since_log
        if not count:
            return None
        self.since_log = _zeros()
        return loss_sum / count, 1.0 - correct / count

    def take_eval_interval(self) -> Tuple[float, float, float]:
        """(mean loss, error, images/s) of the training since the last evaluation row; starts a new one.

        NaN where nothing was trained since the last row.
        """
        loss_sum, correct, count = self.since_eval
        trained = self.train_time_s - self.train_time_at_eval
        result = (
            loss_sum / count if count else math.nan,
            1.0 - correct / count if count else math.nan,
            count / trained if trained > 0 else math.nan,
        )
        self.since_eval, self.train_time_at_eval = _zeros(), self.train_time_s
        return result

    def record_accuracy(self, accuracy: float, targets) -> None:
        """Note the wall time of the first evaluation reaching each of `targets`."""
        for target in targets:
            if accuracy >= target and str(target) not in self.time_to_accuracy_s:
                self.time_to_accuracy_s[str(target)] = self.wall_time_s

    def improves_best(self, eval_error: float) -> bool:
        """Whether `eval_error` beats the best so far; if so it becomes the best (at the current step)."""
        if self.best_eval_error is not None and not eval_error < self.best_eval_error:
            return False
        self.best_eval_error, self.best_step = eval_error, self.step
        return True
