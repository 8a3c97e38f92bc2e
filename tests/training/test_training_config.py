"""Training configuration, schedules, input-pipeline order/sharding and bad-input errors (no training)."""

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT
from keras_resnets.data import augment
from keras_resnets.data import input_pipeline
from keras_resnets.tasks.distribution import parse_tf_config, resolve_distribution
from training import schedule
from training.config import TrainConfig, apply_overrides, available_recipes, load_recipe, validate


def test_recipes_exist_and_state_how_to_run():
    assert {"cifar10_paper", "imagenet_paper", "imagenet_modern"} <= set(available_recipes())
    import training.configs.cifar10_paper as cifar

    assert "python -m training --config cifar10_paper" in cifar.__doc__
    assert "8.75" in cifar.__doc__  # The result it should reach.


def test_cifar10_paper_is_the_papers_recipe():
    config = load_recipe("cifar10_paper", "resnet56")
    assert config.recipe == "cifar10_paper"
    assert (config.global_batch_size, config.base_lr, config.momentum, config.weight_decay) == (128, 0.1, 0.9, 1e-4)
    assert config.weight_decay_mode == "l2" and config.weight_decay_norm_and_bias
    lr = schedule.from_config(config, steps_per_epoch=390)
    assert lr.total_steps == 64000
    assert [lr(0), lr(31999), lr(32000), lr(47999), lr(48000), lr(63999)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    )
    assert config.warmup_lr is None
    deep = load_recipe("cifar10_paper", "resnet110")
    assert deep.warmup_lr == 0.01 and deep.warmup_until_train_error == 0.8
    assert schedule.from_config(deep, 390)(5, low_lr_warmup=True) == 0.01


def test_imagenet_recipes():
    paper = load_recipe("imagenet_paper", "resnet50")
    lr = schedule.from_config(paper, steps_per_epoch=5004)
    assert paper.global_batch_size == 256 and paper.final_eval_crops == 10 and paper.scale_range == (256, 480)
    assert lr.boundaries == (30 * 5004, 60 * 5004, 90 * 5004)
    modern = load_recipe("imagenet_modern", "resnet50")
    lr = schedule.from_config(modern, steps_per_epoch=1251)
    assert lr.base_lr == pytest.approx(0.4)  # 0.1 x 1024 / 256.
    assert lr(0) == pytest.approx(0.4 / (5 * 1251))  # Linear warm-up.
    assert lr(5 * 1251) == pytest.approx(0.4) and lr(90 * 1251 - 1) < 1e-5  # Cosine to ~0.
    assert modern.label_smoothing == 0.1 and modern.ema_decay and not modern.weight_decay_norm_and_bias


def test_overrides_are_typed():
    config = apply_overrides(
        TrainConfig(),
        ["base_lr=0.05", "lr_boundaries=30,60", "ema_decay=none", "deterministic=true", "train_examples=100", "model=plain56"],
    )
    assert config.base_lr == 0.05 and config.lr_boundaries == (30, 60) and config.ema_decay is None
    assert config.deterministic is True and config.train_examples == 100 and config.model == "plain56"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["nonsense=1"], "Unknown config field"),
        (["base_lr=fast"], "base_lr='fast'"),
        (["deterministic=maybe"], "deterministic='maybe'"),
        (["base_lr"], "field=value"),
    ],
)
def test_bad_overrides(overrides, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides(TrainConfig(), overrides)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("model", "resnet21", "Unknown model name"),
        ("dataset", "mnist", "dataset='mnist'"),
        ("distribution", "horovod", "distribution='horovod'"),
        ("mixed_precision", "int8", "mixed_precision='int8'"),
        ("lr_boundaries", (48000, 32000), "increasing"),
        ("eval_crops", 5, "eval_crops=5"),
        ("cpu_conv_chunk_bytes", -1, r"cpu_conv_chunk_bytes=-1"),
        ("cpu_conv_chunk_bytes", 1.5, r"integer >= 0 .*cpu_conv_chunk_bytes=1.5"),
    ],
)
def test_validate_rejects_bad_values(field, value, message):
    with pytest.raises(ValueError, match=message):
        validate(TrainConfig(**{field: value}))


def test_unknown_config_names_the_choices():
    with pytest.raises(ValueError, match=r"Available configs: .*cifar10_paper.*Received: config='cifar11'"):
        load_recipe("cifar11", "resnet20")


@pytest.mark.parametrize(
    "text, message",
    [
        ("not json", "not valid JSON"),
        ('{"task": {"type": "worker", "index": 0}}', "missing or empty 'cluster'"),
        ('{"cluster": {"worker": ["localhost"]}, "task": {"type": "worker", "index": 0}}', "not 'host:port'"),
        ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}', "out of range"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}', "'ps' is not a job"),
    ],
)
def test_bad_tf_config(text, message):
    with pytest.raises(ValueError, match=message) as info:
        parse_tf_config(text)
    assert "Received: TF_CONFIG=" in str(info.value)


