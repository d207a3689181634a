"""Safe image loading: any path, encoded bytes, PIL image or array in; an RGB uint8
array out.

Every mode Pillow opens is turned into 8-bit RGB (16-bit greyscale scaled, not
clipped; transparency over white), EXIF orientation is honoured, and a caller that
needs only a small image (`min_side`) gets one without the whole of a huge image being
converted: JPEGs are decoded at a reduced scale, others reduced right after decoding.
"""

from __future__ import annotations

import io
import math
import statistics
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vqa.errors import ImageError

ImageLike = str | Path | bytes | Image.Image | np.ndarray

# 10,000 x 10,000 px is accepted; larger images are refused before they are decoded.
# Pillow warns above its own limit (89 MP) and refuses at twice it, so it is raised to
# ours, deliberately, unless the application has raised or removed it already.
MAX_PIXELS = 10_000 * 10_000
if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < MAX_PIXELS:
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS

# Images are reduced to no less than this many times the side a caller needs; the
# final resize (reducing_gap=3.0 everywhere) then sees what it would have seen anyway.
_REDUCING_GAP = 3


def open_image(path: str | Path, min_side: int | None = None) -> Image.Image:
    """Open and decode an image file, honouring EXIF orientation.

    Args:
        path: the image file.
        min_side: the smallest side the caller will resize to. Larger images come back
            reduced (to at least 3 x min_side on each side); None keeps the full size.

    Raises:
        ImageError: one line naming the file, for a missing, empty, truncated, corrupt
            or oversized file, or one that is not an image.
    """
    path = Path(path)
    if not path.exists():
        raise ImageError(f"Image not found: {path}")
    if not path.is_file():
        raise ImageError(f"Not an image file (it is a directory or device): {path}")
    return _decode(path, str(path), min_side)


def decode_image(data: bytes, name: str = "image", min_side: int | None = None) -> Image.Image:
    """`open_image` for the bytes of an encoded image file; `name` is used in errors."""
    return _decode(io.BytesIO(data), name, min_side)


def to_rgb(img: Image.Image) -> Image.Image:
    """RGB, with any transparency composited over white and 16/32-bit greyscale scaled
    to 8 bits."""
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I") or img.mode == "F":
        img = _to_8bit(img)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def load_image(image: ImageLike, size: int) -> np.ndarray:
    """Return `image` as a [size, size, 3] uint8 array.

    Args:
        image: a file path, the bytes of an image file, a PIL image, or an H x W x 3
            (or H x W) uint8 array.
        size: the side the model expects; other sizes are resized (bilinear).
    """
    img = to_pil(image, min_side=size)
    if img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR, reducing_gap=3.0)
    return np.asarray(img, dtype=np.uint8)


def resize_and_crop(img: Image.Image, short_side: int, size: int) -> np.ndarray:
    """Resize (bicubic) so that the short side is `short_side`, then centre-crop to
    [size, size, 3] uint8: how a pretrained backbone's input is made."""
    img = to_rgb(img)
    w, h = img.size
    scale = short_side / min(w, h)
    full = (max(size, round(w * scale)), max(size, round(h * scale)))
    img = img.resize(full, Image.BICUBIC, reducing_gap=3.0)
    left, top = (full[0] - size) // 2, (full[1] - size) // 2
    return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)


def to_pil(image: ImageLike, min_side: int | None = None) -> Image.Image:
    """Any accepted image as an RGB PIL image, at its own size (files and bytes: reduced
    when larger than `min_side` needs, see `open_image`)."""
    if isinstance(image, (str, Path)):
        img = open_image(image, min_side)
    elif isinstance(image, (bytes, bytearray)):
        img = decode_image(bytes(image), f"({len(image):,} bytes)", min_side)
    elif isinstance(image, Image.Image):
        img = image
    elif isinstance(image, np.ndarray):
        img = _array_to_pil(image)
    else:
        raise ImageError(
            "Expected an image path, the bytes of an image file, a PIL image "
            f"or a uint8 array. Received: {type(image).__name__}"
        )
    return to_rgb(img)


