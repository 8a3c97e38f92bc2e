"""Export a classifier for serving: TensorFlow SavedModel, TFLite/LiteRT and ONNX.

**SavedModel** (``format="saved_model"``, written with ``keras.export.ExportArchive``, so it works
from the TensorFlow and the JAX backend). Decoding, resizing and normalisation run inside the graph,
and every signature returns the same named outputs:

=========================  =============================================================
signature                  input
=========================  =============================================================
``serving_default``        ``image_bytes``: string [batch], encoded JPEG/PNG/GIF/BMP files
``serve_images``           ``images``: uint8 [batch, height, width, 3], any height/width
``serve_normalized``       ``inputs``: float32 [batch, H, W, 3], already resized and normalised
=========================  =============================================================

outputs: ``probabilities`` float32 [batch, classes], ``top_k_class_ids`` int32 [batch, k],
``top_k_probabilities`` float32 [batch, k], ``top_k_labels`` string [batch, k]
(``serve_normalized`` returns the probabilities only). The class names and preprocessing are also
written to ``assets.extra/keras_resnets.json``. Loading needs TensorFlow only (no keras_resnets).

**TFLite** (``format="tflite"``) and **ONNX** (``format="onnx"``) take uint8 images already at the
model's input size, ``images`` [batch, H, W, 3], normalise inside and return ``probabilities``; resize
on the device as ``keras_resnets.json`` (written beside the file) says. These are written with
``model.export(format="litert" | "onnx")`` and need the TensorFlow backend (ONNX also needs the
``onnx`` extra: tf2onnx and onnx).
"""

from __future__ import annotations

import os
import shutil
from typing import List

import keras
import tensorflow as tf

from keras_resnets.data.image_folder import decode_image
from keras_resnets.tasks.model_info import INFO_FILE_NAME, ModelInfo, reject_builtin_preprocessing
from keras_resnets.data.transforms import model_inputs, normalization_constants

EXPORT_FORMATS = ("saved_model", "tflite", "onnx")
DEFAULT_TOP_K = 5
SAVED_MODEL_SIGNATURES = ("serving_default", "serve_images", "serve_normalized")
OUTPUT_NAMES = ("probabilities", "top_k_class_ids", "top_k_probabilities", "top_k_labels")


def _prepare_destination(path: str, overwrite: bool, is_directory: bool) -> None:
    """Refuse to write over existing work unless `overwrite`, and then only over a previous export."""
    if not os.path.exists(path):
        return
    if is_directory and os.path.isdir(path) and not os.listdir(path):
        return
    if not overwrite:
        raise ValueError(
            f"The export path exists and is not empty; pass overwrite=True (--overwrite on the command "
            f"line) to replace it. Received: path={path!r}"
        )
    if is_directory:
        if not os.path.isfile(os.path.join(path, "saved_model.pb")):
            raise ValueError(
                "Refusing to overwrite a folder that is not a SavedModel (no saved_model.pb inside). "
                f"Received: path={path!r}"
            )
        shutil.rmtree(path)
    else:
        if os.path.isdir(path):
            raise ValueError(f"The export path is a folder, expected a file. Received: path={path!r}")
        os.remove(path)


def _check_classes(model, info: ModelInfo) -> None:
    reject_builtin_preprocessing(model)
    if model.output_shape[-1] != info.num_classes:
        raise ValueError(
            f"The model has {model.output_shape[-1]} outputs but `info` names {info.num_classes} classes. "
            f"Received: class_names={info.class_names!r}"
        )
    if tuple(model.input_shape[1:3]) != tuple(info.preprocessing.input_size):
        raise ValueError(
            f"The model input {model.input_shape[1:3]} differs from the preprocessing input size "
            f"{info.preprocessing.input_size}. Received: info.preprocessing={info.preprocessing!r}"
        )


