"""keras-resnets: every network of He et al. (2015), residual and plain, as Keras 3 functional models."""

from keras_resnets.models.builder import build_resnet
from keras_resnets.architecture.layers import ZeroPadShortcut
from keras_resnets.models.zoo import (
    PlainNet18,
    PlainNet20,
    PlainNet32,
    PlainNet34,
    PlainNet44,
    PlainNet50,
    PlainNet56,
    PlainNet101,
    PlainNet110,
    PlainNet152,
    PlainNet1202,
    ResNet,
    ResNet18,
    ResNet20,
    ResNet32,
    ResNet34,
    ResNet44,
    ResNet50,
    ResNet56,
    ResNet101,
    ResNet110,
    ResNet152,
    ResNet1202,
)
from keras_resnets.data.preprocessing import decode_predictions, prepare_image, preprocess_input
from keras_resnets.models.registry import get_model, list_models, model_entry
from keras_resnets.models.features import FeatureInfo, feature_extractor, feature_info
from keras_resnets.architecture.specs import ResNetSpec, cifar_spec, imagenet_spec
from keras_resnets.weights import WeightsRecord, download_weights, get_weights_record, list_weights, push_to_hub

__version__ = "0.1.0"
