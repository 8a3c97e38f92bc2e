"""Export round trips: SavedModel (in a process without keras_resnets), saved_model_cli, TFLite, ONNX.

Tolerances (float32, probabilities): SavedModel 1e-5 through every signature; TFLite and ONNX 1e-5
(observed below 1e-6, also on a fine-tuned ResNet-20; the README states the same bound).
"""

import json
import os
import pathlib
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
from helpers.serving import encode, random_images, small_classifier

from keras_resnets.tasks.export import (
    OUTPUT_NAMES,
    SAVED_MODEL_SIGNATURES,
    export_model,
    export_onnx,
    export_saved_model,
    export_tflite,
)
from keras_resnets.tasks.model_info import INFO_FILE_NAME
from keras_resnets.tasks.predict import predict_probabilities
from keras_resnets.data.transforms import model_inputs, normalize

CLASSES = ["cat", "dog", "horse", "ship"]
TOLERANCE = 1e-5
EDGE_TOLERANCE = 1e-5
# Sizes unlike the 32x32 input: both smaller and larger, square and not, to exercise resize + crop.
IMAGE_SIZES = [(32, 32), (57, 40), (20, 90), (120, 120)]

# Runs in a fresh interpreter: TensorFlow only, no keras_resnets (and not its folder on sys.path).
LOADER = r"""
import json, sys
import numpy as np
import tensorflow as tf
path, images_file, out_file = sys.argv[1:]
loaded = tf.saved_model.load(path)
data = np.load(images_file, allow_pickle=False)
encoded = [data[f"bytes_{i}"].tobytes() for i in range(int(data["count"]))]
outputs = {}
def plain(value):
    value = value.numpy()
    return value.astype(str) if value.dtype == object else value  # byte strings -> unicode
for name, value in loaded.signatures["serving_default"](image_bytes=tf.constant(encoded)).items():
    outputs["bytes_" + name] = plain(value)
for name, value in loaded.signatures["serve_images"](images=tf.constant(data["batch"])).items():
    outputs["images_" + name] = plain(value)
outputs["call_images"] = loaded.serve_images(tf.constant(data["batch"]))["probabilities"].numpy()
assert "keras_resnets" not in sys.modules, "the SavedModel must not need keras_resnets"
np.savez(out_file, signatures=np.array(sorted(loaded.signatures)), **outputs)
"""


@pytest.fixture(scope="module")
def classifier():
    # crop_pct=0.875: shorter side to floor(32 / 0.875) = 36 then a centre 32x32 crop, the ImageNet-style path.
    return small_classifier(CLASSES, input_size=(32, 32), crop_pct=0.875, seed=1)


@pytest.fixture(scope="module")
def saved_model(classifier, tmp_path_factory):
    model, info = classifier
    return pathlib.Path(export_saved_model(model, info, tmp_path_factory.mktemp("export") / "sm", top_k=3))


def _run_fresh_python(code, *args):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env,
                          cwd="/", timeout=300)


@pytest.mark.backend
def test_saved_model_matches_keras_through_every_signature_in_a_fresh_process(classifier, saved_model, tmp_path):
    model, info = classifier
    pictures = random_images(0, IMAGE_SIZES)
    encoded = [encode(p, "PNG") for p in pictures[:2]] + [encode(p, "JPEG") for p in pictures[2:]]
    batch = random_images(1, [(50, 70)] * 3)
    np.savez(
        tmp_path / "inputs.npz", count=len(encoded), batch=np.stack(batch),
        **{f"bytes_{i}": np.frombuffer(b, np.uint8) for i, b in enumerate(encoded)},
    )
    run = _run_fresh_python(LOADER, saved_model, tmp_path / "inputs.npz", tmp_path / "outputs.npz")
    assert run.returncode == 0, run.stderr[-3000:]
    served = np.load(tmp_path / "outputs.npz")
    assert set(SAVED_MODEL_SIGNATURES) <= set(served["signatures"])

    expected_bytes = predict_probabilities(model, info, encoded)  # same decoding, resizing, normalisation
    expected_images = np.asarray(model.predict(model_inputs(np.stack(batch), info.preprocessing).numpy(), verbose=0))
    assert np.abs(served["bytes_probabilities"] - expected_bytes).max() < TOLERANCE
    assert np.abs(served["images_probabilities"] - expected_images).max() < TOLERANCE
    assert np.abs(served["call_images"] - expected_images).max() < TOLERANCE
    # Outputs are not all alike, so the comparison above means something.
    assert np.ptp(expected_bytes, axis=0).max() > 1e-3

    for prefix, expected in (("bytes_", expected_bytes), ("images_", expected_images)):
        assert {f"{prefix}{name}" for name in OUTPUT_NAMES} <= set(served.files)
        ids = served[f"{prefix}top_k_class_ids"]
        assert ids.shape == (len(expected), 3)
        np.testing.assert_array_equal(ids[:, 0], expected.argmax(axis=1))
        np.testing.assert_allclose(served[f"{prefix}top_k_probabilities"], np.take_along_axis(expected, ids, 1), atol=TOLERANCE)
        labels = served[f"{prefix}top_k_labels"]
        np.testing.assert_array_equal(labels, np.asarray(CLASSES)[ids])

    written = json.loads((saved_model / "assets.extra" / INFO_FILE_NAME).read_text())
    assert written["class_names"] == CLASSES and written["preprocessing"]["resize_size"] == 36


