"""keras-resnets validate: exact agreement with the reference CIFAR evaluation, label-map checks, JSON."""

import json
import os

import numpy as np
import pytest

import keras_resnets
from keras_resnets import cli
from keras_resnets.data import image_folder
from keras_resnets.data.preprocessing import CIFAR10_CLASSES
from keras_resnets.tasks.validate import class_name_mismatch, validate


@pytest.fixture(scope="module")
def cifar_subset(cifar10_jpeg_root, tmp_path_factory):
    """The first 30 test images of each CIFAR-10 class (300), as links in a fresh class-folder tree."""
    root = tmp_path_factory.mktemp("cifar_subset")
    for name in CIFAR10_CLASSES:
        (root / name).mkdir()
        source = cifar10_jpeg_root / "test" / name
        for file_name in sorted(os.listdir(source))[:30]:
            os.symlink(source / file_name, root / name / file_name)
    return root


def test_matches_the_reference_recipe_on_300_images(shared, cifar_subset, tmp_path):
    weights = str(shared("weights/akamaster/resnet20.npz"))
    output = tmp_path / "out" / "result.json"
    result = validate("resnet20", cifar_subset, weights=weights, batch_size=128, progress=False, output_json=output)
    # The recipe of weights/evaluate_cifar.py before it used validate(): PIL arrays, preprocess_input, argmax.
    folder = image_folder.scan_image_folder(cifar_subset, class_names=CIFAR10_CLASSES)
    images = keras_resnets.preprocess_input(image_folder.load_image_arrays(folder.paths), "cifar10")
    predictions = keras_resnets.ResNet20(weights=weights).predict(images, batch_size=500, verbose=0).argmax(axis=1)
    assert result.count == 300
    assert result.top1 == round(100.0 * float((predictions == folder.labels).mean()), 4)
    assert 70.0 < result.top1 < result.top5 <= 100.0
    assert result.class_name_mismatch is None and result.weights_class_names == "cifar-10"
    assert [c["count"] for c in result.per_class.values()] == [30] * 10
    saved = json.loads(output.read_text())
    assert saved["top1"] == result.top1 and set(saved["per_class"]) == set(CIFAR10_CLASSES)


def test_shuffled_labels_file_gives_wrong_accuracy_and_a_warning(shared, cifar_subset, tmp_path, capsys):
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(CIFAR10_CLASSES[1:] + CIFAR10_CLASSES[:1]) + "\n")
    output = tmp_path / "result.json"
    code = cli.main(["validate", str(cifar_subset), "--model", "resnet20", "--labels-file", str(labels), "--quiet",
                     "--weights", str(shared("weights/akamaster/resnet20.npz")), "--output-json", str(output)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "WARNING: class names of the folder and the weights (cifar-10) disagree at 10 of 10 labels" in printed
    result = json.loads(output.read_text())
    assert result["top1"] < 30.0
    assert "disagree" in result["class_name_mismatch"]


def test_class_name_check():
    assert class_name_mismatch(list(CIFAR10_CLASSES), "cifar-10") is None
    assert "label 0: folder 'bird', weights 'airplane'" in class_name_mismatch(["bird", "cat"], "cifar-10")
    assert class_name_mismatch(["roses", "tulips"], "cifar-10") is None  # Custom names cannot be checked.
    assert class_name_mismatch(["cat", "bird"], None) is None
    assert "folder 'n01443537', weights 'n01440764'" in class_name_mismatch(["n01443537"], "imagenet-1k")


def test_bad_input_names_the_file_or_argument(cifar_subset, tmp_path):
    with pytest.raises(ValueError, match="labels file .*missing.txt"):
        validate("resnet20", cifar_subset, weights=None, labels_file=tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="batch_size=0"):
        validate("resnet20", cifar_subset, weights=None, batch_size=0)
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\nwolf\n")
    with pytest.raises(ValueError, match="wolf"):
        validate("resnet20", cifar_subset, weights=None, labels_file=labels)


@pytest.mark.slow
def test_full_jpeg_test_set_gives_the_reference_81_03(shared, cifar10_jpeg_root):
    result = validate("resnet20", cifar10_jpeg_root / "test", weights=str(shared("weights/akamaster/resnet20.npz")),
                      batch_size=500, progress=False)
    assert result.count == 10000
    assert f"{result.top1:.2f}" == "81.03"
