"""Weight sets as data: one frozen record per published set of pretrained weights.

A record says where the weights live (Hub repository, pinned revision, file, sha256), how they are
stored (file format), what they predict (classes and where the class names come from), how inputs
must be prepared (preprocessing), how good they are (metrics and the source of each number), and
under which license and from which origin they were published (provenance).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Optional, Tuple

FILE_FORMATS = ("timm-safetensors", "torch-npz", "keras-weights-h5")
CLASS_NAME_SOURCES = ("imagenet-1k", "cifar-10")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
CROP_MODES = ("center", "squash")


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How images become network inputs for a weight set or a trained classifier (evaluation transform).

    In the default ``crop_mode="center"`` (timm's and torchvision's evaluation transform) an image is
    resized, keeping its aspect ratio, so that its shorter side is ``resize_size =
    floor(max(input_size) / crop_pct)``, with an antialiased `interpolation` filter, and the central
    `input_size` is cropped; :meth:`geometry` gives the exact sizes and offsets every path uses. With
    ``crop_mode="squash"`` the whole image is resized to `input_size` (aspect ratio not kept), for data
    that is already framed, such as CIFAR-sized images. Pixels are then scaled from 0..255 to 0..1 and
    normalised per channel with `mean` and `std`.

    Attributes:
        mean: per-channel RGB mean of 0..1 pixels.
        std: per-channel RGB standard deviation of 0..1 pixels.
        input_size: (height, width) the network sees; an int means a square.
        crop_pct: fraction of the resized image's shorter side kept by the centre crop, in (0, 1].
        interpolation: resize filter ("bilinear", "bicubic" or "nearest"), antialiased when shrinking.
        note: anything else worth knowing (e.g. a different test resolution).
        crop_mode: "center" (resize the shorter side, then centre-crop) or "squash" (resize the whole
            image to `input_size`; needs ``crop_pct=1``).
    """

    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    input_size: Tuple[int, int]
    crop_pct: float = 1.0
    interpolation: str = "bilinear"
    note: str = ""
    crop_mode: str = "center"

    def __post_init__(self):
        object.__setattr__(self, "input_size", _size_pair(self.input_size))
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"`interpolation` must be one of {INTERPOLATIONS}. Received: interpolation={self.interpolation!r}"
            )
        if isinstance(self.crop_pct, bool) or not isinstance(self.crop_pct, numbers.Real) or not 0 < self.crop_pct <= 1:
            raise ValueError(f"`crop_pct` must be a number in (0, 1]. Received: crop_pct={self.crop_pct!r}")
        if self.crop_mode not in CROP_MODES:
            raise ValueError(f"`crop_mode` must be one of {CROP_MODES}. Received: crop_mode={self.crop_mode!r}")
        if self.crop_mode == "squash" and self.crop_pct != 1:
            raise ValueError(
                "`crop_mode='squash'` resizes the whole image to `input_size`, so `crop_pct` must be 1. "
                f"Received: crop_pct={self.crop_pct!r}"
            )
        for argument in ("mean", "std"):
            values = getattr(self, argument)
            if (
                isinstance(values, (str, bytes))
                or len(values) != 3
                or any(isinstance(v, bool) or not isinstance(v, numbers.Real) for v in values)
            ):
                raise ValueError(f"`{argument}` must be 3 numbers (R, G, B). Received: {argument}={values!r}")
            object.__setattr__(self, argument, tuple(float(v) for v in values))
        if any(s <= 0 for s in self.std):
            raise ValueError(f"`std` values must be > 0. Received: std={self.std!r}")
        object.__setattr__(self, "crop_pct", float(self.crop_pct))

    @property
    def resize_size(self) -> Optional[int]:
        """Shorter side an image is resized to before the centre crop; None in "squash" mode."""
        if self.crop_mode == "squash":
            return None
        return int(math.floor(max(self.input_size) / self.crop_pct))

    def with_input_size(self, input_size) -> "Preprocessing":
        """The same transform (statistics, filter, crop fraction) at another network input size."""
        return dataclasses.replace(self, input_size=_size_pair(input_size))

    def geometry(self, height, width, minimum=min):
        """Where the evaluation transform of an image of `height` x `width` takes its pixels.

        Args:
            height, width: the image size: Python ints, or integer tensors of a graph whose image size
                is unknown until it runs.
            minimum: the element-wise minimum for those values (``min``, ``tf.minimum``, ...).

        Returns:
            ``(resized_height, resized_width, top, left)``: resize the whole image to the first two,
            then crop `input_size` starting at row `top`, column `left`.
        """
        if self.crop_mode == "squash":
            return self.input_size[0], self.input_size[1], 0, 0
        return center_crop_geometry(height, width, self.input_size, self.resize_size, minimum)

    def to_dict(self) -> dict:
        """A JSON-ready dict; ``resize_size`` is included for readers of the older format."""
        return {
            "input_size": list(self.input_size),
            "resize_size": self.resize_size,
            "crop_pct": self.crop_pct,
            "crop_mode": self.crop_mode,
            "interpolation": self.interpolation,
            "mean": list(self.mean),
            "std": list(self.std),
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Preprocessing":
        """The inverse of :meth:`to_dict`; also reads the older format without ``crop_pct`` (``input_size``
        and ``resize_size``, None meaning the whole image is resized), as in early ``keras_resnets.json``."""
        if not isinstance(data, dict) or not {"input_size", "mean", "std"} <= set(data):
            raise ValueError(f"A preprocessing description needs 'input_size', 'mean' and 'std'. Received: {data!r}")
        size = _size_pair(data["input_size"])
        resize_size = data.get("resize_size")
        if "crop_pct" in data:
            crop_pct, crop_mode = data["crop_pct"], data.get("crop_mode", "center")
        elif resize_size is None:
            crop_pct, crop_mode = 1.0, "squash"
        else:
            crop_pct, crop_mode = _crop_pct_for(max(size), resize_size), "center"
        pre = cls(
            mean=tuple(data["mean"]),
            std=tuple(data["std"]),
            input_size=size,
            crop_pct=crop_pct,
            interpolation=data.get("interpolation", "bilinear"),
            note=data.get("note", ""),
            crop_mode=crop_mode,
        )
        if "resize_size" in data and resize_size != pre.resize_size:
            raise ValueError(
                f"`resize_size` {resize_size!r} contradicts crop_pct {pre.crop_pct!r} and input_size {list(size)} "
                f"(which give {pre.resize_size!r}). Received: {data!r}"
            )
        return pre


def center_crop_geometry(height, width, crop_size, resize_size, minimum=min):
    """torchvision's ``Resize(resize_size)`` then ``CenterCrop(crop_size)``, as sizes and offsets.

    The shorter side becomes `resize_size` and the longer ``int(resize_size * long / short)``; the crop
    starts at ``int(round((resized - crop) / 2))`` (Python's round: halves go to the even neighbour).
    Integer arithmetic only, so it gives the same numbers on Python ints and on integer tensors.

    Args:
        height, width: image size (ints or integer tensors).
        crop_size: (height, width) of the crop.
        resize_size: the shorter side after resizing; at least the larger crop side.
        minimum: element-wise minimum for `height` and `width` (``min`` for ints).

    Returns:
        ``(resized_height, resized_width, top, left)``.
    """
    crop_height, crop_width = crop_size
    shorter = minimum(height, width)
    # resize * side // shorter is resize_size for the shorter side and the truncated product for the longer.
    resized_height = resize_size * height // shorter
    resized_width = resize_size * width // shorter
    return resized_height, resized_width, _half_even(resized_height - crop_height), _half_even(resized_width - crop_width)


def _half_even(excess):
    """``round(excess / 2)`` with halves to even, for non-negative integers (ints or tensors)."""
    half = excess // 2
    return half + (excess % 2) * (half % 2)


def _size_pair(size) -> Tuple[int, int]:
    pair = (size, size) if isinstance(size, numbers.Integral) and not isinstance(size, bool) else size
    try:
        pair = tuple(pair)
    except TypeError:
        pair = ()
    if len(pair) != 2 or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1 for s in pair):
        raise ValueError(
            f"`input_size` must be a positive int or (height, width) positive ints. Received: input_size={size!r}"
        )
    return int(pair[0]), int(pair[1])


