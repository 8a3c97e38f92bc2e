"""Weight files this project writes record their variable layout and load by layer name; anything else
(no layout, a damaged or foreign one) takes Keras' own loader with the same result."""

import h5py
import keras
import numpy as np
import pytest

import keras_resnets
from keras_resnets.architecture.identity import Architecture
from keras_resnets.weights import fingerprint, loader


def _random_resnet20(seed):
    model = keras_resnets.ResNet20()
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        variable.assign(rng.normal(size=variable.shape).astype("float32"))
    return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = _random_resnet20(0)
    path = str(tmp_path_factory.mktemp("fast") / "resnet20.weights.h5")
    fingerprint.save_weights(model, path)
    return model, path


def _assert_same(a, b):
    for x, y in zip(a.weights, b.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(x), keras.ops.convert_to_numpy(y))


def _keras_loader_calls(monkeypatch):
    calls = []
    original = keras.Model.load_weights
    monkeypatch.setattr(keras.Model, "load_weights", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    return calls


def test_files_written_here_load_by_layer_name_without_keras_walk(saved, monkeypatch):
    source, path = saved
    with h5py.File(path) as handle:
        assert fingerprint.LAYOUT_ATTRIBUTE in handle.attrs
    calls = _keras_loader_calls(monkeypatch)
    target = keras_resnets.ResNet20()
    loader.load_weights(target, path)
    assert calls == []
    _assert_same(source, target)


def test_fresh_models_with_identical_variables_still_get_a_layout(tmp_path):
    model = keras_resnets.ResNet20()  # Fresh BN layers: many variables of equal value.
    path = str(tmp_path / "fresh.weights.h5")
    fingerprint.save_weights(model, path)
    target = _random_resnet20(1)
    assert fingerprint.assign_by_layout(target, fingerprint.verify_weights_file(path))
    _assert_same(model, target)


@pytest.mark.parametrize("damage", ["missing", "garbage", "swapped", "partial"])
def test_without_a_usable_layout_keras_loads_the_file(saved, tmp_path, monkeypatch, damage):
    import json
    import shutil

    source, path = saved
    copy = str(tmp_path / f"{damage}.weights.h5")
    shutil.copy(path, copy)
    with h5py.File(copy, "a") as handle:
        layout = json.loads(handle.attrs[fingerprint.LAYOUT_ATTRIBUTE])
        if damage == "missing":
            del handle.attrs[fingerprint.LAYOUT_ATTRIBUTE]
        elif damage == "garbage":
            handle.attrs[fingerprint.LAYOUT_ATTRIBUTE] = "{not json"
        elif damage == "swapped":  # Two datasets of different shapes exchanged.
            keys = [k for k in layout if "conv" in k or "dense" in k]
            first = keys[0]
            second = next(k for k in keys if handle[k].shape != handle[first].shape)
            layout[first], layout[second] = layout[second], layout[first]
            handle.attrs[fingerprint.LAYOUT_ATTRIBUTE] = json.dumps(layout)
        else:
            layout.popitem()
            handle.attrs[fingerprint.LAYOUT_ATTRIBUTE] = json.dumps(layout)
    target = _random_resnet20(2)
    if damage != "missing":
        # The content hash covers the layout: a file whose layout changed after writing is refused.
        with pytest.raises(keras_resnets.weights.WeightsFileError, match="changed after writing"):
            loader.load_weights(target, copy)
    with h5py.File(copy, "a") as handle:  # A file written without a hash (e.g. by older versions).
        del handle.attrs[fingerprint.CONTENT_HASH_ATTRIBUTE]
    before = [keras.ops.convert_to_numpy(v).copy() for v in target.weights]
    assert not fingerprint.assign_by_layout(target, fingerprint.verify_weights_file(copy))
    for variable, value in zip(target.weights, before):  # Nothing half-assigned.
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), value)
    calls = _keras_loader_calls(monkeypatch)
    loader.load_weights(target, copy)
    assert calls == [1]
    _assert_same(source, target)


def test_a_file_replaced_after_its_check_is_not_what_gets_loaded(saved, tmp_path):
    import shutil

    source, path = saved
    target_path = str(tmp_path / "swap.weights.h5")
    shutil.copy(path, target_path)
    info = fingerprint.verify_weights_file(target_path)
    other = _random_resnet20(7)
    fingerprint.save_weights(other, target_path)  # Replaced between the check and the load.
    target = _random_resnet20(3)
    loader.load_keras_weights(target, info, Architecture.from_model(target), 10, "swap")
    _assert_same(source, target)  # The checked bytes, not the new file.


def test_keras_read_files_are_compared_with_what_was_checked(saved, tmp_path, monkeypatch):
    import shutil

    source, path = saved
    copy = str(tmp_path / "plain.weights.h5")
    shutil.copy(path, copy)
    with h5py.File(copy, "a") as handle:  # A file without layout or hash: Keras reads it from its path.
        del handle.attrs[fingerprint.LAYOUT_ATTRIBUTE]
        del handle.attrs[fingerprint.CONTENT_HASH_ATTRIBUTE]
    info = fingerprint.verify_weights_file(copy)
    _random_resnet20(9).save_weights(copy)  # Replaced after the check: Keras would read other values.
    target = _random_resnet20(4)
    with pytest.raises(keras_resnets.weights.WeightsFileError, match=r"plain\.weights\.h5.*changed during the load"):
        loader.load_keras_weights(target, info, Architecture.from_model(target), 10, "plain")


def test_bytes_other_than_the_recorded_ones_are_refused(saved):
    _, path = saved
    info = fingerprint.verify_weights_file(path)
    assert fingerprint.verify_weights_file(path, expected_file_sha256=info.file_sha256).file_sha256 == info.file_sha256
    with pytest.raises(keras_resnets.weights.WeightsFileError, match=r"resnet20\.weights\.h5.*changed since it was recorded"):
        fingerprint.verify_weights_file(path, expected_file_sha256="0" * 64)


def test_classifier_classes_come_from_the_checked_arrays(saved, tmp_path):
    _, path = saved
    assert fingerprint.verify_weights_file(path).classifier_classes() == 10
    two = str(tmp_path / "two.weights.h5")
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)]).save_weights(two)
    with pytest.raises(keras_resnets.weights.WeightsFileError, match=r"two\.weights\.h5.*2 2-D variables"):
        fingerprint.verify_weights_file(two).classifier_classes()


def test_an_oversized_file_is_refused_before_it_is_read(tmp_path):
    huge = tmp_path / "huge.weights.h5"
    with open(huge, "wb") as handle:  # Sparse: no disk or memory is used for its 3 GiB.
        handle.truncate(fingerprint.MAX_WEIGHTS_FILE_BYTES + (1 << 30))
    with pytest.raises(keras_resnets.weights.WeightsFileError, match=r"huge\.weights\.h5.*at most \d+ bytes.*it has \d+ bytes"):
        fingerprint.verify_weights_file(str(huge))
