"""How far every evaluation path's network input is from the transform the weights were evaluated with.

The reference is timm/torchvision's evaluation transform on PIL images: ``Resize`` of the shorter side
to ``floor(input_size / crop_pct)`` (antialiased PIL filter of the record), then ``CenterCrop``. For
each distinct preprocessing of ``keras_resnets.list_weights()`` and each path that turns an image into
a network input, the script prints the mean and the largest absolute difference from the reference,
in pixel levels (0..255, before normalisation), over four test images built from real CIFAR-10 JPEGs
(a 375x500 mosaic, its 500x375 transpose, a smooth 375x500 upsampled one, a 150x200 mosaic).

Run from a checkout, with the shared data folder at ../shared or $KERAS_RESNETS_SHARED_DIR::

    KERAS_BACKEND=tensorflow python -m weights.check_preprocessing
"""

from __future__ import annotations

import argparse
import collections
import math
import os
import pathlib
import tarfile
import time

import numpy as np
from PIL import Image

import keras
import keras_resnets
from keras_resnets.data import augment, preprocessing as preprocessing_lib, transforms

_FILTERS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}


def cifar_tiles(archive: pathlib.Path, per_class: int = 20):
    """The first `per_class` test JPEGs of each CIFAR-10 class, decoded, interleaved by class."""
    by_class = collections.defaultdict(list)
    with tarfile.open(archive) as tar:
        for member in tar:
            parts = member.name.split("/")
            if len(parts) == 4 and parts[1] == "test" and len(by_class[parts[2]]) < per_class:
                with Image.open(tar.extractfile(member)) as image:
                    by_class[parts[2]].append(np.asarray(image.convert("RGB")))
            if len(by_class) == 10 and all(len(v) == per_class for v in by_class.values()):
                break
    if len(by_class) != 10:
        raise ValueError(f"{archive} does not hold the 10 CIFAR-10 test classes. Received: {sorted(by_class)}")
    return [by_class[name][i] for i in range(per_class) for name in sorted(by_class)]


def reference_images(archive: pathlib.Path):
    """``{name: uint8 (H, W, 3)}``: detailed and smooth, landscape, portrait and small test images."""
    tiles = cifar_tiles(archive)
    rows = [np.concatenate(tiles[r * 16 : (r + 1) * 16], axis=1) for r in range(12)]
    mosaic = np.concatenate(rows, axis=0)[:375, :500]
    smooth_tiles = [np.asarray(Image.fromarray(t).resize((125, 125), Image.BICUBIC)) for t in tiles[100:112]]
    smooth = np.concatenate([np.concatenate(smooth_tiles[r * 4 : (r + 1) * 4], axis=1) for r in range(3)], axis=0)
    return {
        "mosaic 375x500": mosaic,
        "mosaic 500x375": np.ascontiguousarray(mosaic.transpose(1, 0, 2)),
        "smooth 375x500": smooth,
        "mosaic 150x200": mosaic[100:250, 150:350],
    }


def pil_reference(image: np.ndarray, pre) -> np.ndarray:
    """torchvision ``Resize(floor(size / crop_pct))`` + ``CenterCrop(size)`` on a PIL image, as float32."""
    size = pre.input_size if isinstance(pre.input_size, int) else pre.input_size[0]
    resize = math.floor(size / pre.crop_pct)
    height, width = image.shape[:2]
    short, long = min(height, width), max(height, width)
    new_short, new_long = resize, int(resize * long / short)
    new_width, new_height = (new_short, new_long) if width <= height else (new_long, new_short)
    resized = Image.fromarray(image).resize((new_width, new_height), _FILTERS[pre.interpolation])
    top = int(round((new_height - size) / 2.0))
    left = int(round((new_width - size) / 2.0))
    return np.asarray(resized.crop((left, top, left + size, top + size)), dtype=np.float32)


def _tf_preprocessing(pre):
    # A checkout from before the one Preprocessing (tasks.model_info had its own class) is measured too.
    from keras_resnets.tasks import model_info

    legacy = getattr(model_info, "Preprocessing", None)
    if legacy is not None and hasattr(legacy, "from_weights"):
        size = pre.input_size if isinstance(pre.input_size, int) else pre.input_size[0]
        return legacy.from_weights(pre, (size, size))
    return pre


def _layers(pre):
    return preprocessing_lib.preprocessing_layers(pre)


def _through_layers(image: np.ndarray, pre) -> np.ndarray:
    x = keras.ops.convert_to_tensor(image[None].astype("float32"))
    for layer in _layers(pre):
        x = layer(x)
    return denormalize(keras.ops.convert_to_numpy(x)[0], pre)