def _crop_pct_for(size: int, resize_size) -> float:
    """The crop_pct with ``floor(size / crop_pct) == resize_size`` (older files stored resize_size)."""
    if isinstance(resize_size, bool) or not isinstance(resize_size, numbers.Integral) or resize_size < size:
        raise ValueError(
            f"`resize_size` must be an integer at least the larger input side {size}. Received: resize_size={resize_size!r}"
        )
    crop_pct = size / resize_size
    # size / (size / r) can land just below r in floating point; step crop_pct down until floor() gives r.
    while math.floor(size / crop_pct) < resize_size:
        crop_pct = math.nextafter(crop_pct, 0.0)
    return crop_pct


@dataclasses.dataclass(frozen=True)
class Metrics:
    """Accuracy of a weight set and where the numbers come from (None where no number is recorded)."""

    top1: Optional[float]
    top5: Optional[float]
    dataset: str
    source: str


@dataclasses.dataclass(frozen=True)
class WeightsRecord:
    """One set of pretrained weights for one registered model.

    Attributes:
        model: registered model name ("resnet50").
        tag: weight tag, unique per model ("tv_in1k", "cifar10").
        repo_id: Hugging Face Hub repository, or None where the weights are not published yet.
        revision: full 40-hex commit of `repo_id` the file is pinned to, or None (see `pin_note`).
        filename: file inside the repository.
        sha256: sha256 of that file, or None (see `pin_note`).
        pin_note: for maintainers: why `revision`/`sha256` are missing and how the file is verified
            meanwhile, or how to publish it (never shown in user-facing errors).
        file_format: "timm-safetensors" (torchvision/timm state dict), "torch-npz" (torch state dict
            as numpy arrays) or "keras-weights-h5" (Keras-native weights).
        classes: number of classifier outputs.
        class_names: where the class names come from ("imagenet-1k" or "cifar-10").
        preprocessing: the evaluation transform the metrics were measured with.
        metrics: top-1/top-5 accuracy and their source.
        license: license of the weights (SPDX identifier).
        provenance: where the weights were trained and published, and how they got here.
        description: one line for tables.
        local_alternative: for users, where `repo_id` is None: how to load the same weights from a local
            file instead (shown in errors and listings).
    """

    model: str
    tag: str
    repo_id: Optional[str]
    revision: Optional[str]
    filename: str
    sha256: Optional[str]
    file_format: str
    classes: int
    class_names: str
    preprocessing: Preprocessing
    metrics: Metrics
    license: str
    provenance: str
    pin_note: str = ""
    description: str = ""
    local_alternative: str = ""

    def __post_init__(self):
        if self.file_format not in FILE_FORMATS:
            raise ValueError(f"`file_format` must be one of {FILE_FORMATS}. Received: {self.file_format!r}")
        if self.class_names not in CLASS_NAME_SOURCES:
            raise ValueError(f"`class_names` must be one of {CLASS_NAME_SOURCES}. Received: {self.class_names!r}")
        if self.revision is not None and not _is_hex(self.revision, 40):
            raise ValueError(f"`revision` must be a full 40-hex commit id or None. Received: {self.revision!r}")
        if self.sha256 is not None and not _is_hex(self.sha256, 64):
            raise ValueError(f"`sha256` must be 64 hex digits or None. Received: {self.sha256!r}")
        if self.repo_id is None and not self.local_alternative:
            raise ValueError(f"Record {self.name} is not published; `local_alternative` must say how to load it.")
        if (self.revision is None or self.sha256 is None) and not self.pin_note:
            raise ValueError(f"Record {self.name} lacks a revision or sha256 pin; `pin_note` must say why.")

    @property
    def name(self) -> str:
        """Unique name of the weight set: ``"{model}.{tag}"`` (timm style, e.g. "resnet50.tv_in1k")."""
        return f"{self.model}.{self.tag}"

    @property
    def published(self) -> bool:
        """Whether the weights can be downloaded from the Hub."""
        return self.repo_id is not None

    @property
    def pinned(self) -> bool:
        """Whether both the revision and the sha256 of the file are known."""
        return self.revision is not None and self.sha256 is not None

    def summary(self) -> str:
        """One line for listings: name, source, pin ("pinned", "sha256" or "unpinned"), top-1 and license."""
        top1 = "n/a" if self.metrics.top1 is None else f"{self.metrics.top1:.2f}"
        where = self.repo_id or "not on the Hub yet"
        # "sha256": the file's sha256 is recorded but not yet the revision (the project's own weights).
        pin = "pinned" if self.pinned else "sha256" if self.sha256 else "unpinned"
        return f"{self.name:24s} {where:36s} {pin:8s} top-1 {top1:>6s}  {self.license}"


def _is_hex(value, length: int) -> bool:
    return isinstance(value, str) and len(value) == length and all(c in "0123456789abcdef" for c in value)
