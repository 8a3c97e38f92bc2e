"""The weights registry: records, tags, aliases and the errors for bad requests (no network)."""

import dataclasses

import pytest

import keras_resnets
from keras_resnets.weights import DEFAULT_TAGS, WeightsNotAvailableError, WeightsRecord
from keras_resnets.weights.catalog import WeightsCatalog

KNOWN_PINS = {
    "resnet50.tv_in1k": ("aa6c2d36d56bc0209040c02b5a7b7d7bf11d57b8",
                         "5d061a3c593d795bfe682d9b152bafbcf550579873492def3515b46db1189888"),
    "resnet18.tv_in1k": ("a987fd6b60f845221bfff84b6f0191273ba56ead",
                         "694f673df6520a3158624e8a89af086f59923ee4cd7436fe5bc3bc71d295ad81"),
    "resnet50.a1_in1k": ("93271f4677dbf7b4d7f7e7d9d7811bd66c327e56",
                         "773525d5821de224f8f30c33377b7a795d7863e08522698200d3217d3f2a41bb"),
}


def test_every_imagenet_depth_has_the_issue_weight_sets():
    names = {record.name for record in keras_resnets.list_weights()}
    for depth in (18, 34, 50, 101, 152):
        assert f"resnet{depth}.tv_in1k" in names
        assert f"resnet{depth}.a1_in1k" in names
    for depth in (50, 101, 152):
        assert {f"resnet{depth}.tv2_in1k", f"resnet{depth}.a1h_in1k"} <= names
    for depth in (20, 32, 44, 56):
        assert f"resnet{depth}.cifar10" in names
    assert {"resnet20.cifar10_jpeg", "plain20.cifar10_jpeg"} <= names


def test_records_carry_complete_metadata():
    for record in keras_resnets.list_weights():
        assert isinstance(record, WeightsRecord)
        with pytest.raises(dataclasses.FrozenInstanceError):
            record.tag = "x"
        assert keras_resnets.model_entry(record.model).spec.default_classes == record.classes
        assert record.license and record.provenance and record.metrics.source
        assert record.preprocessing.input_size in ((32, 32), (224, 224))
        if record.repo_id is not None and record.file_format == "timm-safetensors":
            assert record.repo_id == f"timm/{record.name}" and record.filename == "model.safetensors"
        elif record.repo_id is not None:  # The project's own weights (tests/weights/test_weights_trained.py).
            assert record.repo_id == f"keras-resnets/{record.name}" and record.filename == "model.weights.h5"
            assert record.file_format == "keras-weights-h5" and record.tag == "cifar10_jpeg"
        if not record.pinned:
            assert "weights.fill_pins" in record.pin_note or "Not published" in record.pin_note


def test_known_pins_and_torchvision_accuracies():
    for name, (revision, sha256) in KNOWN_PINS.items():
        record = keras_resnets.get_weights_record(name)
        assert (record.revision, record.sha256) == (revision, sha256)
    top1 = {d: keras_resnets.get_weights_record(f"resnet{d}.tv_in1k").metrics.top1 for d in (18, 34, 50, 101, 152)}
    assert [round(v, 2) for v in top1.values()] == [69.76, 73.31, 76.13, 77.37, 78.31]
    top1_v2 = [round(keras_resnets.get_weights_record(f"resnet{d}.tv2_in1k").metrics.top1, 2) for d in (50, 101, 152)]
    assert top1_v2 == [80.86, 81.89, 82.28]
    assert keras_resnets.get_weights_record("resnet50.tv_in1k").license == "BSD-3-Clause"
    assert keras_resnets.get_weights_record("resnet50.a1h_in1k").license == "Apache-2.0"


def test_cifar_records_name_their_akamaster_source():
    record = keras_resnets.get_weights_record("resnet56.cifar10")
    assert record.license == "BSD-2-Clause" and "d5489e89" in record.provenance
    assert "4bfd97631478d6b638d2764fd2baff3edb1d7d82252d54439343b6596b9b5367" in record.provenance
    assert not record.published and "weights.publish" in record.pin_note


def test_aliases_and_tags_resolve_per_model():
    catalog = keras_resnets.weights.catalog.CATALOG
    for depth in (18, 34, 50, 101, 152):
        assert catalog.resolve(f"resnet{depth}", "imagenet").name == f"resnet{depth}.tv_in1k"
    assert catalog.resolve("resnet101", "tv2_in1k").name == "resnet101.tv2_in1k"
    assert catalog.resolve("resnet152", "resnet152.a1h_in1k").tag == "a1h_in1k"
    assert catalog.resolve("resnet20", "cifar10").name == "resnet20.cifar10"
    assert DEFAULT_TAGS["imagenet"]["resnet50"] == "tv_in1k"
    assert [r.tag for r in keras_resnets.list_weights("resnet18")] == ["tv_in1k", "a1_in1k"]


def test_unknown_tag_lists_the_available_ones():
    with pytest.raises(ValueError) as error:
        keras_resnets.ResNet18(weights="tv2_in1k")
    message = str(error.value)
    assert "['a1_in1k', 'tv_in1k']" in message and "Received: weights='tv2_in1k'" in message
    with pytest.raises(ValueError, match="no pretrained weights are registered for plain34"):
        keras_resnets.PlainNet34(weights="imagenet")


def test_weights_for_another_architecture_are_refused_before_any_download():
    with pytest.raises(ValueError, match="are for resnet50, not for resnet18"):
        keras_resnets.ResNet18(weights="resnet50.tv_in1k")
    with pytest.raises(ValueError, match="downsample='conv3x3'"):
        keras_resnets.ResNet50(weights="imagenet", downsample="conv1x1")
    with pytest.raises(ValueError, match="shortcut='B'"):
        keras_resnets.ResNet34(weights="imagenet", shortcut="C")
    with pytest.raises(ValueError, match="family="):
        keras_resnets.ResNet(50, family="cifar", weights="resnet50.tv_in1k")


def test_unpublished_cifar_tag_explains_how_to_get_the_weights():
    with pytest.raises(WeightsNotAvailableError, match="resnet20.npz"):
        keras_resnets.ResNet20(weights="cifar10")


def test_catalog_refuses_duplicates():
    catalog = WeightsCatalog()
    record = keras_resnets.get_weights_record("resnet18.tv_in1k")
    catalog.register(record)
    with pytest.raises(ValueError, match="already registered"):
        catalog.register(record)


def test_record_validation():
    record = keras_resnets.get_weights_record("resnet18.tv_in1k")
    with pytest.raises(ValueError, match="40-hex"):
        dataclasses.replace(record, revision="main")
    with pytest.raises(ValueError, match="pin_note"):
        dataclasses.replace(record, sha256=None, pin_note="")
    with pytest.raises(ValueError, match="file_format"):
        dataclasses.replace(record, file_format="pickle")
