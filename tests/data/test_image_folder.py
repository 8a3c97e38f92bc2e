"""Image-folder scanning, splitting and loading, on made-up folders and the real CIFAR-10 JPEG tree."""

import numpy as np
import pytest
from PIL import Image

from keras_resnets.data import image_folder


def _write_image(path, value, size=(6, 5), fmt="PNG"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(path, format=fmt)


@pytest.fixture
def tiny_folder(tmp_path):
    for i in range(3):
        _write_image(tmp_path / "cats" / f"{i}.png", 10 + i)
        _write_image(tmp_path / "dogs" / f"{i}.jpg", 200, fmt="JPEG")
    (tmp_path / "dogs" / "notes.txt").write_text("not an image")
    (tmp_path / "cats" / "fake.jpg").write_text("also not an image, whatever its name says")
    return tmp_path


def test_scan_sorts_classes_and_skips_non_images_with_warning(tiny_folder):
    with pytest.warns(UserWarning, match="Skipped 2 non-image"):
        folder = image_folder.scan_image_folder(tiny_folder)
    assert folder.class_names == ["cats", "dogs"]
    assert folder.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert sorted(p.rsplit("/", 1)[1] for p in folder.skipped) == ["fake.jpg", "notes.txt"]


def test_class_names_fix_label_order(tiny_folder):
    with pytest.warns(UserWarning):
        folder = image_folder.scan_image_folder(tiny_folder, class_names=["dogs", "cats"])
    assert folder.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert folder.paths[0].endswith("dogs/0.jpg")


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: p / "missing", "existing folder"),
        (lambda p: p, "no class sub-folders"),
        (lambda p: (p / "a").mkdir() or p, "no JPEG/PNG/GIF/BMP images"),
    ],
)
def test_scan_bad_folders(tmp_path, make, match):
    with pytest.raises(ValueError, match=match):
        image_folder.scan_image_folder(make(tmp_path))


def test_one_class_folder_rejected_when_two_needed(tmp_path):
    _write_image(tmp_path / "only" / "0.png", 1)
    assert len(image_folder.scan_image_folder(tmp_path)) == 1
    with pytest.raises(ValueError, match="at least 2 classes; found 1"):
        image_folder.scan_image_folder(tmp_path, min_classes=2)


def test_split_is_stratified_and_reproducible(tiny_folder):
    with pytest.warns(UserWarning):
        folder = image_folder.scan_image_folder(tiny_folder)
    train, validation = image_folder.split_train_validation(folder, 0.34, seed=1)
    assert sorted(validation.labels.tolist()) == [0, 1]
    assert len(train) == 4 and not set(train.paths) & set(validation.paths)
    again = image_folder.split_train_validation(folder, 0.34, seed=1)[1]
    assert again.paths == validation.paths
    with pytest.raises(ValueError, match="validation_fraction"):
        image_folder.split_train_validation(folder, 1.0)


def test_tf_dataset_and_numpy_loading_agree(tiny_folder):
    with pytest.warns(UserWarning):
        folder = image_folder.scan_image_folder(tiny_folder)
    dataset = image_folder.image_dataset(folder.paths, folder.labels)
    images, labels = zip(*[(x.numpy(), int(y)) for x, y in dataset])
    arrays = image_folder.load_image_arrays(folder.paths)
    assert arrays.shape == (6, 6, 5, 3) and arrays.dtype == np.uint8
    np.testing.assert_array_equal(np.stack(images), arrays)
    assert list(labels) == folder.labels.tolist()
    assert image_folder.load_image_arrays(folder.paths[:1], size=(3, 4)).shape == (1, 3, 4, 3)


def test_unreadable_image_named_in_error(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage")
    with pytest.raises(ValueError, match="bad.png"):
        image_folder.load_image_arrays([str(bad)])


def test_real_cifar10_jpeg_tree(cifar10_jpeg_root):
    folder = image_folder.scan_image_folder(cifar10_jpeg_root / "test")
    assert folder.class_names == [
        "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
    ]
    assert len(folder) == 10_000 and np.bincount(folder.labels).tolist() == [1000] * 10
    arrays = image_folder.load_image_arrays(folder.paths[:4])
    assert arrays.shape == (4, 32, 32, 3)
