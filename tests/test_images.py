"""Any image a person has: every mode and format Pillow opens, EXIF orientation, tiny and
huge images; damaged files and non-images refused with one clear line."""

import io
import struct
import subprocess
import sys
import warnings
import zlib

import numpy as np
import pytest
from conftest import draw_shape
from PIL import Image, ImageDraw

from vqa.answering import Answerer, AnswerResult
from vqa.data.images import MAX_PIXELS, decode_image, load_image, open_image, to_pil
from vqa.errors import ImageError

RED, BLUE, WHITE = (220, 30, 30), (30, 30, 220), (255, 255, 255)


def _shape(mode: str, size: int = 48) -> Image.Image:
    img = draw_shape("red", "circle", size)
    if mode == "P":  # its own palette; the default web palette would shift the red
        return img.convert("P", palette=Image.Palette.ADAPTIVE)
    return img.convert(mode)


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def _animated_gif(path):
    frames = [Image.new("RGB", (40, 40), RED), Image.new("RGB", (40, 40), BLUE)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)


def _transparent_png(mode):
    def make(path):
        img = _shape("RGBA" if mode == "RGBA" else "LA")
        img.putalpha(0)  # see-through everywhere: composited over white
        img.save(path)

    return make


def _palette_with_transparency(path):
    img = _shape("P")
    img.info["transparency"] = img.getpixel((0, 0))  # the background colour's index
    img.save(path, transparency=img.getpixel((0, 0)))


def _gradient16(path):
    ramp = np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)
    Image.fromarray(ramp).save(path)