def _through_layers_graph(image: np.ndarray, pre) -> np.ndarray:
    import tensorflow as tf

    stack = _layers(pre)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def run(x):
        for layer in stack:
            x = layer(x)
        return x

    return denormalize(run(image[None].astype("float32")).numpy()[0], pre)


def denormalize(x: np.ndarray, pre) -> np.ndarray:
    """Normalised network input back to pixel levels 0..255 (inverse of the record's mean/std)."""
    return x * np.float32(255.0) * np.asarray(pre.std, np.float32) + np.float32(255.0) * np.asarray(pre.mean, np.float32)


def paths():
    """``{path name: function(image, preprocessing) -> float32 network input 0..255}``."""
    result = {
        "prepare_image": lambda image, pre: keras_resnets.prepare_image(image, pre),
        f"layers ({keras.backend.backend()})": _through_layers,
    }
    if keras.backend.backend() == "tensorflow":
        result["layers (TF graph)"] = _through_layers_graph
    result["tf.data/serving"] = (
        lambda image, pre: transforms.resize_for_model(image, _tf_preprocessing(pre)).numpy()
    )
    result["train eval view"] = _training_eval_view
    return result


def _training_eval_view(image, pre):
    size = pre.input_size if isinstance(pre.input_size, int) else pre.input_size[0]
    resize = math.floor(size / pre.crop_pct)
    try:
        view = augment.center_crop_tf(image, size, resize, interpolation=pre.interpolation)
    except TypeError:  # Before the one evaluation transform the view was bilinear only.
        view = augment.center_crop_tf(image, size, resize)
    return view.numpy().astype(np.float32)


def distinct_preprocessings():
    """``[(preprocessing, [record names])]`` in registry order."""
    groups = {}
    for record in keras_resnets.list_weights():
        groups.setdefault(record.preprocessing, []).append(record.name)
    return list(groups.items())


def measure(images, path_functions):
    """``{(record names, path, image name): (mean |diff|, max |diff|)}``."""
    table = {}
    for pre, names in distinct_preprocessings():
        for path, function in path_functions.items():
            for image_name, image in images.items():
                reference = pil_reference(image, pre)
                got = np.asarray(function(image, pre), dtype=np.float32)
                if got.shape != reference.shape:
                    raise ValueError(f"{path} gave {got.shape}, the reference {reference.shape} for {names[0]}")
                difference = np.abs(got - reference)
                table[(tuple(names), path, image_name)] = (float(difference.mean()), float(difference.max()))
    return table


def print_table(table, image_names):
    """One row per preprocessing, one ``mean / max`` column per path, over `image_names`."""
    path_names = list(dict.fromkeys(path for _, path, _ in table))
    groups = list(dict.fromkeys(names for names, _, _ in table))
    labels = [names[0] + (f" (+{len(names) - 1} more)" if len(names) > 1 else "") for names in groups]
    width = max([28] + [len(label) + 1 for label in labels])
    print(f"{'weights':<{width}}" + "".join(f"{p:>20}" for p in path_names))
    for names, label in zip(groups, labels):
        cells = []
        for path in path_names:
            values = [table[(names, path, image)] for image in image_names]
            cells.append(f"{np.mean([v[0] for v in values]):.3f} / {max(v[1] for v in values):>3.0f}")
        print(f"{label:<{width}}" + "".join(f"{c:>20}" for c in cells))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_shared = os.environ.get("KERAS_RESNETS_SHARED_DIR", str(pathlib.Path(__file__).resolve().parents[2] / "shared"))
    parser.add_argument("--shared", default=default_shared, help="the shared data folder (default: %(default)s)")
    parser.add_argument("--per-image", action="store_true", help="also print one table per test image")
    args = parser.parse_args(argv)
    archive = pathlib.Path(args.shared) / "data" / "cifar10-jpeg.tar.gz"
    if not archive.is_file():
        raise SystemExit(f"error: CIFAR-10 JPEG archive not found: {archive} (set --shared)")
    start = time.perf_counter()
    images = reference_images(archive)
    table = measure(images, paths())
    print(f"mean / max |network input - PIL reference|, pixel levels 0..255, Keras backend {keras.backend.backend()}")
    print("layers: include_preprocessing=True; tf.data/serving: fine-tuning, predict, SavedModel signatures")
    print(f"All {len(images)} images ({', '.join(images)}):")
    print_table(table, list(images))
    if args.per_image:
        for image_name in images:
            print(f"\n{image_name}:")
            print_table(table, [image_name])
    print(f"({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
