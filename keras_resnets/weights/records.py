"""Weight sets as data: one frozen record per published set of pretrained weights.

A record says where the weights live (Hub repository, pinned revision, file, sha256), how they are
stored (file format), what they predict (classes and where the class names come from), how inputs
must be prepared (preprocessing), how good they are (metrics and the source of each number), and
under which license and from which origin they were published (provenance).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Tuple

FILE_FORMATS = ("timm-safetensors", "torch-npz", "keras-weights-h5")
CLASS_NAME_SOURCES = ("imagenet-1k", "cifar-10")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How images must be prepared for a weight set (evaluation transform).

    Pixels are scaled from 0..255 to 0..1, then normalised per channel with `mean` and `std`. For
    evaluation an image is resized so that its shorter side is ``resize_size`` and centre-cropped
    to ``input_size`` (timm's ``crop_pct`` convention: ``resize_size = floor(input_size / crop_pct)``).

    Attributes:
        mean: per-channel RGB mean of 0..1 pixels.
        std: per-channel RGB standard deviation of 0..1 pixels.
        input_size: side of the square input the weights were evaluated at.
        crop_pct: fraction of the resized image kept by the centre crop.
        interpolation: resize filter ("bilinear", "bicubic" or "nearest").
        note: anything else worth knowing (e.g. a different test resolution).
    """

    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    input_size: int
    crop_pct: float = 1.0
    interpolation: str = "bilinear"
    note: str = ""

    def __post_init__(self):
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"`interpolation` must be one of {INTERPOLATIONS}. Received: interpolation={self.interpolation!r}"
            )
        if not 0 < self.crop_pct <= 1:
            raise ValueError(f"`crop_pct` must be in (0, 1]. Received: crop_pct={self.crop_pct!r}")

    @property
    def resize_size(self) -> int:
        """Shorter side an image is resized to before the centre crop."""
        return int(math.floor(self.input_size / self.crop_pct))


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
        """One line for listings: name, source, top-1 and license."""
        top1 = "n/a" if self.metrics.top1 is None else f"{self.metrics.top1:.2f}"
        where = self.repo_id or "not on the Hub yet"
        pin = "pinned" if self.pinned else "unpinned"
        return f"{self.name:24s} {where:30s} {pin:8s} top-1 {top1:>6s}  {self.license}"


def _is_hex(value, length: int) -> bool:
    return isinstance(value, str) and len(value) == length and all(c in "0123456789abcdef" for c in value)
