"""Images cannot exhaust memory or crash a run: a pixel limit checked from the header, odd formats, corrupt files."""

import io
import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import REPO_ROOT
from helpers.serving import small_classifier, write_random_image_folder
from keras_resnets.data import image_folder
from keras_resnets.data.finetune_data import resolve_training_data
from keras_resnets.data.image_folder import ImageFileError, ImageTooLargeError
from keras_resnets.tasks.predict import decode_image_source, predict_images

BOMB_SIDE = 20000  # 400 megapixels: 1.2 GB as decoded RGB, about 50 kB on disk.


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png_bomb(path, side=BOMB_SIDE):
    """A valid 1-bit grayscale PNG of `side` x `side` zeros, compressed row by row (never in memory whole)."""
    compressor = zlib.compressobj(9)
    row = b"\0" * (1 + (side + 7) // 8)  # Filter byte + packed bits.
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    with open(path, "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", body)
                     + _png_chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    return write_png_bomb(tmp_path_factory.mktemp("bomb") / "bomb.png")


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


RGB = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
ODD_BUT_VALID = {
    "palette.png": lambda: _encode(Image.fromarray(RGB).convert("P"), "PNG"),
    "alpha.png": lambda: _encode(Image.fromarray(RGB).convert("RGBA"), "PNG"),
    "gray_alpha.png": lambda: _encode(Image.fromarray(RGB).convert("LA"), "PNG"),
    "16bit.png": lambda: _encode(Image.fromarray(RGB[..., 0].astype(np.uint16) * 257), "PNG"),
    "1bit.png": lambda: _encode(Image.fromarray(RGB).convert("1"), "PNG"),
    "gray.png": lambda: _encode(Image.fromarray(RGB).convert("L"), "PNG"),
    "gray.jpg": lambda: _encode(Image.fromarray(RGB).convert("L"), "JPEG"),
    "cmyk.jpg": lambda: _encode(Image.fromarray(RGB).convert("CMYK"), "JPEG"),
    "progressive.jpg": lambda: _encode(Image.fromarray(RGB), "JPEG", progressive=True),
    "palette.bmp": lambda: _encode(Image.fromarray(RGB).convert("P"), "BMP"),
    "palette.gif": lambda: _encode(Image.fromarray(RGB).convert("P"), "GIF"),
}
BROKEN = {
    "1bit.bmp": lambda: _encode(Image.fromarray(RGB).convert("1"), "BMP"),  # TensorFlow cannot decode it.
    "truncated.png": lambda: _encode(Image.fromarray(RGB), "PNG")[:200],
    "truncated.jpg": lambda: _encode(Image.fromarray(RGB), "JPEG")[:300],
    "random.jpg": lambda: b"\xff\xd8\xff" + np.random.default_rng(1).bytes(500),
    "webp_named.png": lambda: _encode(Image.fromarray(RGB), "WEBP"),
    "empty.png": lambda: b"",
    "text.jpg": lambda: b"hello, not an image",
}


def test_image_bomb_is_refused_from_its_header_everywhere(bomb):
    assert os.path.getsize(bomb) < 2_000_000
    with pytest.raises(ImageTooLargeError, match=r"bomb\.png.*refused before decoding.*more pixels than the limit of 40,000,000"):
        image_folder.check_image_file(bomb)
    with pytest.raises(ImageTooLargeError, match=r"bomb\.png"):
        decode_image_source(str(bomb), str(bomb))
    with pytest.raises(ImageTooLargeError, match="<bytes 0>"):
        decode_image_source(bomb.read_bytes(), "<bytes 0>")
    with pytest.raises(tf.errors.InvalidArgumentError, match="refused before decoding"):
        image_folder.decode_image(tf.constant(bomb.read_bytes()))
    dataset = image_folder.image_dataset([str(bomb)])
    with pytest.raises(tf.errors.InvalidArgumentError, match="refused before decoding"):
        next(iter(dataset))


def test_header_size_is_read_for_every_format(bomb):
    """The limit applies to sizes PIL's own guard lets through, read from each format's header."""
    for fmt in ("PNG", "JPEG", "GIF", "BMP"):
        encoded = _encode(Image.fromarray(np.zeros((300, 500, 3), np.uint8)), fmt)
        with pytest.raises(ImageTooLargeError, match=r"500x300 = 150,000 pixels.*limit of 149,999"):
            image_folder.check_image_file(encoded, "<bytes>", max_pixels=149_999)
        height, width, supported = image_folder.encoded_image_size(tf.constant(encoded))
        assert (int(height), int(width), bool(supported)) == (300, 500, True), fmt
    height, width, _ = image_folder.encoded_image_size(tf.constant(bomb.read_bytes()))
    assert (int(height), int(width)) == (BOMB_SIDE, BOMB_SIDE)


def test_pixel_limit_is_configurable(monkeypatch):
    small = _encode(Image.fromarray(RGB), "PNG")  # 600 pixels
    assert decode_image_source(small, "<bytes 0>").shape == (20, 30, 3)
    with pytest.raises(ImageTooLargeError, match="limit of 599"):
        decode_image_source(small, "<bytes 0>", max_pixels=599)
    monkeypatch.setenv(image_folder.MAX_IMAGE_PIXELS_ENV, "599")
    with pytest.raises(ImageTooLargeError):
        decode_image_source(small, "<bytes 0>")
    with pytest.raises(ImageTooLargeError):
        decode_image_source(RGB, "<array 0>")
    with pytest.raises(tf.errors.InvalidArgumentError, match="more than 599 pixels"):
        image_folder.decode_image(tf.constant(small))
    assert decode_image_source(small, "<bytes 0>", max_pixels=600).shape == (20, 30, 3)  # Argument wins.
    monkeypatch.setenv(image_folder.MAX_IMAGE_PIXELS_ENV, "lots")
    with pytest.raises(ValueError, match="KERAS_RESNETS_MAX_IMAGE_PIXELS.*'lots'"):
        image_folder.max_image_pixels()
    with pytest.raises(ValueError, match="max_image_pixels=0"):
        image_folder.max_image_pixels(0)


_MEMORY_PROBE = """
import json, resource, sys
import tensorflow as tf
from keras_resnets.tasks.predict import decode_image_source
decode_image_source(sys.argv[2], "warm-up")  # Import and warm the decoder before the baseline.
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
outcome = "decoded"
try:
    decode_image_source(sys.argv[1], sys.argv[1])
except ValueError as error:
    outcome = type(error).__name__
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"outcome": outcome, "grew_mb": (after - before) / 1024}))
"""


def test_image_bomb_peak_memory_stays_bounded(bomb, tmp_path):
    """In a fresh process, refusing the bomb raises the peak RSS by far less than its 1.2 GB of pixels."""
    small = tmp_path / "small.png"
    Image.fromarray(RGB).save(small)
    environment = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    environment.pop(image_folder.MAX_IMAGE_PIXELS_ENV, None)
    result = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(bomb), str(small)], env=environment,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["outcome"] == "ImageTooLargeError"
    assert report["grew_mb"] < 100, report  # Decoding would need 20000 * 20000 * 3 bytes = 1144 MB.


