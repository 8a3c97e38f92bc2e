"""No data loss: outputs replace only earlier outputs, are checked before any work and appear whole or not at all.

Also: fine-tuning input validation (learning rates, class folders) and a NaN loss failing clearly.
"""

import errno
import os

import numpy as np
import pytest
import tensorflow as tf

import keras_resnets
from helpers.serving import small_classifier, write_random_image_folder
from keras_resnets import outputs
from keras_resnets.data import finetune_data
from keras_resnets.tasks import export as export_lib
from keras_resnets.tasks import finetune as finetune_lib
from keras_resnets.tasks.export import export_saved_model, export_tflite
from keras_resnets.tasks.finetune import TrainingDivergedError, fine_tune
from keras_resnets.tasks.model_info import INFO_FILE_NAME, ModelInfo, save_classifier


@pytest.fixture(scope="module")
def classifier():
    return small_classifier(["cat", "dog", "horse"])


def _leftovers(folder):
    return sorted(name for name in os.listdir(folder) if ".partial" in name or name.endswith(".old"))


class _NoWork(Exception):
    """Raised by a monkeypatched step that must not run."""


def _forbid(monkeypatch, target, name):
    def refuse(*args, **kwargs):
        raise _NoWork(f"{name} ran although the destination was unusable")

    monkeypatch.setattr(target, name, refuse)


# ------------------------------------------------------------------------------------------------
# Overwrite replaces only what the library wrote


def test_overwrite_replaces_an_earlier_export_and_nothing_else(classifier, tmp_path):
    model, info = classifier
    destination = tmp_path / "export"
    export_saved_model(model, info, destination)
    assert outputs.written_by_this_library(destination)
    first = (destination / "saved_model.pb").stat().st_mtime_ns
    export_saved_model(model, info, destination, overwrite=True)
    assert (destination / "saved_model.pb").stat().st_mtime_ns != first
    assert _leftovers(tmp_path) == []

    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "saved_model.pb").write_bytes(b"looks like an export, is not one")
    (foreign / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(ValueError, match=r"photos.*not written by keras_resnets.*Nothing was changed"):
        export_saved_model(model, info, foreign, overwrite=True)
    assert sorted(os.listdir(foreign)) == ["holiday.jpg", "saved_model.pb"]
    assert (foreign / "holiday.jpg").read_bytes() == b"precious"

    with pytest.raises(ValueError, match="is a file, expected a folder"):
        export_saved_model(model, info, foreign / "holiday.jpg", overwrite=True)


def test_file_exports_replace_only_their_own_files(classifier, tmp_path):
    model, info = classifier
    foreign = tmp_path / "model.tflite"
    foreign.write_bytes(b"someone else's model")
    with pytest.raises(ValueError, match="not written by keras_resnets"):
        export_tflite(model, info, foreign, overwrite=True)
    assert foreign.read_bytes() == b"someone else's model"
    ours = tmp_path / "ours.tflite"
    export_tflite(model, info, ours)
    export_tflite(model, info, ours, overwrite=True)
    assert ours.read_bytes()[4:8] == b"TFL3" and (tmp_path / INFO_FILE_NAME).is_file()
    assert _leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------------------
# Unwritable destinations fail before any work


def test_a_destination_under_a_regular_file_fails_before_any_work(classifier, tmp_path, monkeypatch):
    model, info = classifier
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    _forbid(monkeypatch, export_lib.keras.export, "ExportArchive")
    with pytest.raises(ValueError, match=r"a_file.*is a file, not a folder"):
        export_saved_model(model, info, blocker / "export")
    _forbid(monkeypatch, finetune_lib, "resolve_training_data")
    with pytest.raises(ValueError, match=r"fine-tuning output.*a_file.*is a file, not a folder"):
        fine_tune("resnet20", str(tmp_path), weights=None, output_dir=blocker / "run")
    with pytest.raises(ValueError, match="a_file"):
        save_classifier(model, info, blocker / "deeper" / "run")


def test_a_read_only_destination_fails_before_any_work(classifier, tmp_path, monkeypatch):
    model, info = classifier
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if os.access(locked, os.W_OK):
        # Root ignores permission bits, so chmod cannot make a folder read-only for this process (CI
        # containers often run as root); tell the check what a normal user's os.access would say.
        real_access = os.access
        monkeypatch.setattr(outputs.os, "access", lambda path, mode: False if os.fspath(path) == str(locked)
                            else real_access(path, mode))
    try:
        _forbid(monkeypatch, export_lib.keras.export, "ExportArchive")
        with pytest.raises(ValueError, match=r"locked.*is not writable"):
            export_saved_model(model, info, locked / "export")
        _forbid(monkeypatch, finetune_lib, "resolve_training_data")
        with pytest.raises(ValueError, match=r"locked.*is not writable"):
            fine_tune("resnet20", str(tmp_path), weights=None, output_dir=locked / "run")
    finally:
        locked.chmod(0o700)
    assert os.listdir(locked) == []


def test_a_full_disk_leaves_no_partial_output_and_keeps_the_earlier_one(classifier, tmp_path, monkeypatch):
    model, info = classifier
    destination = tmp_path / "export"
    export_saved_model(model, info, destination)
    before = sorted(os.listdir(destination))

    def disk_full(self, path):
        with open(path, "w") as handle:
            handle.write("{")  # Half a file, as a real ENOSPC would leave.
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ModelInfo, "save", disk_full)
    for target, overwrite in ((tmp_path / "fresh", False), (destination, True)):
        with pytest.raises(OSError, match=r"No space left on device.*Nothing was written there") as raised:
            export_saved_model(model, info, target, overwrite=overwrite)
        assert raised.value.errno == errno.ENOSPC and str(target) in str(raised.value)
    assert not (tmp_path / "fresh").exists()
    assert sorted(os.listdir(destination)) == before  # The earlier export is intact.
    assert _leftovers(tmp_path) == []
    with pytest.raises(OSError, match="No space left"):
        save_classifier(model, info, tmp_path / "saved")
    assert not (tmp_path / "saved").exists() and _leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------------------