def export_saved_model(model, info: ModelInfo, path, *, top_k: int = DEFAULT_TOP_K, overwrite: bool = False,
                       verbose: bool = False) -> str:
    """Write a SavedModel with image-bytes, uint8-image and normalised-input signatures (see module doc).

    Args:
        model: a classifier with softmax outputs.
        info: its class names and preprocessing.
        path: output folder; must not exist or be empty unless `overwrite`.
        top_k: number of classes in the ``top_k_*`` outputs (capped at the number of classes).
        overwrite: replace an existing SavedModel at `path`.
        verbose: print the signatures as Keras writes them.

    Returns:
        The output path.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"`top_k` must be an integer >= 1. Received: top_k={top_k!r}")
    _check_classes(model, info)
    path = os.fspath(path)
    _prepare_destination(path, overwrite, is_directory=True)

    preprocessing = info.preprocessing
    height, width = preprocessing.input_size
    k = min(top_k, info.num_classes)
    labels = tf.constant(info.class_names, dtype=tf.string)

    archive = keras.export.ExportArchive()
    model_fn = archive.track_and_add_endpoint(
        "serve_normalized", model, input_signature=[tf.TensorSpec([None, height, width, 3], tf.float32, name="inputs")]
    )

    def named_outputs(inputs):
        probabilities = tf.cast(model_fn(inputs), tf.float32)
        top = tf.math.top_k(probabilities, k=k)
        return {
            "probabilities": probabilities,
            "top_k_class_ids": top.indices,
            "top_k_probabilities": top.values,
            "top_k_labels": tf.gather(labels, top.indices),
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve_image_bytes(image_bytes):
        # Each file may have its own size, so images are decoded and resized one by one.
        inputs = tf.map_fn(
            lambda encoded: model_inputs(decode_image(encoded), preprocessing),
            image_bytes,
            fn_output_signature=tf.TensorSpec([height, width, 3], tf.float32),
        )
        return named_outputs(inputs)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    def serve_images(images):
        return named_outputs(model_inputs(images, preprocessing))

    archive.add_endpoint("serving_default", serve_image_bytes)
    archive.add_endpoint("serve_images", serve_images)
    archive.write_out(path, verbose=verbose)
    extra = os.path.join(path, "assets.extra")
    os.makedirs(extra, exist_ok=True)
    info.save(os.path.join(extra, INFO_FILE_NAME))
    return path


def pixels_model(model, info: ModelInfo) -> keras.Model:
    """`model` behind a normalisation layer: uint8 images at the input size in, probabilities out."""
    _check_classes(model, info)
    scale, offset = normalization_constants(info.preprocessing)
    images = keras.Input((*info.preprocessing.input_size, 3), dtype="uint8", name="images")
    inputs = keras.layers.Rescaling(scale=scale, offset=offset, dtype="float32", name="normalize")(images)
    probabilities = model(inputs)
    pixels = keras.Model(images, {"probabilities": probabilities}, name=f"{model.name}_pixels")
    # The ONNX exporter traces only models that have run once.
    pixels(keras.ops.zeros((1, *info.preprocessing.input_size, 3), dtype="uint8"))
    return pixels


def _export_edge(model, info: ModelInfo, path, keras_format: str, suffix: str, overwrite: bool, verbose: bool) -> str:
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            f"Export to {suffix} needs the TensorFlow backend (set KERAS_BACKEND=tensorflow; the saved model "
            f"loads there unchanged). Received: backend={keras.backend.backend()!r}"
        )
    path = os.fspath(path)
    if not path.endswith(suffix):
        raise ValueError(f"The export path must end with {suffix!r}. Received: path={path!r}")
    _prepare_destination(path, overwrite, is_directory=False)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    pixels_model(model, info).export(path, format=keras_format, verbose=verbose)
    info.save(os.path.join(parent, INFO_FILE_NAME))
    return path


def export_tflite(model, info: ModelInfo, path, *, overwrite: bool = False, verbose: bool = False) -> str:
    """Write a TFLite/LiteRT flatbuffer: uint8 ``images`` at the input size -> ``probabilities``.

    ``keras_resnets.json`` (class names, preprocessing) is written beside it.
    """
    return _export_edge(model, info, path, "litert", ".tflite", overwrite, verbose)


def export_onnx(model, info: ModelInfo, path, *, overwrite: bool = False, verbose: bool = False) -> str:
    """Write an ONNX model: uint8 ``images`` at the input size -> ``probabilities`` (needs tf2onnx).

    ``keras_resnets.json`` (class names, preprocessing) is written beside it.
    """
    try:
        import onnx  # noqa: F401
        import tf2onnx  # noqa: F401
    except ImportError as error:
        raise ImportError(
            "ONNX export needs the `onnx` and `tf2onnx` packages: pip install 'keras-resnets[onnx]'"
        ) from error
    return _export_edge(model, info, path, "onnx", ".onnx", overwrite, verbose)


def export_model(model, info: ModelInfo, path, format: str = "saved_model", **kwargs) -> str:
    """Export in one of :data:`EXPORT_FORMATS`; kwargs go to the format's function."""
    exporters = {"saved_model": export_saved_model, "tflite": export_tflite, "onnx": export_onnx}
    if format not in exporters:
        raise ValueError(f"`format` must be one of {EXPORT_FORMATS}. Received: format={format!r}")
    return exporters[format](model, info, path, **kwargs)


def saved_model_signatures(path) -> List[str]:
    """Names of the serving signatures of a SavedModel (loads it with plain TensorFlow)."""
    return sorted(tf.saved_model.load(os.fspath(path)).signatures)
