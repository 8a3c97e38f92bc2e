"""Independent test helpers: timm/torchvision-layout ResNet state dicts and a numpy forward pass.

Written from torchvision's ``resnet.py`` naming and layout rules (NCHW tensors, OIHW kernels,
symmetric padding), without using keras_resnets, so conversion tests compare against something that
shares no code with the converter.
"""

from __future__ import annotations

import numpy as np

IMAGENET_LAYOUT = {  # depth -> (block, blocks per stage)
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}


def timm_resnet_state_dict(depth: int, seed: int = 0, classes: int = 1000, batches_tracked: bool = True):
    """Random float32 tensors under the real timm/torchvision key names and shapes of resnet{depth}."""
    rng = np.random.default_rng(seed)
    block, counts = IMAGENET_LAYOUT[depth]
    state = {}

    def conv(name, out_channels, in_channels, kernel):
        fan_in = in_channels * kernel * kernel
        state[f"{name}.weight"] = (rng.standard_normal((out_channels, in_channels, kernel, kernel), dtype=np.float32)
                                   * np.float32(np.sqrt(1.0 / fan_in)))

    def batch_norm(name, channels):
        state[f"{name}.weight"] = rng.uniform(0.5, 1.0, channels).astype(np.float32)
        state[f"{name}.bias"] = (0.1 * rng.standard_normal(channels)).astype(np.float32)
        state[f"{name}.running_mean"] = (0.1 * rng.standard_normal(channels)).astype(np.float32)
        state[f"{name}.running_var"] = rng.uniform(0.5, 1.5, channels).astype(np.float32)
        if batches_tracked:
            state[f"{name}.num_batches_tracked"] = np.array(1000, dtype=np.int64)

    conv("conv1", 64, 3, 7)
    batch_norm("bn1", 64)
    in_channels = 64
    for stage, (count, planes) in enumerate(zip(counts, (64, 128, 256, 512)), start=1):
        for index in range(count):
            prefix = f"layer{stage}.{index}"
            stride = 2 if stage > 1 and index == 0 else 1
            if block == "basic":
                out_channels = planes
                conv(f"{prefix}.conv1", planes, in_channels, 3)
                batch_norm(f"{prefix}.bn1", planes)
                conv(f"{prefix}.conv2", planes, planes, 3)
                batch_norm(f"{prefix}.bn2", planes)
            else:
                out_channels = planes * 4
                conv(f"{prefix}.conv1", planes, in_channels, 1)
                batch_norm(f"{prefix}.bn1", planes)
                conv(f"{prefix}.conv2", planes, planes, 3)
                batch_norm(f"{prefix}.bn2", planes)
                conv(f"{prefix}.conv3", out_channels, planes, 1)
                batch_norm(f"{prefix}.bn3", out_channels)
            if stride != 1 or in_channels != out_channels:
                conv(f"{prefix}.downsample.0", out_channels, in_channels, 1)
                batch_norm(f"{prefix}.downsample.1", out_channels)
            in_channels = out_channels
    state["fc.weight"] = (rng.standard_normal((classes, in_channels)) / np.sqrt(in_channels)).astype(np.float32)
    state["fc.bias"] = (0.01 * rng.standard_normal(classes)).astype(np.float32)
    return state


# ---- numpy forward pass in torch layout (NCHW), float64 ----------------------------------------

def conv2d(x, weight, stride=1, padding=0):
    """torch.nn.functional.conv2d without bias: x (N, C, H, W), weight (O, C, kh, kw)."""
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    out_h = (h - kh) // stride + 1
    out_w = (w - kw) // stride + 1
    patches = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    patches = patches[:, :, :out_h, :out_w]
    return np.einsum("nchwij,ocij->nohw", patches, weight, optimize=True)


def batch_norm(x, state, name, eps=1e-5):
    """Inference-mode BatchNorm2d."""
    shape = (1, -1, 1, 1)
    scale = state[f"{name}.weight"] / np.sqrt(state[f"{name}.running_var"] + eps)
    return (x - state[f"{name}.running_mean"].reshape(shape)) * scale.reshape(shape) + state[f"{name}.bias"].reshape(shape)


def max_pool_3x3_s2_p1(x):
    """torch MaxPool2d(3, stride=2, padding=1) (padding with -inf)."""
    x = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    windows = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(2, 3))[:, :, ::2, ::2]
    out_h = (x.shape[2] - 3) // 2 + 1
    out_w = (x.shape[3] - 3) // 2 + 1
    return windows[:, :, :out_h, :out_w].max(axis=(-1, -2))


def relu(x):
    return np.maximum(x, 0)


def resnet_forward(state, depth, images_nhwc):
    """Logits of a torchvision ResNet-`depth` with tensors `state` on NHWC float images."""
    state = {k: np.asarray(v, dtype=np.float64) for k, v in state.items() if not k.endswith("num_batches_tracked")}
    block, counts = IMAGENET_LAYOUT[depth]
    x = np.transpose(np.asarray(images_nhwc, dtype=np.float64), (0, 3, 1, 2))
    x = relu(batch_norm(conv2d(x, state["conv1.weight"], 2, 3), state, "bn1"))
    x = max_pool_3x3_s2_p1(x)
    for stage, count in enumerate(counts, start=1):
        for index in range(count):
            prefix = f"layer{stage}.{index}"
            stride = 2 if stage > 1 and index == 0 else 1
            identity = x
            if block == "basic":
                y = relu(batch_norm(conv2d(x, state[f"{prefix}.conv1.weight"], stride, 1), state, f"{prefix}.bn1"))
                y = batch_norm(conv2d(y, state[f"{prefix}.conv2.weight"], 1, 1), state, f"{prefix}.bn2")
            else:
                y = relu(batch_norm(conv2d(x, state[f"{prefix}.conv1.weight"]), state, f"{prefix}.bn1"))
                y = relu(batch_norm(conv2d(y, state[f"{prefix}.conv2.weight"], stride, 1), state, f"{prefix}.bn2"))
                y = batch_norm(conv2d(y, state[f"{prefix}.conv3.weight"]), state, f"{prefix}.bn3")
            if f"{prefix}.downsample.0.weight" in state:
                identity = batch_norm(conv2d(x, state[f"{prefix}.downsample.0.weight"], stride), state,
                                      f"{prefix}.downsample.1")
            x = relu(y + identity)
    features = x.mean(axis=(2, 3))
    return features @ state["fc.weight"].T + state["fc.bias"]
