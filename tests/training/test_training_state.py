"""The loop state, checkpoints and workdir bookkeeping, without training (fast)."""

import json

import numpy as np
import pytest

from training.checkpoint import Checkpointer
from training.loop_state import LoopState

# Exactly what the dict-based loop of earlier versions saved (its 11 keys) in a checkpoint.
LEGACY_LOOP_STATE = {
    "step": 20, "low_lr_warmup": True, "since_eval": [3.5, 7.0, 10.0], "since_log": [1.5, 2.0, 5.0],
    "train_time_s": 12.5, "wall_time_s": 14.0, "train_time_at_eval": 10.0, "best_eval_error": 0.8,
    "best_step": 15, "time_to_accuracy_s": {"0.1": 3.0},
}


def legacy_checkpoint(directory, step, arrays, loop_state):
    """A checkpoint file as earlier versions wrote it: arrays v00000.. and the loop state, no checksum."""
    directory.mkdir(parents=True, exist_ok=True)
    payload = {f"v{i:05d}": a for i, a in enumerate(arrays)}
    payload["loop_state"] = np.asarray(json.dumps(loop_state))
    path = directory / f"ckpt-{step:09d}.npz"
    with open(path, "wb") as handle:
        np.savez(handle, **payload)
    return path


def test_loop_state_reads_the_legacy_dict_and_writes_the_same_keys():
    state = LoopState.from_dict(json.loads(json.dumps(LEGACY_LOOP_STATE)))
    assert state.step == 20 and state.low_lr_warmup and state.best_step == 15
    assert state.to_dict() == LEGACY_LOOP_STATE
    with pytest.raises(ValueError, match=r"unknown keys \['surprise'\]"):
        LoopState.from_dict({**LEGACY_LOOP_STATE, "surprise": 1})


def test_loop_state_intervals():
    state = LoopState()
    state.add([4.0, 6.0, 8.0])
    state.add([2.0, 2.0, 2.0])
    assert state.take_log_interval() == pytest.approx((0.6, 0.2))
    assert state.take_log_interval() is None  # Nothing since the last line.
    state.train_time_s = 5.0
    loss, error, images_per_second = state.take_eval_interval()
    assert (loss, error, images_per_second) == pytest.approx((0.6, 0.2, 2.0))
    assert state.since_eval == [0.0, 0.0, 0.0] and state.train_time_at_eval == 5.0
    assert np.isnan(state.take_eval_interval()[2])
    state.step = 7
    assert state.improves_best(0.5) and not state.improves_best(0.5) and not state.improves_best(float("nan"))
    assert (state.best_eval_error, state.best_step) == (0.5, 7)
    state.wall_time_s = 9.0
    state.record_accuracy(0.6, (0.5, 0.9))
    state.wall_time_s = 10.0
    state.record_accuracy(0.7, (0.5, 0.9))
    assert state.time_to_accuracy_s == {"0.5": 9.0}


def test_checkpoint_of_an_earlier_version_resumes(tmp_path):
    arrays = [np.arange(6, dtype=np.float32).reshape(2, 3), np.asarray(3, np.int64)]
    legacy_checkpoint(tmp_path / "checkpoints", 20, arrays, LEGACY_LOOP_STATE)
    step, restored, loop_state = Checkpointer(str(tmp_path / "checkpoints")).restore_latest()
    assert step == 20 and LoopState.from_dict(loop_state).to_dict() == LEGACY_LOOP_STATE
    for a, b in zip(arrays, restored):
        np.testing.assert_array_equal(a, b)
