"""The feature-extractor checks every zoo model passes (tests/models/test_features.py), shared with
tests/architecture/test_deepest_nets.py, which makes them on its one build of ResNet-1202 and plain-1202."""

import keras
import numpy as np

import keras_resnets
from keras_resnets.models.features import feature_shapes


def assert_feature_maps(name, extractor):
    """`extractor`'s maps of model `name`: the stated levels, strides, channels and layers, and at two input
    sizes (one of them odd) the stated ``ceil(size / stride)`` shapes, also as ``feature_shapes`` gives them.

    `extractor` takes any input size and returns a dict of maps keyed "P{level}"; its ``feature_info``
    describes them.
    """
    spec = keras_resnets.model_entry(name).spec
    infos = extractor.feature_info
    expected_levels = [2, 3, 4, 5] if spec.family == "imagenet" else [0, 1, 2]
    assert [info.level for info in infos] == expected_levels
    assert [info.stride for info in infos] == [2 ** level for level in expected_levels]
    assert [info.channels for info in infos] == [f * spec.expansion for f in spec.stage_filters]
    assert [info.layer for info in infos] == [f"layer{i + 1}.{n - 1}.out" for i, n in enumerate(spec.stage_blocks)]
    # Odd sizes check the ceil(size / stride) rule the docs state. A direct call in inference mode: two
    # input sizes would make predict_on_batch trace the whole graph twice (minutes for the 1202-layer nets).
    for height, width in ((32, 40), (37, 45)) if spec.family == "imagenet" else ((8, 12), (13, 9)):
        outputs = extractor(np.zeros((1, height, width, 3), "float32"), training=False)
        outputs = {key: keras.ops.convert_to_numpy(value) for key, value in outputs.items()}
        assert sorted(outputs) == sorted(info.name for info in infos)
        for info in infos:
            assert outputs[info.name].shape == (1, -(-height // info.stride), -(-width // info.stride), info.channels)
        assert {k: v.shape[1:] for k, v in outputs.items()} == feature_shapes(name, (height, width))
