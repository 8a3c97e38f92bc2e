"""Image folders (one sub-folder per class) as file lists, tf.data pipelines or numpy arrays.

Scanning and numpy loading need no TensorFlow (PIL only), so JAX-only machines can use them;
:func:`decode_image` and :func:`image_dataset` import TensorFlow when called.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import List, Optional, Sequence, Tuple

import numpy as np

# Leading bytes of the formats tf.io.decode_image and PIL both read.
_MAGIC_NUMBERS = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",  # PNG
    b"GIF87a",
    b"GIF89a",
    b"BM",  # BMP
)


@dataclasses.dataclass(frozen=True)
class ImageFolder:
    """The images of a class-per-sub-folder tree.

    Attributes:
        root: the folder that was scanned.
        paths: image file paths, grouped by class and sorted within each class.
        labels: int32 class index of each path.
        class_names: sorted sub-folder names; ``labels`` index into this list.
        skipped: files that are not images (by their leading bytes), left out with a warning.
    """

    root: str
    paths: List[str]
    labels: np.ndarray
    class_names: List[str]
    skipped: List[str]

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, indices: Sequence[int]) -> "ImageFolder":
        """A new ImageFolder with only the images at `indices` (same classes)."""
        indices = np.asarray(indices, dtype=np.int64)
        return dataclasses.replace(
            self, paths=[self.paths[i] for i in indices], labels=self.labels[indices], skipped=[]
        )


def is_image_file(path: str) -> bool:
    """Whether `path` starts like a JPEG, PNG, GIF or BMP file (its name is not trusted)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError:
        return False
    return any(head.startswith(magic) for magic in _MAGIC_NUMBERS)


def scan_image_folder(root, class_names: Optional[Sequence[str]] = None, min_classes: int = 1) -> ImageFolder:
    """List the images under `root`/<class>/ (sorted classes, sorted files).

    Args:
        root: folder with one sub-folder per class.
        class_names: use exactly these sub-folders, in this label order (e.g. to match a trained
            model's classes); default: every sub-folder, sorted.
        min_classes: raise if fewer classes hold images (fine-tuning needs 2).

    Raises:
        ValueError: missing folder, no class sub-folders, a requested class missing, no images at all,
            or fewer than `min_classes` classes with images.
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise ValueError(f"`root` must be an existing folder of class sub-folders. Received: root={root!r}")
    found = sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith("."))
    if class_names is None:
        class_names = found
    else:
        class_names = list(class_names)
        missing = [name for name in class_names if name not in found]
        if missing:
            raise ValueError(
                f"`class_names` lists folders that are not in {root!r}: {missing}. "
                f"Sub-folders present: {found}. Received: class_names={class_names!r}"
            )
    if not class_names:
        raise ValueError(
            f"`root` has no class sub-folders; expected root/<class_name>/<image files>. Received: root={root!r}"
        )

    paths, labels, skipped = [], [], []
    for label, name in enumerate(class_names):
        class_dir = os.path.join(root, name)
        for file_name in sorted(os.listdir(class_dir)):
            path = os.path.join(class_dir, file_name)
            if not os.path.isfile(path) or file_name.startswith("."):
                continue
            if is_image_file(path):
                paths.append(path)
                labels.append(label)
            else:
                skipped.append(path)
    if skipped:
        preview = ", ".join(skipped[:3]) + (" ..." if len(skipped) > 3 else "")
        warnings.warn(f"Skipped {len(skipped)} non-image file(s) under {root!r}: {preview}", stacklevel=2)
    if not paths:
        raise ValueError(f"`root` holds no JPEG/PNG/GIF/BMP images in its class sub-folders. Received: root={root!r}")
    labels = np.asarray(labels, dtype=np.int32)
    populated = int(np.unique(labels).size)
    if populated < min_classes:
        raise ValueError(
            f"`root` must hold images of at least {min_classes} classes; found {populated} "
            f"({[class_names[i] for i in np.unique(labels)]}). Received: root={root!r}"
        )
    return ImageFolder(root, paths, labels, list(class_names), skipped)


def split_train_validation(
    folder: ImageFolder, validation_fraction: float, seed: int = 0
) -> Tuple[ImageFolder, ImageFolder]:
    """Split `folder` into (train, validation), stratified by class, reproducibly for a given seed."""
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(
            f"`validation_fraction` must be in (0, 1). Received: validation_fraction={validation_fraction!r}"
        )
    rng = np.random.default_rng(seed)
    train_indices, validation_indices = [], []
    for label in np.unique(folder.labels):
        members = rng.permutation(np.flatnonzero(folder.labels == label))
        count = int(round(len(members) * validation_fraction))
        count = min(max(count, 1), len(members) - 1) if len(members) > 1 else 0
        validation_indices.extend(members[:count])
        train_indices.extend(members[count:])
    return folder.subset(sorted(train_indices)), folder.subset(sorted(validation_indices))


def decode_image(encoded):
    """Decode JPEG/PNG/GIF/BMP bytes (a scalar string tensor) into a uint8 (H, W, 3) tensor."""
    import tensorflow as tf

    image = tf.io.decode_image(encoded, channels=3, expand_animations=False, dtype=tf.uint8)
    image.set_shape([None, None, 3])
    return image


def image_dataset(paths: Sequence[str], labels=None, *, shuffle: bool = False, seed: Optional[int] = None,
                  num_parallel_calls=None):
    """A tf.data pipeline of ``(uint8 image, int32 label)`` (or images alone when `labels` is None).

    Files are read and decoded in parallel. Nothing is resized or batched: callers augment, resize and
    batch as their recipe says. With ``shuffle=True`` the file order is shuffled once per iteration,
    seeded by `seed`.
    """
    import tensorflow as tf

    if num_parallel_calls is None:
        num_parallel_calls = tf.data.AUTOTUNE
    paths = list(paths)
    if labels is None:
        dataset = tf.data.Dataset.from_tensor_slices(paths)
    else:
        labels = np.asarray(labels, dtype=np.int32)
        if len(labels) != len(paths):
            raise ValueError(
                f"`labels` must have one entry per path ({len(paths)}). Received: {len(labels)} labels"
            )
        dataset = tf.data.Dataset.from_tensor_slices((paths, labels))
    if shuffle:
        dataset = dataset.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)

    def load(path, *label):
        image = decode_image(tf.io.read_file(path))
        return (image, *label) if label else image

    return dataset.map(load, num_parallel_calls=num_parallel_calls, deterministic=True)


def load_image_arrays(paths: Sequence[str], size: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """Read images into one uint8 array (N, H, W, 3) with PIL; no TensorFlow needed.

    Args:
        paths: image files; without `size` they must all have the same height and width.
        size: (height, width) to resize every image to (bilinear).

    Raises:
        ValueError: an unreadable image (named), or differing sizes without `size`.
    """
    from PIL import Image

    arrays = []
    for path in paths:
        try:
            with Image.open(path) as image:
                image = image.convert("RGB")
                if size is not None:
                    image = image.resize((size[1], size[0]), Image.BILINEAR)
                arrays.append(np.asarray(image, dtype=np.uint8))
        except OSError as error:
            raise ValueError(f"Cannot read image {path!r}: {error}") from error
    if not arrays:
        return np.zeros((0, *(size or (0, 0)), 3), np.uint8)
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"Images differ in size ({sorted(shapes)[:3]} ...); pass `size=(height, width)`.")
    return np.stack(arrays)
