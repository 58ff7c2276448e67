"""The image upload pipeline (server/imaging.py): what it accepts, what it makes of it, and what it refuses."""

from __future__ import annotations

import hashlib
import io
import time

import pytest
from PIL import Image

from quizroom.server.imaging import (
    MAX_PIXELS,
    MAX_SIDE,
    Declared,
    EmptyFile,
    NotAnImage,
    PreparedImage,
    TooManyPixels,
    TypeMismatch,
    prepare_image,
)
from tests import imagefiles


def opened(prepared: PreparedImage) -> Image.Image:
    image = Image.open(io.BytesIO(prepared.data))
    image.load()
    return image


def near(pixel: object, colour: tuple[int, int, int], tolerance: int = 40) -> bool:
    assert isinstance(pixel, tuple)
    return all(abs(int(a) - b) <= tolerance for a, b in zip(pixel[:3], colour, strict=True))


@pytest.mark.parametrize(
    ("make", "fmt"),
    [
        (imagefiles.png, "PNG"),
        (imagefiles.jpeg, "JPEG"),
        (imagefiles.webp, "WEBP"),
        (imagefiles.gif_animated, "GIF"),
    ],
)
def test_each_accepted_format_is_reencoded_to_webp_keyed_by_its_hash(make: object, fmt: str) -> None:
    assert callable(make)
    raw = make()
    prepared = prepare_image(raw, Declared(f"picture.{fmt.lower()}"))
    assert prepared.source_format == fmt
    assert prepared.content_type == "image/webp"
    assert prepared.image_id == hashlib.sha256(prepared.data).hexdigest()
    assert prepared.data != raw
    image = opened(prepared)
    assert image.format == "WEBP" and image.size == (prepared.width, prepared.height)


def test_an_animated_gif_keeps_its_first_frame_only() -> None:
    image = opened(prepare_image(imagefiles.gif_animated()))
    assert getattr(image, "n_frames", 1) == 1
    assert near(image.convert("RGB").getpixel((5, 5)), imagefiles.RED)


def test_exif_gps_and_camera_data_are_gone_and_the_orientation_is_applied() -> None:
    raw = imagefiles.jpeg_with_gps(200, 100, orientation=6)
    assert Image.open(io.BytesIO(raw)).getexif().get_ifd(0x8825), "the test photo must carry GPS"
    prepared = prepare_image(raw, Declared("IMG_0001.JPG", "image/jpeg"))
    assert imagefiles.webp_chunks(prepared.data)[0] in ("VP8 ", "VP8L", "VP8X")
    assert not {"EXIF", "ICCP", "XMP "} & set(imagefiles.webp_chunks(prepared.data))
    assert b"TestCam" not in prepared.data and b"GPS" not in prepared.data
    image = opened(prepared)
    assert not image.getexif() and "exif" not in image.info
    # Orientation 6 turns the picture a quarter clockwise: 200×100 becomes 100×200, the left (red) half on top.
    assert (prepared.width, prepared.height) == (100, 200)
    rgb = image.convert("RGB")
    assert near(rgb.getpixel((50, 20)), imagefiles.RED) and near(rgb.getpixel((50, 180)), imagefiles.BLUE)


def test_png_text_chunks_and_colour_profile_are_stripped() -> None:
    raw = imagefiles.png_with_text_and_icc()
    assert b"Secret Teacher" in raw and b"iCCP" in raw
    prepared = prepare_image(raw)
    assert b"Secret Teacher" not in prepared.data and b"room 12" not in prepared.data
    assert set(imagefiles.webp_chunks(prepared.data)) <= {"VP8 ", "VP8L", "VP8X", "ALPH"}
    assert "icc_profile" not in opened(prepared).info


def test_transparency_is_kept_and_an_opaque_alpha_channel_dropped() -> None:
    assert opened(prepare_image(imagefiles.png(mode="RGBA"))).mode == "RGBA"
    opaque = imagefiles.encoded(Image.new("RGBA", (32, 32), (*imagefiles.RED, 255)), "PNG")
    assert opened(prepare_image(opaque)).mode == "RGB"


@pytest.mark.parametrize(("size", "expected"), [((4000, 3000), (1600, 1200)), ((1000, 5000), (320, 1600))])
def test_the_longest_side_is_bounded(size: tuple[int, int], expected: tuple[int, int]) -> None:
    prepared = prepare_image(imagefiles.jpeg(*size))
    assert (prepared.width, prepared.height) == expected
    assert max(expected) == MAX_SIDE


