"""Image folders (one sub-folder per class) as file lists, tf.data pipelines or numpy arrays.

Scanning and numpy loading need no TensorFlow (PIL only), so JAX-only machines can use them;
:func:`decode_image` and :func:`image_dataset` import TensorFlow when called.

Images larger than a pixel limit are refused before they are decoded, from the size in their header
(a 20000x20000 PNG of zeros is a few MB on disk and 1.2 GB decoded): :func:`max_image_pixels` gives
the limit (argument, else ``$KERAS_RESNETS_MAX_IMAGE_PIXELS``, else 40 megapixels). In TensorFlow
graphs (:func:`decode_image`) the header is parsed with string ops and checked by an assertion that
runs before the decoder; in Python (:func:`check_image_file`) PIL's lazy ``Image.open`` reads it.
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
MAX_IMAGE_PIXELS_ENV = "KERAS_RESNETS_MAX_IMAGE_PIXELS"
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000


class ImageFileError(ValueError):
    """An image file is unreadable, corrupt or of a format that is not supported; the message names it."""


class ImageTooLargeError(ImageFileError):
    """An image has more pixels than the configured limit; it was refused before decoding."""


def max_image_pixels(value=None) -> int:
    """The pixel limit: `value` if given, else ``$KERAS_RESNETS_MAX_IMAGE_PIXELS``, else 40,000,000.

    Raises:
        ValueError: naming the argument or environment variable, if it is not an integer >= 1.
    """
    source, argument = value, "max_image_pixels"
    if value is None:
        source, argument = os.environ.get(MAX_IMAGE_PIXELS_ENV), MAX_IMAGE_PIXELS_ENV
        if source is None or not source.strip():
            return DEFAULT_MAX_IMAGE_PIXELS
        try:
            source = int(source.strip().replace("_", ""))
        except ValueError:
            pass
    if isinstance(source, bool) or not isinstance(source, (int, np.integer)) or source < 1:
        raise ValueError(f"`{argument}` must be an integer number of pixels >= 1. Received: {argument}={value if value is not None else os.environ.get(MAX_IMAGE_PIXELS_ENV)!r}")
    return int(source)


def _too_large_message(name: str, width, height, limit: int) -> str:
    return (
        f"Image {name} is {width}x{height} = {int(width) * int(height):,} pixels, more than the limit of "
        f"{limit:,}; it was refused before decoding. Raise the limit with max_image_pixels=... or "
        f"${MAX_IMAGE_PIXELS_ENV} if you trust the image."
    )


def check_image_file(source, name: Optional[str] = None, max_pixels: Optional[int] = None,
                     verify: bool = False) -> Tuple[int, int]:
    """Read an image's header (not its pixels) and check it; returns (height, width).

    Args:
        source: a path or the encoded bytes.
        name: how to name the image in errors (default: the path).
        max_pixels: the pixel limit (see :func:`max_image_pixels`).
        verify: also decode it once (JPEG at 1/8 scale) to find truncated or corrupt data.

    Raises:
        ImageTooLargeError: more pixels than the limit.
        ImageFileError: naming the image, if it is not a readable JPEG/PNG/GIF/BMP, or (with `verify`) its
            data is corrupt or TensorFlow cannot decode it.
    """
    import io
    import warnings as warnings_lib

    from PIL import Image

    limit = max_image_pixels(max_pixels)
    name = name or repr(os.fspath(source))
    handle = io.BytesIO(source) if isinstance(source, bytes) else os.fspath(source)
    try:
        with warnings_lib.catch_warnings():
            warnings_lib.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(handle) as image:
                width, height = image.size
                fmt, mode = image.format, image.mode
                if fmt not in ("JPEG", "PNG", "GIF", "BMP"):
                    raise ImageFileError(f"Image {name} is a {fmt} file; JPEG, PNG, GIF or BMP expected.")
                if width * height > limit:
                    raise ImageTooLargeError(_too_large_message(name, width, height, limit))
                if fmt == "BMP" and mode == "1":
                    raise ImageFileError(
                        f"Image {name} is a 1-bit BMP, which TensorFlow cannot decode; convert it to PNG or 24-bit BMP."
                    )
                if verify:
                    if fmt == "JPEG":
                        image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
                    image.load()
    except ImageFileError:
        raise
    except Image.DecompressionBombError as error:
        # PIL's own guard (2 * Image.MAX_IMAGE_PIXELS) fired while reading the header, before ours could.
        raise ImageTooLargeError(
            f"Image {name} was refused before decoding: it has more pixels than the limit of {limit:,} ({error})"
        ) from None
    except Exception as error:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError, struct.error...
        raise ImageFileError(
            f"Cannot decode image {name}: {str(error) or type(error).__name__}. A JPEG, PNG, GIF or BMP file expected."
        ) from None
    return height, width


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


def drop_unusable_images(folder: ImageFolder, max_pixels: Optional[int] = None) -> ImageFolder:
    """Check every image of `folder` once and leave out, with one warning naming each, those that would
    fail later: unreadable, corrupt or truncated data, formats TensorFlow cannot decode, or more pixels
    than `max_pixels` (see :func:`max_image_pixels`). Decoding is at 1/8 scale for JPEG, so this costs
    a fraction of an epoch; a training run then never stops on a bad file mid-epoch."""
    limit = max_image_pixels(max_pixels)
    keep, problems = [], []
    for index, path in enumerate(folder.paths):
        try:
            check_image_file(path, repr(path), limit, verify=True)
            keep.append(index)
        except ImageFileError as error:
            problems.append(str(error))
    if problems:
        preview = "\n  ".join(problems[:10]) + ("\n  ..." if len(problems) > 10 else "")
        warnings.warn(f"Skipped {len(problems)} unusable image(s) under {folder.root!r}:\n  {preview}", stacklevel=2)
        kept = set(keep)
        dropped = [path for index, path in enumerate(folder.paths) if index not in kept]
        return dataclasses.replace(folder.subset(keep), skipped=folder.skipped + dropped)
    return folder


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


def encoded_image_size(encoded):
    """``(height, width, is_supported)`` of JPEG/PNG/GIF/BMP bytes (a scalar string tensor), from the
    header only; other data gives ``is_supported=False``. Works eagerly and inside tf.function/tf.data."""
    import tensorflow as tf

    padded = tf.strings.join([encoded, tf.constant(b"\0" * 32)])  # Short data must not fail the slicing.

    def number(position, length, little_endian):
        digits = tf.cast(tf.io.decode_raw(tf.strings.substr(padded, position, length), tf.uint8), tf.int64)
        weights = tf.constant([256 ** i for i in (range(length) if little_endian else reversed(range(length)))],
                              tf.int64)
        return tf.reduce_sum(digits * weights)

    def starts_with(magic):
        return tf.equal(tf.strings.substr(padded, 0, len(magic)), magic)

    is_png, is_gif = starts_with(b"\x89PNG\r\n\x1a\n"), tf.logical_or(starts_with(b"GIF87a"), starts_with(b"GIF89a"))
    is_bmp, is_jpeg = starts_with(b"BM"), starts_with(b"\xff\xd8\xff")
    # BMP: a 12-byte OS/2 header has 16-bit sizes; later headers signed 32-bit ones (negative height = top-down).
    core_bmp = tf.equal(number(14, 4, True), 12)

    def signed32(value):
        return tf.abs(tf.where(value >= 2 ** 31, value - 2 ** 32, value))

    bmp_width = tf.where(core_bmp, number(18, 2, True), signed32(number(18, 4, True)))
    bmp_height = tf.where(core_bmp, number(20, 2, True), signed32(number(22, 4, True)))
    jpeg = tf.cond(is_jpeg, lambda: tf.cast(tf.image.extract_jpeg_shape(encoded)[:2], tf.int64),
                   lambda: tf.zeros([2], tf.int64))
    zero = tf.constant(0, tf.int64)
    height = tf.where(is_png, number(20, 4, False), tf.where(is_gif, number(8, 2, True), tf.where(
        is_bmp, bmp_height, tf.where(is_jpeg, jpeg[0], zero))))
    width = tf.where(is_png, number(16, 4, False), tf.where(is_gif, number(6, 2, True), tf.where(
        is_bmp, bmp_width, tf.where(is_jpeg, jpeg[1], zero))))
    supported = tf.reduce_any(tf.stack([is_png, is_gif, is_bmp, is_jpeg]))
    return height, width, supported


def decode_image(encoded, max_pixels: Optional[int] = None):
    """Decode JPEG/PNG/GIF/BMP bytes (a scalar string tensor) into a uint8 (H, W, 3) tensor.

    The header is checked first: other formats, and images with more than `max_pixels` pixels (see
    :func:`max_image_pixels`; read when the graph is built), fail with ``InvalidArgumentError``
    before any pixel is decoded.
    """
    import tensorflow as tf

    limit = max_image_pixels(max_pixels)
    height, width, supported = encoded_image_size(encoded)
    checks = [
        tf.debugging.assert_equal(supported, True, message="Not a JPEG, PNG, GIF or BMP image"),
        tf.debugging.assert_less_equal(
            height * width, tf.constant(limit, tf.int64),
            message=f"Image refused before decoding: height * width is more than {limit} pixels (the limit; "
                    f"raise it with max_image_pixels or ${MAX_IMAGE_PIXELS_ENV} if you trust the image)",
        ),
    ]
    with tf.control_dependencies(checks):
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
