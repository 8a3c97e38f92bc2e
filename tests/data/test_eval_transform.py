"""Every path that turns an image into a network input applies the weights' evaluation transform.

The reference is timm/torchvision's evaluation transform written with PIL (``pil_reference`` in
weights/check_preprocessing.py, which this test shares with that maintainer tool): ``Resize`` of the
shorter side to ``floor(size / crop_pct)`` (torchvision's rule for the longer side, antialiased PIL
filter of the record), then ``CenterCrop`` (offset ``int(round(excess / 2))``). Test images are built
from real CIFAR-10 JPEGs: sharp mosaics (landscape, portrait, and one smaller than the resize so it is
upsampled) and a smooth, photo-like upsampled one. Differences are pixel levels 0..255 before
normalisation. Before the one transform, ``include_preprocessing=True`` was 5.5 to 57 levels off on
average (square crop of the whole image, no antialiasing), the tf.data/serving path 0.29 (float
single-pass resize) and prepare_image 7.6 to 15.6 for crop_pct != 0.875 (crop offsets rounded down).
"""

import keras
import numpy as np
import pytest

import keras_resnets
from keras_resnets.data import augment, transforms
from keras_resnets.data.preprocessing import ResizeCenterCrop, preprocessing_layers
from keras_resnets.weights.records import Preprocessing, center_crop_geometry
from weights import check_preprocessing as reference_tool  # The PIL reference, shared with the maintainer tool.

# Mean and largest |difference| allowed, in pixel levels: PIL computes in 8-bit fixed point, so a
# pixel may land one level away; the old include_preprocessing layers averaged 5.5 levels or more.
MEAN_TOLERANCE = 0.05
MAX_TOLERANCE = 2.0

PREPROCESSINGS = dict(reference_tool.distinct_preprocessings())
PARAMS = [pytest.param(pre, id=names[0] + (f"+{len(names) - 1}" if len(names) > 1 else "")) for pre, names in PREPROCESSINGS.items()]


def test_the_parameters_cover_every_imagenet_record_and_cifar():
    covered = {name for names in PREPROCESSINGS.values() for name in names}
    assert covered == {r.name for r in keras_resnets.list_weights()}
    assert {r.class_names for r in keras_resnets.list_weights()} == {"imagenet-1k", "cifar-10"}
    assert {pre.interpolation for pre in PREPROCESSINGS} == {"bilinear", "bicubic"}


reference = reference_tool.pil_reference
denormalize = reference_tool.denormalize


@pytest.fixture(scope="module")
def images(shared):
    """``{name: uint8 image}`` built from the first 20 test JPEGs of each CIFAR-10 class."""
    return reference_tool.reference_images(shared("data/cifar10-jpeg.tar.gz"))


def assert_matches_reference(images, pre, path, function):
    """`function(image)` (float 0..255) must be the reference on every test image, within tolerance."""
    for name, image in images.items():
        expected = reference(image, pre)
        got = np.asarray(function(image), dtype=np.float32)
        assert got.shape == expected.shape, f"{path}, {name}: shape {got.shape}, expected {expected.shape}"
        difference = np.abs(got - expected)
        assert difference.mean() <= MEAN_TOLERANCE and difference.max() <= MAX_TOLERANCE, (
            f"{path}, {name}: mean |diff| {difference.mean():.3f}, max {difference.max():.0f} pixel levels "
            f"(tolerance {MEAN_TOLERANCE} / {MAX_TOLERANCE})"
        )


@pytest.mark.parametrize("pre", PARAMS)
def test_prepare_image_is_the_reference(images, pre):
    assert_matches_reference(images, pre, "prepare_image", lambda image: keras_resnets.prepare_image(image, preprocessing=pre))


@pytest.mark.backend
@pytest.mark.parametrize("pre", PARAMS)
def test_include_preprocessing_layers_are_the_reference(images, pre):
    stack = preprocessing_layers(pre)

    def through_layers(image):
        x = keras.ops.convert_to_tensor(image[None].astype("float32"))
        for layer in stack:
            x = layer(x)
        return denormalize(keras.ops.convert_to_numpy(x)[0], pre)

    assert_matches_reference(images, pre, f"include_preprocessing ({keras.backend.backend()})", through_layers)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        # Inside a graph the image size is unknown until it runs (model.predict, SavedModel export).
        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
        def graph(x):
            for layer in stack:
                x = layer(x)
            return x

        assert_matches_reference(
            images, pre, "include_preprocessing (TF graph)",
            lambda image: denormalize(graph(image[None].astype("float32")).numpy()[0], pre),
        )


