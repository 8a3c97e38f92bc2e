"""No weight file can run code, load into the wrong net, or fail with anything but WeightsFileError."""

import json
import os
import pickle
import zipfile

import h5py
import numpy as np
import pytest
from safetensors.numpy import save_file

import keras_resnets
from keras_resnets.weights import WeightsFileError, WeightsMismatchError, checkpoints, fingerprint, load_weights
from helpers.torch_files import write_legacy, write_zip

AKAMASTER_TH = "weights/akamaster/resnet20-12fca82f.th"
AKAMASTER_NPZ = "weights/akamaster/resnet20.npz"


@pytest.fixture(scope="module")
def resnet20_state(shared):
    with np.load(shared(AKAMASTER_NPZ)) as archive:
        return {key: archive[key] for key in archive.files}


def _conv1(model):
    return model.get_layer("conv1").kernel.numpy()


# ------------------------------------------------------------------------------------------------
# 1. No code runs from a weights file


def test_akamaster_checkpoint_loads_without_torch(shared, resnet20_state):
    """The legacy .th pickle is read by the restricted reader (torch is not installed here)."""
    import sys

    model = keras_resnets.ResNet20(weights=str(shared(AKAMASTER_TH)))
    np.testing.assert_array_equal(_conv1(model), resnet20_state["conv1.weight"].transpose(2, 3, 1, 0))
    assert "torch" not in sys.modules


@pytest.mark.parametrize("writer", ["legacy", "zip"])
def test_both_torch_layouts_round_trip(tmp_path, resnet20_state, writer):
    path = tmp_path / "model.pth"
    (write_legacy if writer == "legacy" else write_zip)(path, resnet20_state)
    read = checkpoints.read_state_dict(path)
    assert sorted(read) == sorted(resnet20_state)
    for key, value in resnet20_state.items():
        np.testing.assert_array_equal(read[key], value)


