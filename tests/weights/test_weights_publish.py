"""Publishing: the Hub folder (weights, config.json, model card), push_to_hub and weights/publish.py."""

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

import keras_resnets
from keras_resnets.architecture.identity import Architecture
from keras_resnets.weights import publishing
from conftest import REPO_ROOT
from helpers.fake_hub import subprocess_environment

PUBLISH_SCRIPT = REPO_ROOT / "weights" / "publish.py"


def _same_weights(a, b, skip_head=False):
    for layer in a.layers:
        if layer.weights and not (skip_head and layer.name == "fc"):
            for x, y in zip(layer.get_weights(), b.get_layer(layer.name).get_weights()):
                np.testing.assert_array_equal(x, y)


def test_push_to_hub_round_trip(hub):
    model = keras_resnets.ResNet20(classes=7)
    reference = keras_resnets.push_to_hub(model, "someone/my-resnet20", token="hf_fake", metrics={
        "top1": 55.5, "top5": None, "dataset": "my data", "source": "my evaluation"})
    assert reference.startswith("hf://someone/my-resnet20@") and len(reference.split("@")[1]) == 40
    posted = [path for method, path in hub.requests if method == "POST"]
    assert "/api/repos/create" in posted
    assert any("/preupload/main" in p for p in posted) and any("/commit/main" in p for p in posted)

    loaded = keras_resnets.ResNet20(classes=7, weights=reference)
    _same_weights(model, loaded)
    requests_before = len(hub.requests)
    keras_resnets.ResNet20(classes=7, weights=reference)  # Pinned and cached: no request at all.
    assert len(hub.requests) == requests_before
    _same_weights(model, keras_resnets.ResNet20(classes=7, weights="hf://someone/my-resnet20"))
    backbone = keras_resnets.ResNet20(weights="hf://someone/my-resnet20", include_top=False)
    _same_weights(model, backbone, skip_head=True)

    files = hub.repos["someone/my-resnet20"]["commits"][reference.split("@")[1]]
    config = json.loads(files["config.json"])
    assert config["architecture"] == {"family": "cifar", "depth": 20, "block": "basic", "residual": True,
                                      "shortcut": "A", "downsample": None}
    assert config["classes"] == 7
    assert b"model-index" in files["README.md"] and b"value: 55.5" in files["README.md"]

    with pytest.raises(ValueError, match="made for resnet20 and do not fit this resnet32 .depth: weights 20 vs model 32"):
        keras_resnets.ResNet32(weights=reference)
    with pytest.raises(keras_resnets.weights.WeightsNotAvailableError, match="not found on the Hub"):
        keras_resnets.ResNet20(weights="hf://someone/missing-repo")
    with pytest.raises(ValueError, match="hf://owner/repo"):
        keras_resnets.ResNet20(weights="hf://no-owner")


def test_architecture_is_recovered_from_layer_names():
    cases = [
        (keras_resnets.ResNet50(include_top=False, input_shape=(64, 64, 3)), ("imagenet", 50, True, "B", "conv3x3")),
        (keras_resnets.ResNet50(include_top=False, input_shape=(64, 64, 3), downsample="conv1x1"),
         ("imagenet", 50, True, "B", "conv1x1")),
        (keras_resnets.ResNet18(include_top=False, input_shape=(64, 64, 3), shortcut="C"),
         ("imagenet", 18, True, "C", None)),
        (keras_resnets.PlainNet20(), ("cifar", 20, False, None, None)),
        (keras_resnets.ResNet32(shortcut="B"), ("cifar", 32, True, "B", None)),
    ]
    for model, expected in cases:
        arch = Architecture.from_model(model)
        assert (arch.spec.family, arch.spec.depth, arch.residual, arch.shortcut, arch.downsample) == expected


def _load_publish_script():
    spec = importlib.util.spec_from_file_location("publish_script", PUBLISH_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_publish_refuses_weights_whose_outputs_differ_from_the_source(shared, tmp_path):
    publish = _load_publish_script()
    out = tmp_path / "out"
    status = publish.main([
        "--model", "resnet20", "--tag", "cifar10", "--source", str(shared("weights/akamaster/resnet20.npz")),
        "--check-images", str(shared("data/cifar10-test-first100.npz")),
        "--check-logits", str(shared("weights/akamaster/resnet32_logits_first100.npy")),  # the wrong source
        "--out", str(out), "--dry-run",
    ])
    assert status == 1 and not out.exists()


@pytest.mark.slow
def test_publish_script_converts_checks_writes_and_uploads(shared, hub, tmp_path):
    out = tmp_path / "resnet20.cifar10"
    result = subprocess.run(
        [sys.executable, str(PUBLISH_SCRIPT), "--model", "resnet20", "--tag", "cifar10",
         "--source", str(shared("weights/akamaster/resnet20.npz")),
         "--check-images", str(shared("data/cifar10-test-first100.npz")),
         "--check-logits", str(shared("weights/akamaster/resnet20_logits_first100.npy")),
         "--out", str(out), "--repo-id", "keras-resnets/resnet20.cifar10", "--token", "hf_fake"],
        env=subprocess_environment(hub, tmp_path), capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "reload check passed" in result.stdout
    reference = result.stdout.strip().splitlines()[-1].split("weights=")[1].strip("'")
    card = (out / "README.md").read_text()
    assert "license: bsd-2-clause" in card and "value: 91.73" in card and "type: \"cifar10\"" in card
    assert "Intended use" in card and "d5489e89" in card
    config = json.loads((out / "config.json").read_text())
    assert config["source_check"]["max_abs_diff"] < 1e-3

    # The uploaded weights reproduce the PyTorch logits when loaded back from the Hub.
    with np.load(shared("data/cifar10-test-first100.npz")) as data:
        images = data["x"]
    model = keras_resnets.ResNet20(weights=reference, classifier_activation=None)
    logits = model.predict(keras_resnets.preprocess_input(images, "cifar10"), verbose=0)
    expected = np.load(shared("weights/akamaster/resnet20_logits_first100.npy"))
    assert np.abs(logits - expected).max() < 1e-3


def test_fill_pins_reads_revision_and_sha256_from_the_hub(hub, capsys):
    import hashlib

    spec = importlib.util.spec_from_file_location("fill_pins", REPO_ROOT / "weights" / "fill_pins.py")
    fill_pins = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fill_pins)
    content = b"stand-in for model.safetensors"
    commit = hub.commit("timm/resnet34.tv_in1k", {"model.safetensors": content})
    hub.commit("timm/resnet50.tv_in1k", {"model.safetensors": b"not the pinned file"},
               commit="aa6c2d36d56bc0209040c02b5a7b7d7bf11d57b8")
    status = fill_pins.main(["--check", "--only", "resnet34.tv_in1k", "resnet50.tv_in1k"])
    out = capsys.readouterr()
    assert f'"resnet34.tv_in1k": ("{commit}", "{hashlib.sha256(content).hexdigest()}")' in out.out
    assert status == 1 and "MISMATCH resnet50.tv_in1k" in out.err  # A changed pinned file is reported.