def test_bad_tf_config_from_environment(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": []}}')
    with pytest.raises(ValueError, match="Invalid TF_CONFIG"):
        resolve_distribution("multi_worker")


def test_distribution_names_checked_against_backend():
    import keras

    other = "mirrored" if keras.backend.backend() == "jax" else "jax_data_parallel"
    with pytest.raises(ValueError, match=f"not available on the {keras.backend.backend()} backend"):
        resolve_distribution(other)
    with pytest.raises(ValueError, match="distribution='magic'"):
        resolve_distribution("magic")


def test_data_errors(tmp_path):
    with pytest.raises(ValueError, match="dataset='svhn'"):
        input_pipeline.load_data("svhn")
    with pytest.raises(ValueError, match="needs `data_dir`"):
        input_pipeline.load_data("image_folder")
    with pytest.raises(ValueError, match="existing folder"):
        input_pipeline.load_data("image_folder", data_dir=str(tmp_path / "missing"))
    (tmp_path / "train").mkdir()
    with pytest.raises(ValueError, match="no 'test' sub-folder"):
        input_pipeline.load_data("image_folder", data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="not prepared"):
        input_pipeline.load_data("cifar10", data_dir=str(tmp_path / "tfds"))
    with pytest.raises(ValueError, match="manual_dir"):
        input_pipeline.load_data("imagenet2012", data_dir=str(tmp_path / "tfds"))


def test_global_batches_are_split_over_workers_without_overlap():
    steps, batch = 5, 12
    shards = [input_pipeline.worker_positions(steps, batch, 3, w) for w in range(3)]
    for step in range(steps):
        union = np.concatenate([s.reshape(steps, -1)[step] for s in shards])
        np.testing.assert_array_equal(np.sort(union), np.arange(step * batch, (step + 1) * batch))
    resumed = input_pipeline.worker_positions(steps, batch, 3, 1, start_step=2)
    np.testing.assert_array_equal(resumed, shards[1][2 * 4 :])
    with pytest.raises(ValueError, match="divide evenly"):
        input_pipeline.worker_positions(steps, 10, 3, 0)


def test_epoch_order_depends_on_seed_and_epoch_only():
    a = input_pipeline.epoch_permutation(100, seed=1, epoch=3)
    np.testing.assert_array_equal(a, input_pipeline.epoch_permutation(100, seed=1, epoch=3))
    assert not np.array_equal(a, input_pipeline.epoch_permutation(100, seed=1, epoch=4))
    np.testing.assert_array_equal(np.sort(a), np.arange(100))


def test_stratified_subset_balances_classes():
    labels = np.repeat(np.arange(4), [50, 30, 10, 10])
    chosen = input_pipeline.stratified_subset(labels, 20, seed=0)
    assert np.bincount(labels[chosen]).tolist() == [5, 5, 5, 5]


def test_cifar_augment_numpy_is_a_shifted_or_flipped_crop():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(64, 8, 8, 3), dtype=np.uint8)
    out = augment.cifar_augment_numpy(images, np.random.default_rng(1), padding=2)
    assert out.shape == images.shape and out.dtype == np.uint8
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)))
    for image, result in zip(padded, out):
        views = [image[t : t + 8, l : l + 8] for t in range(5) for l in range(5)]
        views += [v[:, ::-1] for v in views]
        assert any(np.array_equal(result, v) for v in views)
    flipped = sum(not np.array_equal(o, i) for o, i in zip(out, images))
    assert flipped > 32  # Most images change (1 in 50 views is the identity).


def test_numpy_pipeline_needs_in_memory_cifar_style_data():
    split = input_pipeline.DataSplit(4, labels=np.zeros(4, np.int32), paths=["a"] * 4)
    with pytest.raises(ValueError, match="held in memory"):
        input_pipeline.NumpyPipeline(split, input_pipeline.PipelineOptions(), 2)
    memory = input_pipeline.DataSplit(4, labels=np.zeros(4, np.int32), images=np.zeros((4, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="augmentation='imagenet'"):
        input_pipeline.NumpyPipeline(memory, input_pipeline.PipelineOptions(augmentation="imagenet", image_size=8), 2)


def test_numpy_eval_batches_pad_with_zero_weight():
    images = np.arange(5 * 8 * 8 * 3, dtype=np.uint8).reshape(5, 8, 8, 3)
    split = input_pipeline.DataSplit(5, labels=np.arange(5, dtype=np.int32), images=images)
    pipeline = input_pipeline.NumpyPipeline(split, input_pipeline.PipelineOptions(image_size=8), global_batch=4)
    batches = list(pipeline.eval_batches())
    assert len(batches) == 2
    assert batches[1][2].tolist() == [1, 0, 0, 0]
    assert np.concatenate([b[1] for b in batches])[:5].tolist() == [0, 1, 2, 3, 4]


def test_numpy_and_resumed_batches_match(tmp_path):
    images = np.random.default_rng(0).integers(0, 255, (40, 8, 8, 3), dtype=np.uint8)
    split = input_pipeline.DataSplit(40, labels=np.arange(40, dtype=np.int32), images=images)
    pipeline = input_pipeline.NumpyPipeline(split, input_pipeline.PipelineOptions(image_size=8, padding=2), 8)
    full = list(pipeline.train_batches(epoch=2, steps_per_epoch=5))
    resumed = list(pipeline.train_batches(epoch=2, steps_per_epoch=5, start_step=3))
    assert len(full) == 5 and len(resumed) == 2
    for a, b in zip(full[3:], resumed):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_training_asks_tensorflow_for_onednn_unless_the_environment_decides():
    from training import ONEDNN_VARIABLE, use_onednn_by_default

    environ = {}
    use_onednn_by_default(environ)
    assert environ == {ONEDNN_VARIABLE: "1"}
    environ = {ONEDNN_VARIABLE: "0"}
    use_onednn_by_default(environ)
    assert environ == {ONEDNN_VARIABLE: "0"}
    # `python -m training` asks before anything can import TensorFlow.
    env = {k: v for k, v in os.environ.items() if k != ONEDNN_VARIABLE}
    probe = subprocess.run(
        [sys.executable, "-c", "import os, sys, training.__main__; print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), "
         "'tensorflow' in sys.modules)"],
        cwd=str(REPO_ROOT), env=dict(env, PYTHONPATH=str(REPO_ROOT)), capture_output=True, text=True, timeout=120,
    )
    assert probe.stdout.split() == ["1", "False"], probe.stderr[-2000:]
