"""The training loop end to end on tiny runs: outputs, the weights contract, resume after kill, NaN, warm-up, plot."""

import json
import os
import random
import re
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT
from helpers.kill_resume import h5_arrays, run_whole_then_killed_and_resumed



def tiny_config(data_dir, **overrides):
    from training.config import TrainConfig

    fields = dict(
        model="resnet8", dataset="image_folder", data_dir=str(data_dir), image_size=16, global_batch_size=20,
        train_length=30, lr_boundaries=(20,), log_every_steps=5, checkpoint_every_steps=10, deterministic=True, seed=1,
    )
    fields.update(overrides)
    return TrainConfig(**fields)


@pytest.mark.backend
def test_run_writes_the_documented_workdir(tiny_cifar_root, tmp_path):
    import keras

    import keras_resnets
    from keras_resnets.data.image_folder import load_image_arrays, scan_image_folder
    from training.train import train_and_evaluate

    workdir = tmp_path / "run"
    # xla=True: the compiled step on TensorFlow (off by default on CPU) and the jitted one on JAX.
    metrics = train_and_evaluate(tiny_config(tiny_cifar_root, accuracy_targets=(0.0,), xla=True), str(workdir))
    for name in ("config.json", "history.json", "history.csv", "last.weights.h5", "best.weights.h5", "final_metrics.json"):
        assert (workdir / name).is_file(), name
    assert any((workdir / "tensorboard").iterdir())
    config = json.loads((workdir / "config.json").read_text())
    assert config["derived"]["steps_per_epoch"] == 15 and config["derived"]["total_steps"] == 30
    history = json.loads((workdir / "history.json").read_text())
    assert [row["step"] for row in history] == [15, 30]  # One row per epoch.
    assert history[0]["learning_rate"] == pytest.approx(0.1) and history[1]["learning_rate"] == pytest.approx(0.01)
    assert (workdir / "history.csv").read_text().splitlines()[0].startswith("step,epoch,learning_rate,train_loss")
    final = json.loads((workdir / "final_metrics.json").read_text())
    assert final["model"] == "resnet8" and final["dataset"] == "image_folder" and final["num_classes"] == 10
    assert final["completed"] and final["steps"] == 30 and final["eval_examples"] == 100
    assert final["eval_error"] == pytest.approx(history[-1]["eval_error"])
    assert final["time_to_accuracy_s"]["0.0"] >= 0
    assert metrics["eval_accuracy"] == final["eval_accuracy"]

    # The weights contract: last.weights.h5 loads into the zoo's model and scores what the run reported.
    model = keras_resnets.ResNet(8, family="cifar", input_shape=(16, 16, 3), classes=10)
    model.load_weights(workdir / "last.weights.h5")
    test = scan_image_folder(tiny_cifar_root / "test")
    images = load_image_arrays(test.paths, size=(16, 16)).astype("float32") / 255.0
    prep = final["preprocessing"]
    inputs = (images - np.asarray(prep["mean"])) / np.asarray(prep["std"])
    predictions = keras.ops.convert_to_numpy(model(inputs, training=False)).argmax(-1)
    assert np.mean(predictions == test.labels) == pytest.approx(final["eval_accuracy"], abs=0.011)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_killed_run_resumes_to_identical_weights(backend, tiny_cifar_root, tmp_path):
    command = [
        sys.executable, "-m", "training", "--config", "cifar10_paper", "--model", "resnet8",
        "--set", "dataset=image_folder", "--set", f"data_dir={tiny_cifar_root}", "--set", "image_size=16",
        "--set", "global_batch_size=20", "--set", "train_length=60", "--set", "lr_boundaries=30",
        "--set", "log_every_steps=5", "--set", "checkpoint_every_steps=5", "--set", "deterministic=true",
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    # SIGKILL at a random moment after the first checkpoint: any step, mid-epoch or not, possibly
    # while a checkpoint or the history is being written.
    delay = random.uniform(0.0, 1.0)
    whole_dir, interrupted, resumed = run_whole_then_killed_and_resumed(command, env, tmp_path, delay)
    resumed_at = re.search(r"Resumed from \S+ at step (\d+)\.", resumed.stdout)
    assert resumed_at, resumed.stdout[-3000:]
    print(f"killed {delay:.2f}s after the first checkpoint; resumed at step {resumed_at.group(1)}")
    whole, again = h5_arrays(whole_dir / "last.weights.h5"), h5_arrays(interrupted / "last.weights.h5")
    assert whole.keys() == again.keys() and len(whole) > 20
    for name in whole:
        np.testing.assert_array_equal(whole[name], again[name], err_msg=name)
    strip = lambda rows: [{k: v for k, v in r.items() if "time" not in k and "per_second" not in k} for r in rows]  # noqa: E731
    history = lambda d: strip(json.loads((d / "history.json").read_text()))  # noqa: E731
    assert history(whole_dir) == history(interrupted)


@pytest.mark.backend
@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_mixed_precision_trains(precision, tiny_cifar_root, tmp_path):
    import keras

    from training.train import train_and_evaluate

    config = tiny_config(tiny_cifar_root, mixed_precision=precision, train_length=6, lr_boundaries=())
    metrics = train_and_evaluate(config, str(tmp_path / precision))
    assert metrics["mixed_precision"] == precision and np.isfinite(metrics["eval_loss"])
    history = json.loads((tmp_path / precision / "history.json").read_text())
    assert np.isfinite(history[-1]["train_loss"])
    assert keras.config.dtype_policy().name == "float32"  # The global policy is restored.


@pytest.mark.backend
def test_modern_recipe_options_and_ema_weights(tiny_cifar_root, tmp_path):
    import keras

    from training import modeling
    from training.train import train_and_evaluate

    options = dict(
        input_pipeline="tf_data",  # On JAX: tf.data batches converted to NumPy (large, streamed data).
        label_smoothing=0.1, weight_decay_mode="decoupled", weight_decay_norm_and_bias=False,
        lr_schedule="cosine", lr_boundaries=(), warmup_length=3, train_length=10,
    )
    ema = train_and_evaluate(tiny_config(tiny_cifar_root, ema_decay=0.999999, **options), str(tmp_path / "ema"))
    raw = train_and_evaluate(tiny_config(tiny_cifar_root, **options), str(tmp_path / "raw"))
    assert ema["weights"]["ema"] and np.isfinite(ema["eval_loss"]) and np.isfinite(raw["eval_loss"])
    # Keras starts the average at the weights after step 1; with decay ~1 it stays there, so the
    # exported EMA kernels sit much closer to the initial ones than the 10-step trained kernels do.
    keras.utils.set_random_seed(1)
    initial = keras.ops.convert_to_numpy(modeling.build_model(tiny_config(tiny_cifar_root), 10, 16).weights[0])
    moved = {}
    for name in ("ema", "raw"):
        arrays = h5_arrays(tmp_path / name / "last.weights.h5")
        kernel = next(v for k, v in arrays.items() if k.startswith("layers/conv2d/") and v.ndim == 4)
        moved[name] = float(np.linalg.norm(kernel - initial))
    assert 0 < moved["ema"] < 0.5 * moved["raw"], moved


@pytest.mark.backend
def test_imagenet_style_pipeline_with_ten_crop_final_evaluation(tiny_cifar_root, tmp_path):
    from training.train import train_and_evaluate

    # The imagenet_paper pipeline at toy scale: scale augmentation, random crop, colour noise, and a
    # 10-crop final evaluation of the images resized to shorter side 18.
    config = tiny_config(
        tiny_cifar_root, augmentation="imagenet", image_size=16, scale_range=(18, 24), eval_resize=18,
        pca_lighting=True, in_memory=False, final_eval_crops=10, train_length=6, lr_boundaries=(),
    )
    metrics = train_and_evaluate(config, str(tmp_path / "imagenet"))
    assert metrics["eval_crops"] == 10 and metrics["eval_examples"] == 100
    assert np.isfinite(metrics["eval_loss"]) and 0.0 <= metrics["eval_error"] <= 1.0


@pytest.mark.parametrize("fused_batch_norm", [True, False], ids=["fused-bn", "keras-bn"])
def test_nan_loss_stops_with_a_clear_message(tiny_cifar_root, tmp_path, fused_batch_norm):
    from training.train import TrainingDivergedError, train_and_evaluate

    # With TensorFlow's fused BN the loss can stay finite (each batch is renormalised) while a moving
    # variance overflows: the run must still stop, before it writes those weights anywhere.
    config = tiny_config(tiny_cifar_root, base_lr=1e12, lr_boundaries=(), log_every_steps=2, weight_decay=0.0,
                         fused_batch_norm=fused_batch_norm)
    diverged = r"(Training loss became (nan|inf)|The model's state became non-finite \(\d+ NaN or inf values in '[\w./]+/\w+' of the [a-z ]+\)) by step \d+ .*Lower `base_lr`"
    with pytest.raises(TrainingDivergedError, match=diverged):
        train_and_evaluate(config, str(tmp_path / "nan"))
    assert not (tmp_path / "nan" / "last.weights.h5").exists()
    for checkpoint in (tmp_path / "nan" / "checkpoints").glob("*.npz"):
        with np.load(checkpoint) as arrays:
            assert all(np.isfinite(arrays[name]).all() for name in arrays.files if arrays[name].dtype.kind == "f")


def test_low_lr_warmup_lasts_until_training_error_drops(tiny_cifar_root, tmp_path, capsys):
    from training.train import train_and_evaluate

    # The threshold is reached at the first check (5 steps): the paper's 0.1 follows.
    train_and_evaluate(tiny_config(tiny_cifar_root, warmup_lr=0.01, warmup_until_train_error=0.99, train_length=15, xla=False), str(tmp_path / "a"))
    assert "Low-rate warm-up over at step 5" in capsys.readouterr().out
    assert json.loads((tmp_path / "a" / "history.json").read_text())[-1]["learning_rate"] == pytest.approx(0.1)
    # An unreachable threshold keeps the low rate.
    train_and_evaluate(tiny_config(tiny_cifar_root, warmup_lr=0.01, warmup_until_train_error=0.0, train_length=15, xla=False), str(tmp_path / "b"))
    assert json.loads((tmp_path / "b" / "history.json").read_text())[-1]["learning_rate"] == pytest.approx(0.01)


def test_plot_draws_several_runs(tmp_path):
    from training import plot

    for name, offset in (("resnet20", 0.0), ("plain20", 0.1)):
        run = tmp_path / name
        run.mkdir()
        rows = [{"step": s, "train_error": 0.9 - s / 1000 + offset, "eval_error": 0.95 - s / 1000 + offset} for s in (100, 200, 300)]
        (run / "history.json").write_text(json.dumps(rows))
        (run / "config.json").write_text(json.dumps({"model": name}))
    out = tmp_path / "fig" / "curves.png"
    assert plot.main([str(tmp_path / "resnet20"), str(tmp_path / "plain20"), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    assert plot.main([str(tmp_path), "--out", str(out)]) == 2  # Not a run folder.


def test_cli_reports_bad_input_clearly(tmp_path, capsys):
    from training.__main__ import main

    assert main(["--config", "nope", "--model", "resnet20", "--workdir", str(tmp_path)]) == 2
    assert "Available configs" in capsys.readouterr().err
    assert main(["--config", "cifar10_paper", "--model", "resnet21", "--workdir", str(tmp_path)]) == 2
    assert "Unknown model name" in capsys.readouterr().err
    args = ["--config", "cifar10_paper", "--model", "resnet8", "--workdir", str(tmp_path)]
    assert main(args + ["--set", "dataset=image_folder", "--set", f"data_dir={tmp_path / 'missing'}"]) == 2
    assert "data_dir" in capsys.readouterr().err
