"""Safe image loading: any path, PIL image or array in; an RGB uint8 array out."""

from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vqa.errors import ImageError

ImageLike = Union[str, Path, Image.Image, np.ndarray]


def open_image(path: str | Path) -> Image.Image:
    """Open and fully decode an image file, honouring EXIF orientation."""
    path = Path(path)
    if not path.exists():
        raise ImageError(f"Image not found: {path}")
    if not path.is_file():
        raise ImageError(f"Not an image file (it is a directory or device): {path}")
    try:
        with Image.open(path) as img:
            img.load()  # decode now, so truncated files fail here, not later
            return ImageOps.exif_transpose(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
            Image.DecompressionBombError) as exc:
        raise ImageError(f"Cannot read image {path}: {exc}") from None


def to_rgb(img: Image.Image) -> Image.Image:
    """RGB, with any transparency composited over white."""
    if img.mode == "RGB":
        return img
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def load_image(image: ImageLike, size: int) -> np.ndarray:
    """Return `image` as a [size, size, 3] uint8 array.

    Args:
        image: a file path, a PIL image, or an H x W x 3 (or H x W) uint8 array.
        size: the side the model expects; other sizes are resized (bilinear).
    """
    img = to_pil(image)
    if img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR, reducing_gap=3.0)
    return np.asarray(img, dtype=np.uint8)


def to_pil(image: ImageLike) -> Image.Image:
    """Any accepted image as an RGB PIL image, at its own size."""
    if isinstance(image, (str, Path)):
        img = open_image(image)
    elif isinstance(image, Image.Image):
        img = image
    elif isinstance(image, np.ndarray):
        img = _array_to_pil(image)
    else:
        raise ImageError("Expected an image path, a PIL image or a uint8 array. "
                         f"Received: {type(image).__name__}")
    return to_rgb(img)


def _array_to_pil(array: np.ndarray) -> Image.Image:
    if array.dtype != np.uint8:
        raise ImageError(f"Image arrays must be uint8 (0-255). Received dtype={array.dtype}")
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4)):
        if min(array.shape[:2]) == 0:
            raise ImageError(f"Image array is empty. Received shape={array.shape}")
        return Image.fromarray(array)
    raise ImageError("Image arrays must be H x W, H x W x 3 or H x W x 4. "
                     f"Received shape={array.shape}")
