"""Image files made for the tests: each format the pipeline takes, photos with EXIF, and hostile files by hand."""

from __future__ import annotations

import io
import math
import struct
import zlib

from PIL import Image

RED = (220, 30, 30)
BLUE = (30, 30, 220)


def halves(
    width: int, height: int, left: tuple[int, int, int] = RED, right: tuple[int, int, int] = BLUE
) -> Image.Image:
    """An image whose left half is one colour and right half another: orientation shows in where they end up."""
    image = Image.new("RGB", (width, height), right)
    image.paste(left, (0, 0, width // 2, height))
    return image


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def png(width: int = 64, height: int = 48, mode: str = "RGB") -> bytes:
    if mode == "RGBA":
        image = Image.new("RGBA", (width, height), (*RED, 128))
        return encoded(image, "PNG")
    return encoded(halves(width, height), "PNG")


def jpeg(width: int = 64, height: int = 48, **options: object) -> bytes:
    return encoded(halves(width, height), "JPEG", quality=90, **options)


def noise_jpeg(width: int, height: int) -> bytes:
    """A photo-sized JPEG that does not compress (noise): 2400×1800 is about 3.5 MB, a phone photo's weight."""
    noise = Image.effect_noise((width, height), 60)
    rgb = Image.merge(
        "RGB",
        (noise, noise.transpose(Image.Transpose.FLIP_LEFT_RIGHT), noise.transpose(Image.Transpose.FLIP_TOP_BOTTOM)),
    )
    return encoded(rgb, "JPEG", quality=90)


def webp(width: int = 64, height: int = 48) -> bytes:
    return encoded(halves(width, height), "WEBP", quality=90)


def gif_animated(width: int = 40, height: int = 30) -> bytes:
    """Two frames: red, then blue. Only the first is kept."""
    frames = [Image.new("RGB", (width, height), RED), Image.new("RGB", (width, height), BLUE)]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return out.getvalue()


def jpeg_with_gps(width: int = 200, height: int = 100, orientation: int = 6) -> bytes:
    """A camera's JPEG: an EXIF orientation (6: turn 90° clockwise to view) and a GPS position, a maker string."""
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    exif[0x010F] = "TestCam"  # Make
    gps = exif.get_ifd(0x8825)  # GPSInfo
    gps[1] = "N"
    gps[2] = (52.0, 22.0, 12.5)
    gps[3] = "E"
    gps[4] = (4.0, 53.0, 30.0)
    return encoded(halves(width, height), "JPEG", quality=95, exif=exif)


def png_with_text_and_icc() -> bytes:
    from PIL import ImageCms, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Secret Teacher")
    info.add_itxt("Comment", "home address, room 12")
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return encoded(halves(64, 48), "PNG", pnginfo=info, icc_profile=icc)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int = 10_000, height: int = 10_000) -> bytes:
    """A valid PNG header declaring width × height 8-bit grey pixels (10^8 by default: 100 MB decoded) and a tiny
    compressed IDAT, a few hundred bytes in all: what a decoder would inflate without a bound."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (width + 1) * 16, 9)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", rows) + _chunk(b"IEND", b"")


def webp_chunks(data: bytes) -> list[str]:
    """The chunk names of a WebP (RIFF) file: `VP8 `/`VP8L`/`VP8X`/`ALPH` are pixels; `EXIF`, `ICCP`, `XMP ` are not."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    names: list[str] = []
    offset = 12
    while offset + 8 <= len(data):
        name = data[offset : offset + 4].decode("latin-1")
        (size,) = struct.unpack("<I", data[offset + 4 : offset + 8])
        names.append(name)
        offset += 8 + size + (size & 1)
    return names


def drawing(kind: str, size: tuple[int, int] = (480, 320)) -> Image.Image:
    """A picture a quiz could carry (for the browser tests' screenshots): the Sun, or a planet by name."""
    from PIL import ImageDraw

    colours = {"sun": (255, 196, 40), "venus": (230, 190, 120), "mercury": (160, 150, 140)}
    image = Image.new("RGB", size, (14, 18, 48))
    draw = ImageDraw.Draw(image)
    width, height = size
    for i in range(0, width, 37):  # a few stars
        draw.point(((i * 7) % width, (i * 13) % height), fill=(255, 255, 255))
    radius = min(width, height) // (3 if kind == "sun" else 4)
    box = (width // 2 - radius, height // 2 - radius, width // 2 + radius, height // 2 + radius)
    draw.ellipse(box, fill=colours.get(kind, (120, 160, 220)))
    if kind == "sun":
        for angle in range(0, 360, 30):
            x, y = math.cos(math.radians(angle)), math.sin(math.radians(angle))
            start = (width // 2 + x * radius * 1.15, height // 2 + y * radius * 1.15)
            end = (width // 2 + x * radius * 1.45, height // 2 + y * radius * 1.45)
            draw.line([start, end], fill=colours["sun"], width=6)
    return image
