"""Weight files this project writes record their variable layout and load by layer name; anything else
(no layout, a damaged or foreign one) takes Keras' own loader with the same result."""

import h5py
import keras
import numpy as np
import pytest

import keras_resnets
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
    assert fingerprint.assign_by_layout(target, path)
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
    assert not fingerprint.assign_by_layout(target, copy)
    for variable, value in zip(target.weights, before):  # Nothing half-assigned.
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), value)
    calls = _keras_loader_calls(monkeypatch)
    loader.load_weights(target, copy)
    assert calls == [1]
    _assert_same(source, target)