def _truncated(fmt):
    def make(path):
        buffer = io.BytesIO()
        draw_shape("red", "circle", 200).save(buffer, fmt)
        path.write_bytes(buffer.getvalue()[: buffer.tell() // 2])

    return make


def _bomb(width, height):
    """A valid small PNG whose header claims width x height px."""

    def make(path):
        buffer = io.BytesIO()
        Image.new("L", (8, 8)).save(buffer, "PNG")
        data = bytearray(buffer.getvalue())
        ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
        data[16:29] = ihdr
        data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
        path.write_bytes(bytes(data))

    return make


# name -> (make(path), what must happen: "answered" or part of the one-line error)
AWKWARD = {
    "mode-1.png": (lambda p: _shape("1").save(p), "answered"),
    "mode-L.png": (lambda p: _shape("L").save(p), "answered"),
    "mode-LA.png": (_transparent_png("LA"), "answered"),
    "mode-P.png": (lambda p: _shape("P").save(p), "answered"),
    "mode-P-transparent.png": (_palette_with_transparency, "answered"),
    "mode-RGB.png": (lambda p: _shape("RGB").save(p), "answered"),
    "mode-RGBA.png": (_transparent_png("RGBA"), "answered"),
    "mode-CMYK.jpg": (lambda p: _shape("CMYK").save(p), "answered"),
    "mode-CMYK.tif": (lambda p: _shape("CMYK").save(p), "answered"),
    "mode-I16.png": (_gradient16, "answered"),
    "mode-I16.tif": (_gradient16, "answered"),
    "format.jpg": (lambda p: _shape("RGB").save(p, quality=90), "answered"),
    "format-animated.gif": (_animated_gif, "answered"),
    "format.webp": (lambda p: _shape("RGB").save(p), "answered"),
    "format-lossless.webp": (lambda p: _shape("RGBA").save(p, lossless=True), "answered"),
    "format.bmp": (lambda p: _shape("RGB").save(p), "answered"),
    "format.tif": (lambda p: _shape("RGB").save(p, compression="tiff_lzw"), "answered"),
    "exif-rotated.jpg": (lambda p: _shape("RGB").save(p, exif=_exif(6)), "answered"),
    "tiny-1x1.png": (lambda p: Image.new("RGB", (1, 1), RED).save(p), "answered"),
    "thin-1x500.png": (lambda p: Image.new("L", (1, 500), 90).save(p), "answered"),
    "huge-10000x10000.jpg": (lambda p: Image.new("RGB", (10_000, 10_000), RED).save(p), "answered"),
    "truncated.png": (_truncated("PNG"), "image file is truncated"),
    "truncated.jpg": (_truncated("JPEG"), "image file is truncated"),
    "truncated.gif": (_truncated("GIF"), "image file is truncated"),
    "truncated.webp": (_truncated("WEBP"), "Cannot read image"),
    "truncated.bmp": (_truncated("BMP"), "image file is truncated"),
    "truncated.tif": (_truncated("TIFF"), "image file is truncated"),
    "empty.png": (lambda p: p.write_bytes(b""), "the file is empty"),
    "notes.txt": (lambda p: p.write_text("what colour is the shape?\n"), "not an image file"),
    "text-named.png": (lambda p: p.write_text("<html></html>"), "not an image file"),
    "random-bytes.jpg": (
        lambda p: p.write_bytes(np.random.default_rng(0).bytes(5000)),
        "not an image file",
    ),
    "bomb-20000x20000.png": (_bomb(20_000, 20_000), "over the 100 MP limit"),  # Pillow refuses
    "bomb-12500x12000.png": (_bomb(12_500, 12_000), "over the 100 MP limit"),  # Pillow warns
}


@pytest.fixture(scope="module")
def awkward(tmp_path_factory):
    folder = tmp_path_factory.mktemp("awkward")
    for name, (make, _) in AWKWARD.items():
        make(folder / name)
    return folder


def test_every_awkward_image_is_answered_or_refused_in_one_line(tiny_run, awkward):
    names = list(AWKWARD)
    answerer = Answerer.load(tiny_run[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        results = answerer.answer_batch(
            [awkward / n for n in names],
            ["What color is the shape?"] * len(names),
            on_error="return",
        )
    for name, result in zip(names, results):
        expected = AWKWARD[name][1]
        if expected == "answered":
            assert isinstance(result, AnswerResult), (name, result)
            assert 0 < result.probability <= 1
        else:
            assert isinstance(result, ImageError), (name, result)
            message = str(result)
            assert "\n" not in message and name in message and expected in message, message


def test_a_bad_image_alone_raises_its_error(tiny_run, awkward):
    with pytest.raises(ImageError, match="truncated.gif"):
        Answerer.load(tiny_run[0]).answer(awkward / "truncated.gif", "what shape?")


@pytest.mark.parametrize(
    "name",
    [
        "mode-1.png",
        "mode-L.png",
        "mode-P.png",
        "mode-RGB.png",
        "mode-CMYK.jpg",
        "mode-CMYK.tif",
        "format.jpg",
        "format.webp",
        "format.bmp",
        "format.tif",
    ],
)
def test_every_mode_and_format_gives_the_same_picture(awkward, name):
    """The shape's centre is red and the corner the light background, whatever the
    container (1-bit: the red turns black, the background white)."""
    pixels = np.asarray(to_pil(awkward / name), dtype=int)
    assert pixels.shape == (48, 48, 3)
    centre, corner = pixels[24, 24], pixels[2, 2]
    if name == "mode-1.png":
        assert centre.tolist() == [0, 0, 0] and corner.tolist() == [255, 255, 255]
    elif name == "mode-L.png":
        assert abs(centre - 0.299 * 220 - 0.587 * 30 - 0.114 * 30).max() <= 2
    else:
        assert np.abs(centre - RED).max() <= 12, centre
        assert np.abs(corner - 245).max() <= 12, corner


@pytest.mark.parametrize("name", ["mode-LA.png", "mode-RGBA.png", "mode-P-transparent.png"])
def test_transparency_is_composited_over_white(awkward, name):
    pixels = np.asarray(to_pil(awkward / name))
    assert pixels[2, 2].tolist() == list(WHITE)


@pytest.mark.parametrize("name", ["mode-I16.png", "mode-I16.tif"])
def test_16_bit_images_are_scaled_to_8_bits_not_clipped(awkward, name):
    assert Image.open(awkward / name).mode.startswith("I;16")
    grey = np.asarray(to_pil(awkward / name))[..., 0].astype(int)
    ramp = np.linspace(0, 65535, 64 * 48).reshape(48, 64) / 257
    assert np.abs(grey - ramp).max() <= 1  # Pillow's own convert clips: all but 255 lost
    assert grey.min() == 0 and grey.max() == 255 and 120 <= grey[24, 32] <= 136


def test_gif_gives_its_first_frame(awkward):
    assert np.asarray(to_pil(awkward / "format-animated.gif"))[5, 5].tolist() == list(RED)


def test_exif_orientation_is_honoured(tmp_path):
    """A landscape picture stored with orientation 6 (turn 90 degrees clockwise) shows
    its left half at the top."""
    stored = Image.new("RGB", (60, 30), BLUE)
    ImageDraw.Draw(stored).rectangle((0, 0, 29, 29), fill=RED)
    for fmt in ("jpg", "png", "webp", "tif"):
        stored.save(tmp_path / f"turned.{fmt}", exif=_exif(6))
        for min_side in (None, 4):  # with min_side 4 the image is also reduced (5x)
            shown = np.asarray(to_pil(tmp_path / f"turned.{fmt}", min_side=min_side), int)
            height, width = shown.shape[:2]
            assert height == 2 * width, (fmt, shown.shape)
            assert np.abs(shown[height // 4, width // 2] - RED).max() <= 40, fmt
            assert np.abs(shown[3 * height // 4, width // 2] - BLUE).max() <= 40, fmt


def test_huge_images_are_reduced_while_decoding(awkward, tmp_path):
    """A 10,000 x 10,000 px image is accepted (Pillow alone warns above 89 MP) and comes
    back reduced to what the model needs, not decoded at full size."""
    assert Image.MAX_IMAGE_PIXELS >= MAX_PIXELS == 10_000 * 10_000
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        reduced = open_image(awkward / "huge-10000x10000.jpg", min_side=64)
        Image.new("L", (10_000, 10_000), 90).save(tmp_path / "huge.png", compress_level=1)
        grey = open_image(tmp_path / "huge.png", min_side=64)
    assert 192 <= min(reduced.size) < 2 * 192 * 2  # JPEG: decoded at 1/8 scale
    assert 192 <= min(grey.size) < 2 * 192  # PNG: box-reduced right after decoding
    assert load_image(tmp_path / "huge.png", 64)[0, 0].tolist() == [90, 90, 90]
    # Peak memory of the whole JPEG path, in a fresh process: a full decode is 300 MB.
    code = (
        "import re, sys; from vqa.data.images import load_image; "
        "load_image(sys.argv[1], 64); "
        "print(int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1]) "
        "// 1024)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(awkward / "huge-10000x10000.jpg")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(out.stdout) < 150, f"peak {out.stdout.strip()} MB"


def test_bytes_are_an_image_too(awkward):
    data = (awkward / "format.webp").read_bytes()
    np.testing.assert_array_equal(
        np.asarray(to_pil(data)), np.asarray(to_pil(awkward / "format.webp"))
    )
    with pytest.raises(ImageError, match=r"^Cannot read image upload.bin: the file is empty"):
        decode_image(b"", "upload.bin")
    with pytest.raises(ImageError, match=r"\(5 bytes\): not an image file"):
        to_pil(b"hello")