# Fine-tuning: output folder, inputs, divergence


def test_fine_tune_output_dir_is_checked_before_training(tmp_path, monkeypatch):
    existing = tmp_path / "run"
    existing.mkdir()
    (existing / "notes.txt").write_text("mine")
    _forbid(monkeypatch, finetune_lib, "resolve_training_data")
    with pytest.raises(ValueError, match=r"run.*exists and is not empty.*overwrite=True"):
        fine_tune("resnet20", str(tmp_path), weights=None, output_dir=existing)
    with pytest.raises(ValueError, match="not written by keras_resnets"):
        fine_tune("resnet20", str(tmp_path), weights=None, output_dir=existing, overwrite=True)
    assert os.listdir(existing) == ["notes.txt"]


def test_save_classifier_overwrites_only_its_own_output(classifier, tmp_path):
    model, info = classifier
    save_classifier(model, info, tmp_path / "run")
    with pytest.raises(ValueError, match="overwrite=True"):
        save_classifier(model, info, tmp_path / "run")
    save_classifier(model, info, tmp_path / "run", overwrite=True)
    assert sorted(os.listdir(tmp_path / "run")) == [outputs.MARKER_NAME, INFO_FILE_NAME, "model.keras"]


@pytest.mark.parametrize("argument", ["learning_rate", "fine_tune_learning_rate"])
@pytest.mark.parametrize("value", [0, -1e-3, float("nan"), float("inf"), "0.01", True])
def test_bad_learning_rates_are_refused_naming_the_argument(tmp_path, monkeypatch, argument, value):
    _forbid(monkeypatch, finetune_lib, "resolve_training_data")
    with pytest.raises(ValueError, match=f"`{argument}` must be a finite number > 0. Received: {argument}="):
        fine_tune("resnet20", str(tmp_path), weights=None, **{argument: value})


def test_class_folders_must_hold_enough_images(tmp_path):
    root = write_random_image_folder(tmp_path / "data", ["cat", "dog", "horse"], per_class=3)
    for image in (root / "horse").iterdir():
        image.unlink()
    with pytest.raises(ValueError, match=r"Class folder '.*horse' holds no usable images"):
        finetune_data.resolve_training_data(str(root), None, 0.2, None, seed=0)
    (root / "horse" / "notes.txt").write_text("not an image")
    with pytest.warns(UserWarning, match="notes.txt"), pytest.raises(ValueError, match="horse' holds no usable"):
        finetune_data.resolve_training_data(str(root), None, 0.2, None, seed=0)
    write_random_image_folder(root, ["horse"], per_class=1)
    with pytest.raises(ValueError, match=r"horse' holds 1 usable image, but the validation split needs at least 2"):
        finetune_data.resolve_training_data(str(root), None, 0.2, None, seed=0)
    train, validation, names, count = finetune_data.resolve_training_data(str(root), None, 0.0, None, seed=0)
    assert validation is None and count == 7


def test_a_run_whose_loss_becomes_nan_fails_clearly(tmp_path):
    images = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    images[3, 5, 5, 0] = np.nan  # One bad pixel is enough to poison the loss.
    data = tf.data.Dataset.from_tensor_slices((images, np.arange(8) % 2)).batch(4)
    with pytest.raises(TrainingDivergedError, match=r"loss became nan in the head phase \(epoch 1, batch 1\)"):
        # A keras.Model, not a registry name: the run needs no pretrained weights or their preprocessing.
        fine_tune(keras_resnets.ResNet20(), data, weights=None, class_names=["a", "b"], validation_fraction=0.0,
                  head_epochs=1, fine_tune_epochs=0, augment=False, batch_size=8, verbose=0,
                  output_dir=tmp_path / "never")
    assert not (tmp_path / "never").exists()