class _CreatesMarker:
    """Unpickling this calls ``open(marker, "w")``: a stand-in for any code a malicious file could run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def _malicious_files(tmp_path, marker, state):
    evil = _CreatesMarker(marker)
    plain_pickle = tmp_path / "plain_pickle.th"
    plain_pickle.write_bytes(pickle.dumps({"state_dict": evil}))
    legacy = tmp_path / "legacy_with_payload.pth"
    write_legacy(legacy, state, extra={"best_prec1": evil})
    evil_zip = tmp_path / "evil_zip.pt"
    with zipfile.ZipFile(evil_zip, "w") as archive:
        archive.writestr("checkpoint/data.pkl", pickle.dumps({"state_dict": {"conv1.weight": evil}}, protocol=2))
    object_npz = tmp_path / "object_array.npz"
    np.savez(object_npz, payload=np.array([evil], dtype=object))
    return [plain_pickle, legacy, evil_zip, object_npz]


def test_a_file_that_would_run_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "marker"
    state = {"conv1.weight": np.zeros((16, 3, 3, 3), np.float32)}
    for path in _malicious_files(tmp_path, marker, state):
        with pytest.raises(WeightsFileError, match=os.path.basename(path)):
            keras_resnets.ResNet20(weights=str(path))
        assert not marker.exists(), f"{path.name} ran code"
    # The payload is real: plain pickle would have created the marker.
    pickle.loads((tmp_path / "plain_pickle.th").read_bytes())
    assert marker.exists()


def test_refusal_names_the_global_it_refused(tmp_path):
    path = tmp_path / "evil.th"
    path.write_bytes(pickle.dumps(_CreatesMarker(tmp_path / "m")))
    with pytest.raises(WeightsFileError, match=r"evil\.th.*io\.open.*nothing from the file was run"):
        checkpoints.read_state_dict(path)


@pytest.mark.parametrize("case, tamper", [
    ("stride beyond storage", {"tensor": {"conv1.weight": (0, (16, 3, 3, 3), (1000, 9, 3, 1))}}),
    ("offset beyond storage", {"tensor": {"conv1.weight": (5000, (16, 3, 3, 3), (27, 9, 3, 1))}}),
    ("negative size", {"tensor": {"conv1.weight": (0, (-16, 3, 3, 3), (27, 9, 3, 1))}}),
    ("element count lies", {"count": {"conv1.weight": 10 ** 15}}),
])
def test_hostile_tensor_geometry_cannot_read_outside_its_storage(tmp_path, case, tamper):
    path = tmp_path / "geometry.th"
    write_legacy(path, {"conv1.weight": np.ones((16, 3, 3, 3), np.float32)},
                 tamper_tensor=tamper.get("tensor"), tamper_count=tamper.get("count"))
    with pytest.raises(WeightsFileError, match="geometry.th"):
        checkpoints.read_state_dict(path)


# ------------------------------------------------------------------------------------------------
# 2. Nothing wrong loads silently: plain vs residual


def test_a_torch_layout_file_into_a_plain_net_needs_a_statement(shared, tmp_path, resnet20_state):
    for relative in (AKAMASTER_NPZ, AKAMASTER_TH):
        with pytest.raises(WeightsMismatchError, match="do not record which network.*plain20:"):
            keras_resnets.PlainNet20(weights=str(shared(relative)))
    stated = keras_resnets.PlainNet20(weights=f"plain20:{shared(AKAMASTER_NPZ)}")
    np.testing.assert_array_equal(_conv1(stated), resnet20_state["conv1.weight"].transpose(2, 3, 1, 0))
    model = keras_resnets.PlainNet20()
    load_weights(model, str(shared(AKAMASTER_TH)), weights_architecture="plain20")
    np.testing.assert_array_equal(_conv1(model), _conv1(stated))
    with pytest.raises(WeightsMismatchError, match="made for resnet20 and do not fit this plain20"):
        keras_resnets.PlainNet20(weights=f"resnet20:{shared(AKAMASTER_NPZ)}")
    with pytest.raises(ValueError, match="weights_architecture"):
        load_weights(model, str(shared(AKAMASTER_NPZ)), weights_architecture="plain21x")
    with pytest.raises(ValueError, match="applies to weight files only"):
        keras_resnets.PlainNet20(weights="plain20:cifar10")


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_files_this_project_writes_record_their_architecture(tmp_path, suffix):
    plain = keras_resnets.PlainNet20()
    path = checkpoints.save_state_dict(plain, tmp_path / f"plain20{suffix}")
    assert checkpoints.read_checkpoint(path).architecture.name == "plain20"
    loaded = keras_resnets.PlainNet20(weights=path)  # No statement needed: the file says it.
    np.testing.assert_array_equal(_conv1(loaded), _conv1(plain))
    with pytest.raises(WeightsMismatchError, match="made for plain20 and do not fit this resnet20"):
        keras_resnets.ResNet20(weights=path)
    with pytest.raises(WeightsMismatchError, match="records plain20"):
        keras_resnets.ResNet20(weights=f"resnet20:{path}")
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".")]  # No temporary left over.


def test_a_plain_keras_weights_file_into_a_plain_net_needs_a_statement(tmp_path):
    residual = keras_resnets.ResNet20()
    path = str(tmp_path / "no_fingerprint.weights.h5")
    residual.save_weights(path)  # Keras alone: no architecture record.
    with pytest.raises(WeightsMismatchError, match="do not record"):
        keras_resnets.PlainNet20(weights=path)
    keras_resnets.ResNet20(weights=path)


# ------------------------------------------------------------------------------------------------
# Non-finite values and content hashes


@pytest.mark.parametrize("suffix", [".npz", ".safetensors", ".th"])
def test_non_finite_torch_layout_weights_are_refused(tmp_path, resnet20_state, suffix):
    state = dict(resnet20_state)
    state["layer2.1.bn1.running_var"] = state["layer2.1.bn1.running_var"].copy()
    state["layer2.1.bn1.running_var"][3] = np.inf if suffix == ".npz" else np.nan
    path = tmp_path / f"bad{suffix}"
    if suffix == ".npz":
        np.savez(path, **state)
    elif suffix == ".safetensors":
        save_file(state, str(path))
    else:
        write_legacy(path, state)
    with pytest.raises(WeightsFileError, match=rf"bad\{suffix}.*'layer2\.1\.bn1\.running_var'.*NaN or infinite"):
        keras_resnets.ResNet20(weights=str(path))


def test_non_finite_keras_files_are_refused(tmp_path):
    model = keras_resnets.ResNet20()
    bn = model.get_layer("layer3.2.bn2")
    values = bn.get_weights()
    values[0][0] = np.nan
    bn.set_weights(values)
    h5 = str(tmp_path / "nan.weights.h5")
    model.save_weights(h5)
    with pytest.raises(WeightsFileError, match=r"nan\.weights\.h5.*NaN or infinite"):
        keras_resnets.ResNet20(weights=h5)
    keras_file = str(tmp_path / "nan.keras")
    model.save(keras_file)
    with pytest.raises(WeightsFileError, match=r"nan\.keras.*layer3\.2\.bn2.*NaN or infinite"):
        keras_resnets.ResNet20(weights=keras_file)


def test_project_weight_files_carry_a_content_hash_checked_on_load(tmp_path):
    model = keras_resnets.ResNet20()
    path = str(tmp_path / "resnet20.weights.h5")
    fingerprint.save_weights(model, path)
    assert fingerprint.verify_weights_file(path).verified_hash
    keras_resnets.ResNet20(weights=path)

    altered = str(tmp_path / "altered.weights.h5")
    fingerprint.save_weights(model, altered)
    with h5py.File(altered, "a") as handle:
        kernels = []
        handle.visititems(lambda name, obj: kernels.append(name) if isinstance(obj, h5py.Dataset) else None)
        dataset = handle[kernels[0]]
        dataset[...] = dataset[()] + 0.5
    with pytest.raises(WeightsFileError, match=r"altered\.weights\.h5.*changed after writing"):
        keras_resnets.ResNet20(weights=altered)

    relabelled = str(tmp_path / "relabelled.weights.h5")
    fingerprint.save_weights(model, relabelled)
    with h5py.File(relabelled, "a") as handle:  # Claim the residual weights are a plain net's.
        record = json.loads(handle.attrs[fingerprint.ATTRIBUTE])
        handle.attrs[fingerprint.ATTRIBUTE] = json.dumps(dict(record, residual=False, shortcut=None))
    with pytest.raises(WeightsFileError, match="changed after writing"):
        keras_resnets.PlainNet20(weights=relabelled)


# ------------------------------------------------------------------------------------------------
# Every unreadable file: one error type, naming the file


@pytest.fixture(scope="module")
def valid_files(tmp_path_factory, resnet20_state):
    folder = tmp_path_factory.mktemp("valid")
    model = keras_resnets.ResNet20()
    files = {
        ".npz": checkpoints.save_state_dict(model, folder / "v.npz"),
        ".safetensors": checkpoints.save_state_dict(model, folder / "v.safetensors"),
        ".weights.h5": str(folder / "v.weights.h5"),
        ".keras": str(folder / "v.keras"),
        ".th": str(folder / "v.th"),
        ".pt": str(folder / "v.pt"),
    }
    fingerprint.save_weights(model, files[".weights.h5"])
    model.save(files[".keras"])
    write_legacy(files[".th"], resnet20_state)
    write_zip(files[".pt"], resnet20_state)
    return files


SUFFIXES = [".npz", ".safetensors", ".weights.h5", ".keras", ".th", ".pt"]


def _broken(kind, suffix, source, folder):
    path = folder / f"{kind}{suffix}"
    content = open(source, "rb").read()
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(content[: len(content) // 2])
    elif kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "folder":
        path.mkdir()
    elif kind == "devnull":
        os.symlink("/dev/null", path)
    elif kind == "empty_zip":
        zipfile.ZipFile(path, "w").close()
    elif kind == "zip_without_parts":
        # Keep the parts that say what the file is (pickle, config, architecture record), drop every
        # other data part: a copy interrupted half-way, or assembled by hand.
        kept = ("data.pkl", "config.json", checkpoints.ARCHITECTURE_KEY)
        with zipfile.ZipFile(source) as original, zipfile.ZipFile(path, "w") as copy:
            parts = [name for name in original.namelist() if not any(part in name for part in kept)]
            dropped = set(parts[1::2] + parts[-1:])
            for name in original.namelist():
                if name not in dropped:
                    copy.writestr(name, original.read(name))
    elif kind == "wrong_type":  # Another format under this name (a JSON text).
        path.write_text(json.dumps({"state_dict": {}}))
    return path


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("kind", ["empty", "truncated", "random", "folder", "devnull", "empty_zip",
                                  "zip_without_parts", "wrong_type"])
def test_unreadable_files_give_one_error_naming_the_file(tmp_path, valid_files, suffix, kind):
    if kind == "zip_without_parts" and not zipfile.is_zipfile(valid_files[suffix]):
        kind = "truncated"  # Only zip-based formats have parts to leave out.
    path = _broken(kind, suffix, valid_files[suffix], tmp_path)
    model = keras_resnets.ResNet20()
    with pytest.raises(WeightsFileError, match=f"{path.name}.*expected"):
        load_weights(model, str(path))


def test_dev_null_itself_is_a_weights_file_error():
    with pytest.raises(WeightsFileError, match="/dev/null"):
        keras_resnets.ResNet20(weights="/dev/null")


def test_the_valid_files_load(valid_files):
    """The broken files above are broken copies of files that do load."""
    for suffix in SUFFIXES:
        keras_resnets.ResNet20(weights=valid_files[suffix])


def test_keras_files_load_in_safe_mode(tmp_path):
    import keras

    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Lambda(lambda x: x * 2)(keras_resnets.ResNet20(include_top=False)(inputs))
    path = str(tmp_path / "lambda.keras")
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(WeightsFileError, match=r"lambda\.keras.*(safe_mode|Lambda)"):
        keras_resnets.ResNet20(weights=path)


# ------------------------------------------------------------------------------------------------
# The converted cache and hf:// repositories


def _weights_bytes(model, folder, name):
    path = str(folder / name)
    fingerprint.save_weights(model, path)
    return open(path, "rb").read()


def test_an_altered_or_swapped_cache_entry_is_never_used(hub, monkeypatch, tmp_path):
    import dataclasses

    from keras_resnets.weights import cache_root, catalog
    from helpers.fake_hub import serve_weights

    source = keras_resnets.ResNet20(classifier_activation=None)
    template = dataclasses.replace(catalog.CATALOG.get("resnet20.cifar10"), repo_id="someone/resnet20.cifar10")
    record = serve_weights(hub, template, _weights_bytes(source, tmp_path, "source.weights.h5"))
    monkeypatch.setitem(catalog.CATALOG._records, record.name, record)
    np.testing.assert_array_equal(_conv1(keras_resnets.ResNet20(weights="cifar10")), _conv1(source))
    cached = next((cache_root() / "converted").rglob("resnet20.cifar10.weights.h5"))

    other = keras_resnets.ResNet20()  # A valid file of the right architecture, with its own content hash.
    for replacement in (_weights_bytes(other, tmp_path, "other.weights.h5"), b"garbage", b""):
        cached.write_bytes(replacement)
        loaded = keras_resnets.ResNet20(weights="cifar10")
        np.testing.assert_array_equal(_conv1(loaded), _conv1(source))  # Re-created from the verified download.
        assert cached.read_bytes() != replacement


def test_hub_repo_whose_weights_disagree_with_its_config_is_refused(hub, tmp_path):
    model = keras_resnets.ResNet20(classes=7)
    reference = keras_resnets.push_to_hub(model, "someone/inconsistent", token="hf_fake")
    config = json.loads(hub.repos["someone/inconsistent"]["commits"][reference.split("@")[1]]["config.json"])

    as_plain = dict(config, model="plain20", architecture=dict(config["architecture"], residual=False, shortcut=None))
    hub.commit("someone/inconsistent", {"config.json": json.dumps(as_plain).encode()})
    with pytest.raises(WeightsMismatchError, match="made for resnet20 and do not fit this plain20.*inconsistent"):
        keras_resnets.PlainNet20(classes=7, weights="hf://someone/inconsistent")

    hub.commit("someone/inconsistent", {"config.json": json.dumps(dict(config, classes=10)).encode()})
    with pytest.raises(WeightsMismatchError, match="7-class classifier but config.json says classes=10"):
        keras_resnets.ResNet20(weights="hf://someone/inconsistent")

    no_record = str(tmp_path / "bare.weights.h5")
    model.save_weights(no_record)
    content = open(no_record, "rb").read()
    import hashlib

    hub.commit("someone/inconsistent", {"model.weights.h5": content, "config.json": json.dumps(
        dict(config, weights_sha256=hashlib.sha256(content).hexdigest())).encode()})
    with pytest.raises(WeightsMismatchError, match="records no architecture"):
        keras_resnets.ResNet20(classes=7, weights="hf://someone/inconsistent")

    hub.commit("someone/inconsistent", {"config.json": b"{not json"})
    with pytest.raises(WeightsFileError, match="config.json"):
        keras_resnets.ResNet20(classes=7, weights="hf://someone/inconsistent")
