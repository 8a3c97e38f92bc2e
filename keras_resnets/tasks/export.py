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
``serving_default`` and ``serve_images`` refuse images of more than ``max_image_pixels`` pixels
(fixed at export time; default ``$KERAS_RESNETS_MAX_IMAGE_PIXELS`` or 40 megapixels) with
``InvalidArgumentError``; encoded images are refused from their header, before decoding.

Every export is checked before any work (an existing destination is replaced only with
``overwrite=True`` and only if an earlier export wrote it; an unwritable destination fails at once),
written beside the destination and renamed into place (see :mod:`keras_resnets.outputs`).

**TFLite** (``format="tflite"``) and **ONNX** (``format="onnx"``) take uint8 images already at the
model's input size, ``images`` [batch, H, W, 3], normalise inside and return ``probabilities``; resize
on the device as ``keras_resnets.json`` (written beside the file) says. These are written with
``model.export(format="litert" | "onnx")`` and need the TensorFlow backend (ONNX also needs the
``onnx`` extra: tf2onnx and onnx).
"""

from __future__ import annotations

import os
import uuid
from typing import List, Optional

import keras
import tensorflow as tf

from keras_resnets import outputs
from keras_resnets.data.image_folder import MAX_IMAGE_PIXELS_ENV, decode_image
from keras_resnets.data.image_folder import max_image_pixels as resolve_max_image_pixels
from keras_resnets.tasks.model_info import INFO_FILE_NAME, ModelInfo, reject_builtin_preprocessing
from keras_resnets.data.transforms import model_inputs, normalization_constants

EXPORT_FORMATS = ("saved_model", "tflite", "onnx")
DEFAULT_TOP_K = 5
SAVED_MODEL_SIGNATURES = ("serving_default", "serve_images", "serve_normalized")
OUTPUT_NAMES = ("probabilities", "top_k_class_ids", "top_k_probabilities", "top_k_labels")


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
                       verbose: bool = False, max_image_pixels: Optional[int] = None) -> str:
    """Write a SavedModel with image-bytes, uint8-image and normalised-input signatures (see module doc).

    Args:
        model: a classifier with softmax outputs.
        info: its class names and preprocessing.
        path: output folder; must not exist or be empty unless `overwrite`.
        top_k: number of classes in the ``top_k_*`` outputs (capped at the number of classes).
        overwrite: replace an existing SavedModel at `path` (only one written by this function).
        verbose: print the signatures as Keras writes them.
        max_image_pixels: largest height * width the image signatures accept (default
            ``$KERAS_RESNETS_MAX_IMAGE_PIXELS`` or 40 megapixels).

    Returns:
        The output path.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"`top_k` must be an integer >= 1. Received: top_k={top_k!r}")
    _check_classes(model, info)
    limit = resolve_max_image_pixels(max_image_pixels)
    path = check_export_destination(path, "saved_model", overwrite=overwrite)

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
            lambda encoded: model_inputs(decode_image(encoded, limit), preprocessing),
            image_bytes,
            fn_output_signature=tf.TensorSpec([height, width, 3], tf.float32),
        )
        return named_outputs(inputs)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    def serve_images(images):
        shape = tf.shape(images, out_type=tf.int64)
        check = tf.debugging.assert_less_equal(
            shape[1] * shape[2], tf.constant(limit, tf.int64),
            message=f"Images refused: height * width is more than {limit} pixels (max_image_pixels at export; "
                    f"${MAX_IMAGE_PIXELS_ENV})",
        )
        with tf.control_dependencies([check]):
            images = tf.identity(images)
        return named_outputs(model_inputs(images, preprocessing))

    archive.add_endpoint("serving_default", serve_image_bytes)
    archive.add_endpoint("serve_images", serve_images)
    with outputs.atomic_output(path, overwrite=overwrite, kind="SavedModel export") as temporary:
        archive.write_out(temporary, verbose=verbose)
        extra = os.path.join(temporary, "assets.extra")
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
    path = check_export_destination(path, keras_format if keras_format == "onnx" else "tflite", overwrite=overwrite)
    kind = f"{suffix} export"
    pixels = pixels_model(model, info)
    parent = os.path.dirname(path)
    with outputs.atomic_output(path, overwrite=overwrite, kind=kind, is_directory=False) as temporary:
        pixels.export(temporary, format=keras_format, verbose=verbose)
        info_path = os.path.join(parent, f".{INFO_FILE_NAME}.partial-{uuid.uuid4().hex[:8]}")
        try:
            info.save(info_path)
            os.replace(info_path, os.path.join(parent, INFO_FILE_NAME))
        finally:
            if os.path.exists(info_path):
                os.remove(info_path)
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


EDGE_SUFFIXES = {"tflite": ".tflite", "onnx": ".onnx"}


def check_export_destination(path, format: str = "saved_model", *, overwrite: bool = False) -> str:
    """Refuse, before any model is built or loaded, a destination the export of `format` could not use.

    A SavedModel goes to a folder (absent, empty, or an earlier export when `overwrite`); TFLite and ONNX
    to a file ending in ``.tflite`` / ``.onnx``. Returns the absolute path; raises ValueError (an unknown
    format or a wrong suffix) or the errors of :func:`keras_resnets.outputs.check_destination`.
    """
    if format not in EXPORT_FORMATS:
        raise ValueError(f"`format` must be one of {EXPORT_FORMATS}. Received: format={format!r}")
    path = os.fspath(path)
    if format == "saved_model":
        return outputs.check_destination(path, overwrite=overwrite, kind="SavedModel export")
    suffix = EDGE_SUFFIXES[format]
    if not path.endswith(suffix):
        raise ValueError(f"The export path must end with {suffix!r}. Received: path={path!r}")
    return outputs.check_destination(path, overwrite=overwrite, kind=f"{suffix} export", is_directory=False)


def export_model(model, info: ModelInfo, path, format: str = "saved_model", **kwargs) -> str:
    """Export in one of :data:`EXPORT_FORMATS`; kwargs go to the format's function."""
    exporters = {"saved_model": export_saved_model, "tflite": export_tflite, "onnx": export_onnx}
    if format not in exporters:
        raise ValueError(f"`format` must be one of {EXPORT_FORMATS}. Received: format={format!r}")
    return exporters[format](model, info, path, **kwargs)


def saved_model_signatures(path) -> List[str]:
    """Names of the serving signatures of a SavedModel (loads it with plain TensorFlow)."""
    return sorted(tf.saved_model.load(os.fspath(path)).signatures)
