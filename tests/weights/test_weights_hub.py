"""Pretrained weights from a (fake, but real-HTTP) Hugging Face Hub: download, verify, convert, cache."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from safetensors.numpy import save

import keras_resnets
from keras_resnets.weights import WeightsIntegrityError, WeightsNotAvailableError, catalog, torch_layout
from helpers.fake_hub import serve_weights, subprocess_environment
from helpers.torch_reference import timm_resnet_state_dict


@pytest.fixture(scope="module")
def resnet18_state():
    return timm_resnet_state_dict(18, seed=3)


@pytest.fixture(scope="module")
def resnet18_bytes(resnet18_state):
    return save(resnet18_state)


@pytest.fixture
def conversions(monkeypatch):
    """Counts calls of the torch -> Keras conversion."""
    calls = []
    original = torch_layout.keras_values_from_state_dict

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(torch_layout, "keras_values_from_state_dict", counting)
    return calls


def _publish_resnet18(hub, monkeypatch, content, pinned=True):
    record = serve_weights(hub, catalog.CATALOG.get("resnet18.tv_in1k"), content, pinned=pinned)
    monkeypatch.setitem(catalog.CATALOG._records, record.name, record)
    return record


def _assert_holds(model, state, with_head=True):
    np.testing.assert_array_equal(model.get_layer("conv1").kernel.numpy(), state["conv1.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(model.get_layer("layer4.1.bn2").moving_variance.numpy(), state["layer4.1.bn2.running_var"])
    if with_head:
        np.testing.assert_array_equal(model.get_layer("fc").kernel.numpy(), state["fc.weight"].T)


def test_first_load_downloads_and_converts_second_load_makes_no_requests(
    hub, monkeypatch, resnet18_state, resnet18_bytes, conversions
):
    record = _publish_resnet18(hub, monkeypatch, resnet18_bytes)
    first = keras_resnets.ResNet18(weights="imagenet")
    assert (hub.count("HEAD"), hub.count("GET")) == (1, 1)  # Metadata, then the file.
    assert len(conversions) == 1
    _assert_holds(first, resnet18_state)
    meta = json.loads((keras_resnets.weights.cache_root() / "converted" / "timm--resnet18.tv_in1k" / record.revision
                       / "resnet18.tv_in1k.json").read_text())
    assert meta["source_sha256"] == record.sha256

    requests_before = len(hub.requests)
    second = keras_resnets.ResNet18(weights="tv_in1k")
    assert len(hub.requests) == requests_before, hub.requests[requests_before:]
    assert len(conversions) == 1  # Served from the converted cache: no conversion.
    _assert_holds(second, resnet18_state)


def test_backbone_only_and_fresh_head_from_cached_weights(hub, monkeypatch, resnet18_state, resnet18_bytes):
    _publish_resnet18(hub, monkeypatch, resnet18_bytes)
    backbone = keras_resnets.ResNet18(weights="imagenet", include_top=False, input_shape=(96, 128, 3), pooling="avg")
    _assert_holds(backbone, resnet18_state, with_head=False)
    assert backbone.output_shape == (None, 512)
    with pytest.warns(UserWarning, match="classes=7"):
        fine_tune = keras_resnets.ResNet18(weights="imagenet", classes=7)
    _assert_holds(fine_tune, resnet18_state, with_head=False)
    assert fine_tune.get_layer("fc").kernel.shape == (512, 7)


def test_offline_loads_from_cache_and_explains_an_empty_cache(
    hub, monkeypatch, tmp_path, resnet18_state, resnet18_bytes, conversions
):
    from huggingface_hub import constants

    record = _publish_resnet18(hub, monkeypatch, resnet18_bytes)
    keras_resnets.download_weights("resnet18.tv_in1k")
    requests_before = len(hub.requests)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    _assert_holds(keras_resnets.ResNet18(weights="imagenet"), resnet18_state)

    # Converted cache gone, Hub cache still there: converts again from the Hub cache, still no request.
    monkeypatch.setenv("KERAS_RESNETS_CACHE", str(tmp_path / "fresh-converted-cache"))
    _assert_holds(keras_resnets.ResNet18(weights="imagenet"), resnet18_state)
    assert len(hub.requests) == requests_before
    assert len(conversions) == 2

    # Nothing cached at all: a clear error saying what to download and how.
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    monkeypatch.setenv("KERAS_RESNETS_CACHE", str(tmp_path / "empty-converted-cache"))
    with pytest.raises(WeightsNotAvailableError) as error:
        keras_resnets.ResNet18(weights="imagenet")
    message = str(error.value)
    for expected in ("HF_HUB_OFFLINE=1", record.repo_id, "model.safetensors", record.revision, "download_weights("):
        assert expected in message


def test_unpinned_record_is_verified_against_the_hub_etag(hub, monkeypatch):
    record = catalog.CATALOG.get("resnet34.tv_in1k")
    assert record.revision is None and record.sha256 is None  # A real unpinned registry record.
    state = timm_resnet_state_dict(34, seed=5)
    hub.commit(record.repo_id, {record.filename: save(state)})
    model = keras_resnets.ResNet34(weights="imagenet", include_top=False, input_shape=(64, 64, 3))
    np.testing.assert_array_equal(model.get_layer("layer3.5.conv2").kernel.numpy(),
                                  state["layer3.5.conv2.weight"].transpose(2, 3, 1, 0))


def test_tampered_bytes_are_rejected_never_loaded_and_recoverable(hub, monkeypatch, resnet18_bytes, resnet18_state):
    record = _publish_resnet18(hub, monkeypatch, resnet18_bytes)
    tampered = bytearray(resnet18_bytes)
    tampered[-100] ^= 0xFF
    hub.tamper(record.repo_id, record.filename, bytes(tampered))
    with pytest.raises(WeightsIntegrityError) as error:
        keras_resnets.ResNet18(weights="imagenet")
    message = str(error.value)
    assert "sha256 mismatch" in message and "NOT loaded" in message and "force_download=True" in message
    assert record.sha256 in message
    assert not (keras_resnets.weights.cache_root() / "converted").exists() or not any(
        (keras_resnets.weights.cache_root() / "converted").rglob("*.weights.h5"))

    # The same bytes under an unpinned record are caught by the ETag check too.
    monkeypatch.setitem(catalog.CATALOG._records, record.name, serve_weights(hub, record, resnet18_bytes, pinned=False))
    hub.tamper(record.repo_id, record.filename, bytes(tampered))
    with pytest.raises(WeightsIntegrityError, match="reported by the Hub"):
        keras_resnets.ResNet18(weights="imagenet", include_top=False)

    # The advice in the message works once the Hub serves the right bytes again.
    monkeypatch.setitem(catalog.CATALOG._records, record.name, record)
    hub.tampered.clear()
    keras_resnets.download_weights("resnet18.tv_in1k", force_download=True)
    _assert_holds(keras_resnets.ResNet18(weights="imagenet"), resnet18_state)


def test_truncated_download_is_rejected(hub, monkeypatch, resnet18_bytes):
    record = _publish_resnet18(hub, monkeypatch, resnet18_bytes)
    hub.truncate(record.repo_id, record.filename, keep_bytes=len(resnet18_bytes) // 2)
    with pytest.raises(WeightsIntegrityError, match="incomplete"):
        keras_resnets.ResNet18(weights="imagenet")


@pytest.mark.parametrize("missing", ["file", "repo"])
def test_hub_404_gives_a_clear_error(hub, monkeypatch, resnet18_bytes, missing):
    import dataclasses

    record = _publish_resnet18(hub, monkeypatch, resnet18_bytes)
    broken = (dataclasses.replace(record, filename="missing.safetensors") if missing == "file"
              else dataclasses.replace(record, repo_id="timm/no-such-repo"))
    monkeypatch.setitem(catalog.CATALOG._records, record.name, broken)
    with pytest.raises(WeightsNotAvailableError, match="was not found on the Hub") as error:
        keras_resnets.ResNet18(weights="imagenet")
    assert f"{broken.repo_id}/blob/{broken.revision}/{broken.filename}" in str(error.value)


_CHILD = textwrap.dedent("""
    import dataclasses, sys, numpy as np
    import keras_resnets
    from keras_resnets.weights import catalog
    record = dataclasses.replace(catalog.CATALOG.get("resnet18.tv_in1k"), revision=sys.argv[1], sha256=sys.argv[2])
    catalog.CATALOG._records[record.name] = record
    model = keras_resnets.ResNet18(weights="imagenet", include_top=False, input_shape=(32, 32, 3))
    print("CHECKSUM", float(sum(np.abs(w).sum() for w in model.get_weights())))
""")


@pytest.mark.slow
def test_two_processes_loading_the_same_weights_at_once(hub, monkeypatch, tmp_path, resnet18_bytes, resnet18_state):
    record = _publish_resnet18(hub, monkeypatch, resnet18_bytes)
    env = subprocess_environment(hub, tmp_path)
    children = [
        subprocess.Popen([sys.executable, "-c", _CHILD, record.revision, record.sha256], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [child.communicate(timeout=300) for child in children]
    for child, (out, err) in zip(children, results):
        assert child.returncode == 0, err[-3000:]
    checksums = {line for out, _ in results for line in out.splitlines() if line.startswith("CHECKSUM")}
    assert len(checksums) == 1
    file_downloads = [r for r in hub.requests if r[0] == "GET" and r[1].endswith(record.filename)]
    assert len(file_downloads) == 1  # The lock made the second process reuse the first one's work.
    requests_before = len(hub.requests)
    _assert_holds(keras_resnets.ResNet18(weights="imagenet"), resnet18_state)  # The shared entry is intact.
    assert len(hub.requests) == requests_before
