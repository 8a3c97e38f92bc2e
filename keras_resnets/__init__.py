"""keras-resnets: every network of He et al. (2015), residual and plain, as Keras 3 functional models.

The public names below are imported on first use (PEP 562 module ``__getattr__``): ``import
keras_resnets`` and the registries (``list_models``, ``list_weights``) do not import Keras or
TensorFlow; ``keras_resnets.ResNet50`` imports them when it is first looked up.
"""

import importlib

from keras_resnets.version import __version__  # noqa: E402,F401 (re-exported)

from keras_resnets.models.registry import NAMED_MODELS as _NAMED_MODELS  # Plain data, no Keras.

_BUILDERS = [f"{'ResNet' if residual else 'PlainNet'}{depth}" for _, depth, residual in _NAMED_MODELS]

# public name -> module that defines it
_EXPORTS = {
    **{name: "keras_resnets.models.zoo" for name in _BUILDERS + ["ResNet"]},
    "build_resnet": "keras_resnets.models.builder",
    "ZeroPadShortcut": "keras_resnets.architecture.layers",
    "decode_predictions": "keras_resnets.data.preprocessing",
    "prepare_image": "keras_resnets.data.preprocessing",
    "preprocess_input": "keras_resnets.data.preprocessing",
    "get_model": "keras_resnets.models.registry",
    "list_models": "keras_resnets.models.registry",
    "model_entry": "keras_resnets.models.registry",
    "ResNetSpec": "keras_resnets.architecture.specs",
    "cifar_spec": "keras_resnets.architecture.specs",
    "imagenet_spec": "keras_resnets.architecture.specs",
    "WeightsRecord": "keras_resnets.weights",
    "download_weights": "keras_resnets.weights",
    "get_weights_record": "keras_resnets.weights",
    "list_weights": "keras_resnets.weights",
    "push_to_hub": "keras_resnets.weights",
    "Architecture": "keras_resnets.architecture.identity",
    "FeatureInfo": "keras_resnets.models.features",
    "feature_extractor": "keras_resnets.models.features",
    "feature_info": "keras_resnets.models.features",
    "fine_tune": "keras_resnets.tasks.finetune",
    "fold_batch_norm": "keras_resnets.models.folding",
}

_SUBPACKAGES = ("architecture", "weights", "data", "models", "tasks")

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _SUBPACKAGES:  # `keras_resnets.weights.X` after a bare `import keras_resnets`.
        return importlib.import_module(f"{__name__}.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # Later lookups skip this function.
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS) | set(_SUBPACKAGES))