@pytest.mark.parametrize("name", sorted(ODD_BUT_VALID))
def test_odd_but_valid_images_decode_to_rgb(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(ODD_BUT_VALID[name]())
    image = decode_image_source(str(path), str(path))
    assert image.shape == (20, 30, 3) and image.dtype == tf.uint8
    image_folder.check_image_file(path, verify=True)


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_images_give_a_clear_error_naming_the_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(BROKEN[name]())
    with pytest.raises(ValueError, match=name.replace(".", r"\.")):
        decode_image_source(str(path), str(path))
        image_folder.check_image_file(path, verify=True)  # Truncated data may decode partially in TF.
    with pytest.raises(ImageFileError, match=name.replace(".", r"\.")):
        image_folder.check_image_file(path, verify=True)


def test_fine_tuning_skips_unusable_images_with_a_warning_naming_them(tmp_path, bomb):
    root = write_random_image_folder(tmp_path / "data", ["cat", "dog"], per_class=4)
    os.symlink(bomb, root / "cat" / "huge.png")
    for name, make in BROKEN.items():
        content = make()
        if content[:3] in (b"\x89PN", b"\xff\xd8\xff", b"BM"):  # Files the folder scan takes for images.
            (root / "dog" / name).write_bytes(content)
    with pytest.warns(UserWarning, match=r"(?s)Skipped \d+ unusable image.*huge\.png.*truncated\.jpg"):
        train, validation, names, count = resolve_training_data(str(root), None, 0.25, None, seed=0)
    assert names == ["cat", "dog"] and count == 6  # 8 good images, 2 held out; every bad one left out.
    assert sum(1 for _ in train) == 6 and sum(1 for _ in validation) == 2  # A full pass: nothing fails.


def test_predict_refuses_the_bomb_and_predicts_odd_images(tmp_path, bomb):
    model, info = small_classifier(["a", "b"])
    with pytest.raises(ImageTooLargeError, match=r"bomb\.png"):
        predict_images(model, info, [str(bomb)])
    odd = tmp_path / "cmyk.jpg"
    odd.write_bytes(ODD_BUT_VALID["cmyk.jpg"]())
    (prediction,) = predict_images(model, info, [str(odd)], max_image_pixels=10_000)
    assert prediction.labels[0] in ("a", "b")
    with pytest.raises(ImageTooLargeError):
        predict_images(model, info, [str(odd)], max_image_pixels=100)