def test_a_small_image_is_not_enlarged() -> None:
    prepared = prepare_image(imagefiles.png(64, 48))
    assert (prepared.width, prepared.height) == (64, 48)


def test_sixteen_bit_grey_and_cmyk_come_out_as_rgb() -> None:
    grey16 = imagefiles.encoded(Image.new("I;16", (20, 20), 40_000), "PNG")
    assert opened(prepare_image(grey16)).mode == "RGB"
    cmyk = imagefiles.encoded(Image.new("CMYK", (20, 20), (0, 200, 200, 0)), "JPEG")
    image = opened(prepare_image(cmyk))
    assert image.mode == "RGB" and near(image.getpixel((10, 10)), (255, 55, 55), tolerance=60)


def test_a_decompression_bomb_is_refused_from_its_header_without_decoding() -> None:
    bomb = imagefiles.bomb_png(10_000, 10_000)
    assert len(bomb) < 4096
    began = time.perf_counter()
    with pytest.raises(TooManyPixels) as refused:
        prepare_image(bomb, Declared("bomb.png", "image/png"))
    elapsed = time.perf_counter() - began
    # Decoding 10^8 pixels would allocate 100 MB and take seconds; the header alone is read in well under 0.1 s.
    assert elapsed < 0.25, f"took {elapsed:.3f} s: the pixels were decoded"
    assert refused.value.status == 422 and refused.value.code == "too_many_pixels"
    assert f"{MAX_PIXELS:,}" in refused.value.message


# Just over the bound, Pillow only warns (it errors above twice the bound). The server makes that warning an error
# for the whole process; pytest resets warning filters around each test, so each path is pinned here explicitly.
@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
def test_pillows_bomb_warning_is_a_refusal() -> None:
    side = int(MAX_PIXELS**0.5) + 10
    with pytest.raises(TooManyPixels):
        prepare_image(imagefiles.bomb_png(side, side))


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_an_image_just_over_the_bound_is_refused_by_our_own_header_check() -> None:
    side = int(MAX_PIXELS**0.5) + 10
    with pytest.raises(TooManyPixels) as refused:
        prepare_image(imagefiles.bomb_png(side, side))
    assert f"{side}×{side}" in refused.value.message


@pytest.mark.parametrize(
    ("raw", "declared"),
    [
        (imagefiles.jpeg(), Declared("photo.png")),
        (imagefiles.png(), Declared("photo.jpg")),
        (imagefiles.png(), Declared("notes.txt")),
        (imagefiles.png(), Declared("", "image/jpeg")),
        (imagefiles.webp(), Declared("picture.webp", "image/png")),
        (imagefiles.gif_animated(), Declared(r"C:\Users\me\cat.jpeg")),
    ],
)
def test_a_name_or_declared_type_that_disagrees_with_the_bytes_is_refused(raw: bytes, declared: Declared) -> None:
    with pytest.raises(TypeMismatch) as refused:
        prepare_image(raw, declared)
    assert refused.value.status == 422 and refused.value.code == "type_mismatch"


@pytest.mark.parametrize(
    "declared",
    [
        Declared(),
        Declared("photo"),
        Declared("PHOTO.JPEG", "image/jpeg"),
        Declared("a.jpg", "application/octet-stream"),
    ],
)
def test_a_missing_or_agreeing_declaration_is_accepted(declared: Declared) -> None:
    assert prepare_image(imagefiles.jpeg(), declared).source_format == "JPEG"


@pytest.mark.parametrize(
    "raw",
    [
        b"hello, this is text",
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        imagefiles.encoded(Image.new("RGB", (8, 8)), "BMP"),
        imagefiles.encoded(Image.new("RGB", (8, 8)), "TIFF"),
        imagefiles.png(64, 48)[:60],  # truncated
        imagefiles.jpeg(64, 48)[:200],  # truncated
    ],
    ids=["text", "svg", "bmp", "tiff", "truncated-png", "truncated-jpeg"],
)
def test_what_is_not_an_accepted_image_is_refused(raw: bytes) -> None:
    with pytest.raises(NotAnImage) as refused:
        prepare_image(raw)
    assert refused.value.status == 415 and refused.value.code == "not_an_image"


def test_a_png_with_a_broken_checksum_is_refused() -> None:
    raw = bytearray(imagefiles.png(16, 16))
    raw[29] ^= 0xFF  # inside IHDR's CRC
    with pytest.raises(NotAnImage):
        prepare_image(bytes(raw))


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(EmptyFile) as refused:
        prepare_image(b"")
    assert refused.value.status == 422 and refused.value.code == "empty_file"