def test_saved_model_cli_lists_the_serving_signatures(saved_model):
    cli = pathlib.Path(sys.executable).with_name("saved_model_cli")
    assert cli.exists(), f"saved_model_cli (installed with tensorflow) not found beside {sys.executable}"
    shown = subprocess.run([str(cli), "show", "--dir", str(saved_model), "--all"], capture_output=True, text=True,
                           timeout=300)
    assert shown.returncode == 0, shown.stderr[-2000:]
    text = shown.stdout
    for needed in ("signature_def['serving_default']", "signature_def['serve_images']", "image_bytes", "DT_STRING",
                   "DT_UINT8", *OUTPUT_NAMES):
        assert needed in text, needed


def _tflite_outputs(path, images):
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice in favour of LiteRT
        interpreter = tf.lite.Interpreter(model_path=str(path))
    runner = interpreter.get_signature_runner()
    return np.concatenate([runner(images=image[None])["probabilities"] for image in images])


def test_tflite_matches_keras_within_tolerance(classifier, tmp_path):
    model, info = classifier
    path = export_tflite(model, info, tmp_path / "model.tflite")
    images = np.stack(random_images(2, [(32, 32)] * 4))
    # Edge formats take images already at the input size: normalisation only, no resize inside.
    expected = model.predict(normalize(images, info.preprocessing).numpy(), verbose=0)
    got = _tflite_outputs(path, images)
    assert np.abs(got - expected).max() < EDGE_TOLERANCE
    assert json.loads((tmp_path / INFO_FILE_NAME).read_text())["class_names"] == CLASSES


def test_onnx_matches_keras_within_tolerance(classifier, tmp_path):
    import onnxruntime

    model, info = classifier
    path = export_onnx(model, info, tmp_path / "model.onnx")
    images = np.stack(random_images(3, [(32, 32)] * 4))
    expected = model.predict(normalize(images, info.preprocessing).numpy(), verbose=0)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"]
    (got,) = session.run(["probabilities"], {"images": images})
    assert np.abs(got - expected).max() < EDGE_TOLERANCE


def test_export_refuses_a_non_empty_path_without_overwrite(classifier, saved_model, tmp_path):
    model, info = classifier
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "notes.txt").write_text("precious")
    with pytest.raises(ValueError, match="overwrite=True"):
        export_saved_model(model, info, tmp_path / "work")
    with pytest.raises(ValueError, match="not written by keras_resnets"):
        export_saved_model(model, info, tmp_path / "work", overwrite=True)
    assert (tmp_path / "work" / "notes.txt").read_text() == "precious"

    (tmp_path / "empty").mkdir()
    export_saved_model(model, info, tmp_path / "empty")  # an empty folder is fine
    export_saved_model(model, info, tmp_path / "empty", overwrite=True)  # replacing an export is fine
    assert (tmp_path / "empty" / "saved_model.pb").exists()

    (tmp_path / "model.tflite").write_bytes(b"old")
    with pytest.raises(ValueError, match="overwrite=True"):
        export_tflite(model, info, tmp_path / "model.tflite")
    with pytest.raises(ValueError, match="must end with '.onnx'"):
        export_onnx(model, info, tmp_path / "model.bin")
    with pytest.raises(ValueError, match="format"):
        export_model(model, info, tmp_path / "x", format="coreml")


def test_export_checks_model_matches_info(classifier, tmp_path):
    model, info = classifier
    import dataclasses

    with pytest.raises(ValueError, match="class"):
        export_saved_model(model, dataclasses.replace(info, class_names=["a", "b"]), tmp_path / "sm")
    assert keras.backend.backend() in ("tensorflow", "jax")


def test_models_with_builtin_preprocessing_are_refused_everywhere(tmp_path):
    """A model built with include_preprocessing=True would have its images normalised twice."""
    import keras_resnets
    from keras_resnets.tasks import export
    from keras_resnets.tasks import finetune
    from keras_resnets.tasks import predict
    from keras_resnets.tasks.model_info import describe_model

    model = keras_resnets.ResNet20(include_preprocessing=True, input_shape=(32, 32, 3))
    plain_model = keras_resnets.ResNet20()
    info = describe_model(plain_model, base_model="resnet20")
    image = np.zeros((32, 32, 3), np.uint8)
    for call in (
        lambda: export.export_saved_model(model, info, tmp_path / "sm"),
        lambda: predict.predict_probabilities(model, info, [image]),
        lambda: finetune.build_classifier(model, 3),
    ):
        with pytest.raises(ValueError, match="normalised twice"):
            call()
