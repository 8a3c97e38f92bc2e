"""The keras-resnets command: help texts, listings, fine-tune -> predict -> export, and bad input."""

import pathlib
import subprocess
import sys
import tomllib

import numpy as np
import pytest
from helpers.serving import random_images, small_classifier, write_random_image_folder
from PIL import Image

from keras_resnets import cli
from keras_resnets.tasks.model_info import INFO_FILE_NAME, MODEL_FILE_NAME, save_classifier

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
COMMANDS = ("fine-tune", "predict", "export", "models", "weights")


def test_console_script_is_declared():
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["keras-resnets"] == "keras_resnets.cli:main"


def test_module_help_lists_every_command():
    run = subprocess.run([sys.executable, "-m", "keras_resnets.cli", "--help"], capture_output=True, text=True,
                         cwd=REPO_ROOT, timeout=120)
    assert run.returncode == 0, run.stderr
    for command in COMMANDS:
        assert command in run.stdout


@pytest.mark.parametrize("command, expected", [
    ("fine-tune", "--output-dir"), ("predict", "--top-k"), ("export", "--overwrite"), ("models", "--family"),
    ("weights", "--model"),
])
def test_every_command_has_help(command, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    assert exit_info.value.code == 0
    assert expected in capsys.readouterr().out


def test_models_lists_the_zoo(capsys):
    assert cli.main(["models", "--family", "cifar", "--kind", "residual"]) == 0
    out = capsys.readouterr().out
    assert "resnet20" in out and "8.75" in out and "resnet50" not in out and "plain20" not in out


def test_weights_lists_the_registered_weight_sets(capsys):
    assert cli.main(["weights", "--model", "resnet20"]) == 0
    out = capsys.readouterr().out
    assert "resnet20.cifar10" in out and "resnet50" not in out


@pytest.fixture(scope="module")
def fine_tuned_dir(tmp_path_factory):
    model, info = small_classifier(["apple", "pear", "plum"], input_size=(32, 32), seed=3)
    return pathlib.Path(save_classifier(model, info, tmp_path_factory.mktemp("tuned") / "run"))


def test_predict_prints_top_k_labels_for_images_of_any_size(fine_tuned_dir, tmp_path, capsys):
    paths = []
    for index, image in enumerate(random_images(4, [(32, 32), (80, 45)])):
        paths.append(tmp_path / f"image{index}.{'png' if index else 'jpg'}")
        Image.fromarray(image).save(paths[-1])
    assert cli.main(["predict", *map(str, paths), "--model", str(fine_tuned_dir), "--top-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(paths[0]) and lines[3] == str(paths[1])
    for line in lines[1:3] + lines[4:6]:
        probability, label = line.split()
        assert label in ("apple", "pear", "plum") and 0.0 <= float(probability) <= 1.0


def test_predict_names_an_unreadable_image(fine_tuned_dir, tmp_path, capsys):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really a jpeg")
    assert cli.main(["predict", str(broken), "--model", str(fine_tuned_dir)]) == 2
    err = capsys.readouterr().err
    assert "Cannot decode" in err and str(broken) in err
    assert cli.main(["predict", str(tmp_path / "missing.png"), "--model", str(fine_tuned_dir)]) == 2
    assert "not found" in capsys.readouterr().err


def test_fine_tune_then_export_from_the_command_line(tmp_path, capsys):
    data = write_random_image_folder(tmp_path / "data", ["cats", "dogs"], per_class=6, size=(40, 36))
    (data / "cats" / "README.txt").write_text("skipped with a warning")
    out_dir = tmp_path / "run"
    with pytest.warns(UserWarning, match="Skipped 1 non-image"):
        status = cli.main([
            "fine-tune", str(data), "--model", "resnet20", "--weights", "none", "--output-dir", str(out_dir),
            "--head-epochs", "1", "--fine-tune-epochs", "1", "--batch-size", "4", "--test-dir", str(data),
        ])
    assert status == 0
    out = capsys.readouterr().out
    assert "Phase 1/2" in out and "Phase 2/2" in out and "Held-out accuracy" in out
    assert (out_dir / MODEL_FILE_NAME).exists() and (out_dir / INFO_FILE_NAME).exists()

    exported = tmp_path / "serving"
    assert cli.main(["export", str(exported), "--model", str(out_dir), "--top-k", "1"]) == 0
    assert "serving_default" in capsys.readouterr().out
    # A second export to the same place needs --overwrite.
    assert cli.main(["export", str(exported), "--model", str(out_dir)]) == 2
    refused = capsys.readouterr()
    assert "--overwrite" in refused.err and "Exporting" not in refused.out  # Refused before the model loads.
    assert cli.main(["export", str(tmp_path / "model.onnx.txt"), "--model", str(out_dir), "--format", "onnx"]) == 2
    refused = capsys.readouterr()
    assert "must end with '.onnx'" in refused.err and "Exporting" not in refused.out
    assert cli.main(["export", str(exported), "--model", str(out_dir), "--overwrite"]) == 0
    folded = tmp_path / "serving_folded"
    assert cli.main(["export", str(folded), "--model", str(out_dir), "--fold-batch-norm"]) == 0
    assert "Folded 19 of 19 BatchNormalization layers" in capsys.readouterr().out
    import tensorflow as tf

    images = tf.constant(np.random.default_rng(0).integers(0, 256, (4, 40, 36, 3), dtype=np.uint8))
    served = [tf.saved_model.load(str(path)).signatures["serve_images"](images=images)["probabilities"].numpy()
              for path in (exported, folded)]
    np.testing.assert_allclose(served[1], served[0], rtol=1e-4, atol=1e-6)


def test_fine_tune_rejects_empty_and_one_class_folders(tmp_path, capsys):
    (tmp_path / "empty" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "b").mkdir()
    assert cli.main(["fine-tune", str(tmp_path / "empty"), "--weights", "none", "--output-dir", str(tmp_path / "o")]) == 2
    assert "no JPEG/PNG/GIF/BMP images" in capsys.readouterr().err
    one = write_random_image_folder(tmp_path / "one", ["only"], per_class=3)
    assert cli.main(["fine-tune", str(one), "--model", "resnet20", "--weights", "none", "--output-dir", str(tmp_path / "o")]) == 2
    assert "at least 2 classes" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_unknown_model_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["export", str(tmp_path / "x"), "--model", "resnet7"]) == 2
    assert "registered model name" in capsys.readouterr().err