def _decode(source: Path | io.BytesIO, name: str, min_side: int | None) -> Image.Image:
    # Pillow's decoders raise many types on damaged data (OSError, SyntaxError,
    # struct.error, IndexError, ...): each becomes one ImageError naming the file.
    size = source.getbuffer().nbytes if isinstance(source, io.BytesIO) else source.stat().st_size
    if size == 0:
        raise ImageError(f"Cannot read image {name}: the file is empty.")
    try:
        with warnings.catch_warnings():  # over our limit is refused below, in one line
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(source)
        with img:
            width, height = img.size
            if width * height > MAX_PIXELS:
                raise _too_large(name, f"{width:,} x {height:,} px")
            if width * height == 0:
                raise ImageError(
                    f"Cannot read image {name}: it has no pixels ({width} x {height})."
                )
            if min_side and img.format == "JPEG":
                side = _REDUCING_GAP * min_side
                img.draft(None, (side, side))  # decode at 1/2, 1/4 or 1/8 scale
            img.load()  # decode now, so truncated files fail here, not later
            small = _reduce(img, min_side)
            ImageOps.exif_transpose(small, in_place=True)
            return small
    except ImageError:
        raise
    except Image.DecompressionBombError:  # Pillow's own check, at twice our limit
        raise _too_large(name, f"over {2 * MAX_PIXELS // 1_000_000} MP") from None
    except UnidentifiedImageError:
        raise ImageError(
            f"Cannot read image {name}: not an image file in a format Pillow "
            "reads (PNG, JPEG, GIF, WebP, BMP, TIFF, ...)."
        ) from None
    except Exception as exc:  # Pillow raises many types, see above
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ImageError(f"Cannot read image {name}: {reason}") from None


def _too_large(name: str, size: str) -> ImageError:
    return ImageError(
        f"Cannot read image {name}: it is {size}, over the "
        f"{MAX_PIXELS // 1_000_000} MP limit (10,000 x 10,000 px); "
        "make it smaller first."
    )


def _reduce(img: Image.Image, min_side: int | None) -> Image.Image:
    """`img` shrunk by a whole factor that keeps both sides >= 3 x min_side (or `img`)."""
    if not min_side:
        return img
    factor = min(img.size) // (_REDUCING_GAP * min_side)
    if factor < 2:
        return img
    exif = img.getexif()
    if img.mode not in ("L", "LA", "RGB", "RGBA", "CMYK", "I", "F"):
        img = to_rgb(img)  # palette, 1-bit and 16-bit images cannot be box-reduced
    small = img.reduce(factor)
    if exif:
        small.info["exif"] = exif.tobytes()  # so that the orientation is still applied
    return small


def _to_8bit(img: Image.Image) -> Image.Image:
    """16-bit greyscale scaled from 0-65535 to 0-255 (Pillow would clip at 255);
    32-bit integer and float images stretched from their own range."""
    values = np.asarray(img)
    if img.mode.startswith("I;16"):
        return Image.fromarray((values >> 8).astype(np.uint8), "L")
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) * (255.0 / (high - low or 1.0))
    return Image.fromarray(scaled.round().astype(np.uint8), "L")


def _array_to_pil(array: np.ndarray) -> Image.Image:
    if array.dtype != np.uint8:
        raise ImageError(f"Image arrays must be uint8 (0-255). Received dtype={array.dtype}")
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4)):
        if min(array.shape[:2]) == 0:
            raise ImageError(f"Image array is empty. Received shape={array.shape}")
        return Image.fromarray(array)
    raise ImageError(
        f"Image arrays must be H x W, H x W x 3 or H x W x 4. Received shape={array.shape}"
    )


def native_image_size(widths: Sequence[int], heights: Sequence[int]) -> int:
    """The backbone input size that suits images of these sizes: their median short side
    rounded up to a multiple of 32, kept within 64-224. Images smaller than 224 px are then
    not scaled up further than the grid's stride needs (easy-VQA's 64 px: 64, a 2x2 grid;
    Sort-of-CLEVR's 75: 96), and photos get the ImageNet 224 (a 7x7 grid)."""
    short = statistics.median(map(min, widths, heights))
    return int(min(224, max(64, math.ceil(short / 32) * 32)))