@pytest.mark.parametrize("pre", PARAMS)
def test_tensorflow_paths_are_the_reference(images, pre):
    import tensorflow as tf

    # keras-resnets predict: eager; serving signatures: a graph with unknown image size; fine-tuning: tf.data.
    assert_matches_reference(images, pre, "predict", lambda image: transforms.resize_for_model(image, pre).numpy())

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)])
    def serving(image):
        return transforms.model_inputs(image, pre)

    assert_matches_reference(images, pre, "serving", lambda image: denormalize(serving(image).numpy(), pre))

    def fine_tune(image):
        dataset = tf.data.Dataset.from_generator(lambda: iter([image]), output_signature=tf.TensorSpec([None, None, 3], tf.uint8))
        (batch,) = list(transforms.batched_model_inputs(dataset, pre, batch_size=1))
        return denormalize(batch.numpy()[0], pre)

    assert_matches_reference(images, pre, "fine-tuning (tf.data)", fine_tune)
    size, resize = pre.input_size[0], pre.resize_size
    assert_matches_reference(
        images, pre, "training eval view",
        lambda image: augment.center_crop_tf(image, size, resize, interpolation=pre.interpolation).numpy(),
    )


def test_geometry_is_torchvision_rule_on_ints_and_tensors():
    import tensorflow as tf

    sizes = [(h, w) for h in (224, 225, 257, 300, 375, 500, 501, 1000) for w in (224, 231, 333, 375, 500, 640)]
    for resize, crop in ((256, 224), (232, 224), (235, 224), (36, 32)):
        for height, width in sizes:
            short, long = min(height, width), max(height, width)
            new_long = int(resize * long / short)
            new_height, new_width = (resize, new_long) if height <= width else (new_long, resize)
            expected = (new_height, new_width, int(round((new_height - crop) / 2)), int(round((new_width - crop) / 2)))
            assert center_crop_geometry(height, width, (crop, crop), resize) == expected
            traced = center_crop_geometry(tf.constant(height), tf.constant(width), (crop, crop), resize, minimum=tf.minimum)
            assert tuple(int(v) for v in traced) == expected


def test_squash_mode_resizes_the_whole_image():
    pre = Preprocessing((0.5,) * 3, (0.25,) * 3, input_size=(24, 40), crop_mode="squash")
    assert pre.resize_size is None and pre.geometry(100, 50) == (24, 40, 0, 0)
    image = np.zeros((60, 60, 3), np.uint8)
    image[:, :30] = 255
    out = keras_resnets.prepare_image(image, preprocessing=pre)
    assert out.shape == (24, 40, 3) and out[:, :19].min() == 255 and out[:, 21:].max() == 0
    tf_out = transforms.resize_for_model(image, pre).numpy()
    assert np.abs(tf_out - out).max() <= 1
    with pytest.raises(ValueError, match="crop_pct"):
        Preprocessing((0.5,) * 3, (0.25,) * 3, input_size=32, crop_pct=0.9, crop_mode="squash")


def test_include_preprocessing_model_applies_its_record():
    model = keras_resnets.ResNet18(weights=None, include_preprocessing=True, include_top=False, pooling="avg")
    layer = model.get_layer("preprocessing.resize")
    assert isinstance(layer, ResizeCenterCrop) and layer.preprocessing == keras_resnets.get_weights_record("resnet18.tv_in1k").preprocessing
    assert tuple(model.get_layer("preprocessing.normalize").output.shape[1:3]) == (224, 224)


@pytest.mark.backend
def test_preprocessing_layers_survive_saving(images, tmp_path):
    pre = keras_resnets.get_weights_record("resnet50.a1_in1k").preprocessing
    front = keras.Sequential([keras.Input((None, None, 3)), *preprocessing_layers(pre)])
    path = tmp_path / "front.keras"
    front.save(path)
    reloaded = keras.saving.load_model(path)
    assert reloaded.layers[0].preprocessing == pre
    image = images["mosaic 150x200"][None].astype("float32")
    np.testing.assert_allclose(np.asarray(reloaded(image)), np.asarray(front(image)), atol=1e-6)


def test_prepare_image_takes_the_model(images):
    cifar = keras_resnets.ResNet20(weights=None)
    out = keras_resnets.prepare_image(images["smooth 375x500"], model=cifar)
    cifar_pre = keras_resnets.get_weights_record("resnet20.cifar10").preprocessing
    np.testing.assert_array_equal(out, reference(images["smooth 375x500"], cifar_pre))
    tv2 = keras_resnets.get_weights_record("resnet50.tv2_in1k").preprocessing
    assert keras_resnets.prepare_image(images["mosaic 150x200"], "resnet50.tv2_in1k").shape == (224, 224, 3)
    np.testing.assert_array_equal(
        keras_resnets.prepare_image(images["mosaic 150x200"], weights="tv2_in1k", model="resnet50"),
        reference(images["mosaic 150x200"], tv2),
    )
    with pytest.raises(ValueError, match="include_preprocessing=True"):
        keras_resnets.prepare_image(images["mosaic 150x200"], model=keras_resnets.ResNet20(include_preprocessing=True))
    with pytest.raises(ValueError, match="`preprocessing` must be"):
        keras_resnets.prepare_image(images["mosaic 150x200"], preprocessing="imagenet")
