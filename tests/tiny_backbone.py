"""A backbone for the tests: two strided convolutions with seeded weights, registered
as `test_tiny` (16 channels, a grid of image_size / 32 a side).

It stands in for EfficientNet-Lite0 wherever a test checks what vqa does with a
backbone (the feature cache, training on cached grids, fine-tuning, export) rather than
the network itself; the real Lite0 is checked in test_features.py and runs in the demo
test. Imported by conftest.py, and by the `vqa` subprocesses of the tests through
VQA_PLUGINS: what a user's own backbone goes through.
"""

import keras

from vqa.features.backbones import Backbone, register_backbone

NAME = "test_tiny"


def tiny_cnn(include_top=False, weights="imagenet", input_shape=(224, 224, 3)):
    """keras.applications' constructor signature; "imagenet" weights are the seeded
    ones, the same in every process."""
    if weights not in ("imagenet", None):
        raise ValueError(f"weights: 'imagenet' or None. Received: {weights!r}")
    image = keras.Input(input_shape, name="pixels")
    x = keras.layers.Rescaling(1 / 255, name="rescale")(image)
    for i, (filters, stride) in enumerate([(8, 4), (16, 8)]):
        x = keras.layers.Conv2D(
            filters,
            3,
            strides=stride,
            padding="same",
            activation="relu",
            kernel_initializer=keras.initializers.GlorotUniform(seed=i),
            name=f"conv{i}",
        )(x)
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
        x = keras.layers.Dense(
            1000,
            activation="softmax",
            kernel_initializer=keras.initializers.GlorotUniform(seed=2),
            name="predictions",
        )(x)
    return keras.Model(image, x, name=NAME)


register_backbone(Backbone(NAME, 16, ("test_tiny.weights.h5", "test_tiny.weights.h5"), tiny_cnn))
