"""The data side of fine-tuning: image folders or tf.data.Dataset inputs as (image, label) pipelines."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from keras_resnets.data import image_folder


def _split_index_dataset(dataset, validation_fraction: float):
    """Interleaved deterministic split: element i goes to validation when floor((i+1)f) > floor(i f)."""
    indexed = dataset.enumerate()

    def is_validation(index, _):
        index = tf.cast(index, tf.float64)
        return tf.math.floor((index + 1.0) * validation_fraction) > tf.math.floor(index * validation_fraction)

    validation = indexed.filter(is_validation).map(lambda _, element: element)
    train = indexed.filter(lambda i, e: tf.logical_not(is_validation(i, e))).map(lambda _, element: element)
    return train, validation


def _standardize_dataset(dataset, argument: str):
    """Accept ``(image, label)`` datasets, batched or not, integer or one-hot labels; yield unbatched pairs."""
    spec = dataset.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 2):
        raise ValueError(
            f"`{argument}` must be a tf.data.Dataset of (image, label) pairs. Received: element_spec={spec!r}"
        )
    image_spec, label_spec = spec
    if image_spec.shape.rank == 4:
        dataset = dataset.unbatch()
        label_rank = label_spec.shape.rank - 1
    elif image_spec.shape.rank == 3:
        label_rank = label_spec.shape.rank
    else:
        raise ValueError(
            f"`{argument}` images must be (H, W, 3) or batched (N, H, W, 3). Received: element_spec={spec!r}"
        )
    if label_rank not in (0, 1):
        raise ValueError(f"`{argument}` labels must be class indices or one-hot vectors. Received: element_spec={spec!r}")

    def to_pair(image, label):
        if label_rank == 1:
            label = tf.argmax(label, axis=-1)
        return image, tf.cast(label, tf.int32)

    return dataset.map(to_pair, num_parallel_calls=tf.data.AUTOTUNE)


def _check_class_counts(folder, needs_validation: bool) -> None:
    """Every class folder must hold images, and two when one of them is held out for validation."""
    counts = np.bincount(folder.labels, minlength=len(folder.class_names))
    for name, count in zip(folder.class_names, counts):
        class_dir = os.path.join(folder.root, name)
        if count == 0:
            raise ValueError(
                f"Class folder {class_dir!r} holds no usable images; add images or remove the folder "
                f"(or pass class_names without it). Received: data={folder.root!r}"
            )
        if needs_validation and count < 2:
            raise ValueError(
                f"Class folder {class_dir!r} holds {count} usable image, but the validation split needs at least "
                f"2 per class (one to train on, one to hold out). Add images, pass validation_data, or pass "
                f"validation_fraction=0. Received: data={folder.root!r}"
            )


def resolve_training_data(data, validation_data, validation_fraction: float, class_names, seed: int,
                          max_image_pixels=None):
    """Turn fine-tuning inputs into decoded ``(uint8 image, int32 label)`` pipelines.

    `data` is a class-per-sub-folder image folder (stratified validation split) or a tf.data.Dataset
    (interleaved deterministic split); see :func:`keras_resnets.tasks.finetune.fine_tune` for the arguments.
    Images of folders are checked once first; unusable ones are skipped with a warning naming them.

    Returns:
        ``(train pairs, validation pairs or None, class names, number of training images or None)``.
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(
            f"`validation_fraction` must be in [0, 1). Received: validation_fraction={validation_fraction!r}"
        )
    if isinstance(data, (str, os.PathLike)):
        folder = image_folder.scan_image_folder(data, class_names=class_names, min_classes=2)
        folder = image_folder.drop_unusable_images(folder, max_image_pixels)
        _check_class_counts(folder, needs_validation=validation_data is None and validation_fraction > 0)
        names = folder.class_names
        validation_folder = None
        if validation_data is not None:
            if not isinstance(validation_data, (str, os.PathLike)):
                raise ValueError(
                    "`validation_data` must be a folder path when `data` is one. "
                    f"Received: validation_data={validation_data!r}"
                )
            validation_folder = image_folder.scan_image_folder(validation_data, class_names=names)
            validation_folder = image_folder.drop_unusable_images(validation_folder, max_image_pixels)
        elif validation_fraction > 0:
            folder, validation_folder = image_folder.split_train_validation(folder, validation_fraction, seed)
            if len(validation_folder) == 0:
                raise ValueError(
                    "The validation split is empty: every class needs at least 2 images to hold one out. "
                    f"Pass validation_fraction=0 to train without validation. Received: data={os.fspath(data)!r}"
                )
        train = image_folder.image_dataset(folder.paths, folder.labels, shuffle=True, seed=seed)
        validation = None
        if validation_folder is not None:
            validation = image_folder.image_dataset(validation_folder.paths, validation_folder.labels)
        return train, validation, names, len(folder)

    if isinstance(data, tf.data.Dataset):
        names = class_names if class_names is not None else getattr(data, "class_names", None)
        if names is None:
            raise ValueError(
                "`class_names` is required when `data` is a tf.data.Dataset (one name per label index). "
                "Received: class_names=None"
            )
        if len(names) < 2:
            raise ValueError(f"Fine-tuning needs at least 2 classes. Received: class_names={list(names)!r}")
        train = _standardize_dataset(data, "data")
        validation = None
        if validation_data is not None:
            if not isinstance(validation_data, tf.data.Dataset):
                raise ValueError(
                    "`validation_data` must be a tf.data.Dataset when `data` is one. "
                    f"Received: validation_data={validation_data!r}"
                )
            validation = _standardize_dataset(validation_data, "validation_data")
        elif validation_fraction > 0:
            train, validation = _split_index_dataset(train, validation_fraction)
        train = train.shuffle(2048, seed=seed, reshuffle_each_iteration=True)
        return train, validation, list(names), None

    raise ValueError(
        "`data` must be a folder of class sub-folders or a tf.data.Dataset of (image, label). "
        f"Received: data={data!r}"
    )
