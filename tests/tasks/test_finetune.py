"""Fine-tuning: pretrained beats scratch on real CIFAR JPEGs, frozen BN stays frozen, data handling, bad input."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers.serving import link_images, small_classifier, write_random_image_folder

import keras_resnets
from keras_resnets.tasks.distribution import resolve_distribution
from keras_resnets.tasks.finetune import fine_tune, set_trainable_stages
from keras_resnets.tasks.model_info import INFO_FILE_NAME, load_classifier
from keras_resnets.tasks.predict import evaluate_folder, predict_probabilities

CLASSES = ["cat", "dog", "horse"]


@pytest.fixture(scope="module")
def resnet20_cifar10_weights(shared):
    """The akamaster CIFAR-10 ResNet-20 (torch layout), converted on load by the weights library."""
    return str(shared("weights/akamaster/resnet20.npz"))


@pytest.fixture(scope="module")
def few_shot_cifar(cifar10_jpeg_root, tmp_path_factory):
    """60 training images per class (48 train + 12 validation) and 100 held-out test images per class."""
    root = tmp_path_factory.mktemp("few-shot")
    train = link_images(cifar10_jpeg_root / "train", root / "train", CLASSES, per_class=60)
    test = link_images(cifar10_jpeg_root / "test", root / "test", CLASSES, per_class=100)
    return train, test


def _tiny_folder(root, classes=("cat", "dog"), per_class=6):
    return write_random_image_folder(root, classes, per_class=per_class, size=(28, 36))


@pytest.mark.slow
def test_pretrained_fine_tune_beats_scratch_on_held_out_images(few_shot_cifar, resnet20_cifar10_weights, tmp_path):
    train, test = few_shot_cifar
    budget = dict(head_epochs=4, fine_tune_epochs=4, batch_size=32, verbose=0, seed=0)
    tuned = fine_tune("resnet20", train, weights=resnet20_cifar10_weights, output_dir=tmp_path / "tuned", **budget)
    # The fairest scratch baseline for the same epochs: everything trains from the start, at the
    # usual from-scratch Adam rates.
    scratch = fine_tune(
        "resnet20", train, weights=None, unfreeze="all", train_batchnorm=True, learning_rate=1e-2,
        fine_tune_learning_rate=1e-3, **budget,
    )
    tuned_accuracy = evaluate_folder(tuned.model, tuned.info, test)["accuracy"]
    scratch_accuracy = evaluate_folder(scratch.model, scratch.info, test)["accuracy"]
    print(f"held-out accuracy on 300 images: fine-tuned {tuned_accuracy:.3f}, scratch {scratch_accuracy:.3f}")
    assert tuned_accuracy >= 0.7
    assert tuned_accuracy >= scratch_accuracy + 0.2

    # Class names and preprocessing travel with the saved model, and the reloaded model predicts the same.
    saved = json.loads((tmp_path / "tuned" / INFO_FILE_NAME).read_text())
    assert saved["class_names"] == CLASSES
    assert saved["preprocessing"]["input_size"] == [32, 32]
    assert saved["extra"]["best_epoch"] == tuned.best_epoch
    model, info = load_classifier(tmp_path / "tuned")
    images = sorted((test / "horse").iterdir())[:4]
    np.testing.assert_allclose(
        predict_probabilities(model, info, images), predict_probabilities(tuned.model, tuned.info, images), atol=1e-6
    )


def _batchnorm_state(model):
    return {
        layer.name: [np.array(w) for w in layer.get_weights()]
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    }


@pytest.mark.backend
def test_head_phase_leaves_backbone_and_bn_statistics_unchanged(tmp_path):
    folder = write_random_image_folder(tmp_path / "data", ["cat", "dog"], per_class=8)
    source, _ = small_classifier(["a", "b", "c"])
    before = {layer.name: [np.array(w) for w in layer.get_weights()] for layer in source.layers}
    result = fine_tune(source, folder, head_epochs=2, fine_tune_epochs=0, batch_size=4, verbose=0)
    changed = []
    for layer in result.model.layers:
        if layer.name in before and layer.name != "fc" and layer.weights:
            for old, new in zip(before[layer.name], layer.get_weights()):
                if not np.array_equal(old, new):
                    changed.append(layer.name)
    assert changed == []
    assert len(_batchnorm_state(result.model)) == 7  # ResNet-8: stem + 3 blocks x 2 BN layers
    assert result.model.get_layer("fc").output.shape[-1] == 2
    assert result.info.class_names == ["cat", "dog"]


def test_unfreezing_top_stage_trains_only_it_and_keeps_bn_frozen():
    model, _ = small_classifier(["a", "b"])
    unfrozen = set_trainable_stages(model, 1)
    assert unfrozen and all(name.startswith("layer3.") for name in unfrozen)
    assert not any("bn" in name for name in unfrozen)
    before = {layer.name: [np.array(w) for w in layer.get_weights()] for layer in model.layers}
    bn_before = _batchnorm_state(model)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    model.train_on_batch(rng.normal(size=(4, 32, 32, 3)).astype("float32"), np.array([0, 1, 0, 1]))
    for layer in model.layers:
        if not layer.weights:
            continue
        same = all(np.array_equal(a, b) for a, b in zip(before[layer.name], layer.get_weights()))
        assert same == (layer.name not in unfrozen and layer.name != "fc"), layer.name
    for name, weights in _batchnorm_state(model).items():
        for old, new in zip(bn_before[name], weights):
            np.testing.assert_array_equal(old, new)

    assert set_trainable_stages(model, "all", train_batchnorm=True)[0] == "conv1"
    with pytest.raises(ValueError, match="unfreeze"):
        set_trainable_stages(model, 4)


def test_dataset_input_with_index_split_under_a_strategy(tmp_path):
    images = keras.utils.image_dataset_from_directory(
        _tiny_folder(tmp_path, per_class=10),
        image_size=(24, 24), batch_size=5, shuffle=False, verbose=False,
    )
    source, _ = small_classifier(["x", "y"], input_size=(24, 24))
    context = resolve_distribution("mirrored")  # the training pipeline's: MirroredStrategy over the CPU here
    strategy = context.strategy
    assert isinstance(strategy, tf.distribute.MirroredStrategy)
    result = fine_tune(
        source, images, validation_fraction=0.25, head_epochs=1, fine_tune_epochs=1, batch_size=4,
        distribution=context, verbose=0,
    )
    assert result.info.class_names == ["cat", "dog"]  # taken from dataset.class_names
    assert set(result.history) == {"head", "fine_tune"}
    assert "val_loss" in result.history["head"]
    assert strategy.extended.variable_created_in_scope(result.model.get_layer("conv1").kernel.value)

    # The caller's own scope works too.
    with strategy.scope():
        again = fine_tune(source, images, class_names=["c", "d"], head_epochs=1, fine_tune_epochs=0,
                          validation_fraction=0, batch_size=4, verbose=0)
    assert again.info.class_names == ["c", "d"]
    assert again.info.extra["monitor"] == "loss"


def test_one_hot_batched_dataset_needs_class_names():
    images = tf.data.Dataset.from_tensor_slices(
        (np.zeros((4, 32, 32, 3), np.uint8), tf.one_hot([0, 1, 0, 1], 2))
    ).batch(2)
    with pytest.raises(ValueError, match="class_names"):
        fine_tune("resnet20", images, weights=None, verbose=0)


def test_empty_folder_is_rejected(tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "dog").mkdir()
    with pytest.raises(ValueError, match="no JPEG/PNG/GIF/BMP images"):
        fine_tune("resnet20", tmp_path, weights=None, verbose=0)
    with pytest.raises(ValueError, match="no class sub-folders"):
        fine_tune("resnet20", tmp_path / "cat", weights=None, verbose=0)


def test_one_class_folder_is_rejected(tmp_path):
    folder = _tiny_folder(tmp_path, classes=("cat",))
    with pytest.raises(ValueError, match="at least 2 classes"):
        fine_tune("resnet20", folder, weights=None, verbose=0)


def test_non_image_files_are_skipped_with_a_warning(tmp_path):
    folder = _tiny_folder(tmp_path, per_class=4)
    (folder / "cat" / "notes.txt").write_text("not an image")
    (folder / "dog" / "broken.jpg").write_bytes(b"neither is this")
    source, _ = small_classifier(["a", "b"])
    with pytest.warns(UserWarning, match="Skipped 2 non-image"):
        result = fine_tune(source, folder, head_epochs=1, fine_tune_epochs=0, batch_size=4, verbose=0)
    assert result.info.class_names == ["cat", "dog"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(head_epochs=0), "head_epochs"),
        (dict(validation_fraction=1.0), "validation_fraction"),
        (dict(batch_size=0), "batch_size"),
        (dict(dropout=1.0), "dropout"),
    ],
)
def test_bad_arguments_name_themselves(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fine_tune("resnet20", tmp_path, weights=None, verbose=0, **kwargs)


def test_model_argument_must_be_a_zoo_network():
    plain = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="avgpool"):
        keras_resnets.tasks.finetune.build_classifier(plain, 2)
    with pytest.raises(ValueError, match="registry name"):
        keras_resnets.tasks.finetune.build_classifier(42, 2)


def test_preprocessing_and_class_names_follow_the_weights_record():
    from keras_resnets.tasks.model_info import class_names_for, classifier_preprocessing

    resnet50 = classifier_preprocessing("resnet50", "imagenet", (224, 224))
    assert resnet50.resize_size == 256 and resnet50.input_size == (224, 224)
    assert classifier_preprocessing("resnet50", "imagenet", (160, 160)).resize_size == 182  # same 0.875 crop fraction
    assert classifier_preprocessing("resnet50", "tv2_in1k", (224, 224)).resize_size == 232
    assert classifier_preprocessing("resnet20", None, (32, 32)).resize_size == 32
    assert classifier_preprocessing(None, None, (24, 24)).resize_size == 24  # unknown backbone: CIFAR-like size
    assert class_names_for("resnet20", "cifar10", 10)[:3] == ["airplane", "automobile", "bird"]
    assert class_names_for("resnet50", "imagenet", 1000)[0].startswith("tench")
    assert class_names_for("resnet20", "/some/file.npz", 3) == ["0", "1", "2"]
