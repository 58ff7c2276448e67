"""The upload pipeline of quiz images: untrusted bytes in, one small clean WebP out, or a refusal with its code.

What it guarantees for every image it returns:
- **the type comes from the bytes**: only Pillow's PNG, JPEG, GIF and WebP parsers ever look at an upload (no other
  format plugin is tried), and a file whose name or declared type says otherwise is refused (`type_mismatch`);
- **no decompression bomb**: the pixel count is read from the header and refused above `MAX_PIXELS` before anything
  is decoded (`too_many_pixels`); Pillow's own bomb check is set to the same bound and its warning is an error;
- **nothing but pixels**: EXIF orientation is applied first, colours in another ICC profile are converted to sRGB,
  and what is written carries no EXIF, ICC, XMP or text chunks (a photo's GPS position never reaches players);
- **bounded**: the longest side is at most `MAX_SIDE`, the first frame only of an animation;
- **re-encoded**: bytes are always our encoder's, never the sender's (a crafted file does not reach browsers).

Why WebP (measured on this 2-core machine, a 4000×3000 photo-like JPEG of 1.8 MB, see README's dependency notes):
WebP at quality 80 came out at 63 KB against 208 KB for JPEG at quality 85 (progressive, optimised), for 350 ms
against 250 ms of decoding, resizing and encoding; ten thousand phones fetch each image, the server encodes it
once. Every browser we serve (Chromium, Firefox, Safari from iOS 14) decodes WebP, with alpha.

Pure functions of bytes, CPU-bound: callers run them in a thread (`quizroom.server.image_api`).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import PurePosixPath

from PIL import Image, ImageCms, ImageOps

from quizroom.rooms.game.errors import QuizroomError

MAX_PIXELS = 40_000_000  # a 48 Mpx phone's binned 12 Mpx photo fits thrice; 10^8 (10,000²) does not
MAX_SIDE = 1600  # a projector's full height and more than any phone's width: sharp everywhere it is shown
WEBP_QUALITY = 80
OUTPUT_TYPE = "image/webp"

# Pillow's own bomb check (it refuses above twice this bound and warns above it): the same bound, and the warning is
# an error, so no decode starts above it even if a code path skipped our check. Set once, for the whole process.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
warnings.simplefilter("error", Image.DecompressionBombWarning)

MEDIA_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
ACCEPTED = tuple(MEDIA_TYPES)
EXTENSIONS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jpe": "JPEG",
    ".jfif": "JPEG",
    ".gif": "GIF",
    ".webp": "WEBP",
}
DECLARED_TYPES = {**{media: name for name, media in MEDIA_TYPES.items()}, "image/jpg": "JPEG", "image/pjpeg": "JPEG"}
UNDECLARED = frozenset({"", "application/octet-stream"})  # what a client sends when it does not know the type


class ImageRefused(QuizroomError):
    """An upload the pipeline will not serve; each kind is its own code (docs/protocol.md, *Images*)."""


class EmptyFile(ImageRefused):
    code = "empty_file"
    status = 422


class NotAnImage(ImageRefused):
    """Not a PNG, JPEG, GIF or WebP, or one that does not decode (truncated, corrupt)."""

    code = "not_an_image"
    status = 415


class TooManyPixels(ImageRefused):
    """A header that declares more than `MAX_PIXELS` pixels: a decompression bomb, or a photo too large to serve."""

    code = "too_many_pixels"
    status = 422


class TypeMismatch(ImageRefused):
    """The file's name or declared media type says one format, its bytes are another (a `.png` that is a JPEG)."""

    code = "type_mismatch"
    status = 422


@dataclass(frozen=True, slots=True)
class Declared:
    """What the sender said the file is: its file name (a multipart part's `filename`) and its media type (the
    part's or the body's `Content-Type`); either may be empty."""

    filename: str = ""
    content_type: str = ""


@dataclass(frozen=True, slots=True)
class PreparedImage:
    """The pipeline's output: what is stored and served. `image_id` is the SHA-256 (hex) of `data`."""

    image_id: str
    content_type: str
    width: int
    height: int
    data: bytes
    source_format: str  # what the upload was: PNG, JPEG, GIF or WEBP


def image_id_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_declared(found: str, declared: Declared) -> None:
    """Refuse a file whose extension or declared media type names another format than its bytes (`found`)."""
    name = declared.filename.replace("\\", "/").rsplit("/", 1)[-1]
    extension = PurePosixPath(name).suffix.lower()
    if extension and EXTENSIONS.get(extension) != found:
        raise TypeMismatch(f"the file is named {name!r} but its bytes are a {found} image; rename it to match")
    media = declared.content_type.split(";", 1)[0].strip().lower()
    if media not in UNDECLARED and DECLARED_TYPES.get(media) != found:
        raise TypeMismatch(f"the file is declared as {media} but its bytes are a {found} image")


def check_pixels(size: tuple[int, int]) -> None:
    width, height = size
    if width * height > MAX_PIXELS:
        raise TooManyPixels(
            f"the image declares {width}×{height} = {width * height:,} pixels; at most {MAX_PIXELS:,} are accepted"
        )


def prepare_image(raw: bytes, declared: Declared = Declared()) -> PreparedImage:
    """Check, clean and re-encode one upload; raises an `ImageRefused` (or nothing else) for bytes it refuses."""
    if not raw:
        raise EmptyFile("the file is empty")
    try:
        with Image.open(io.BytesIO(raw), formats=ACCEPTED) as probe:
            found = str(probe.format)
            check_pixels(probe.size)  # the header only: a bomb is refused here, before any pixel is decoded
            check_declared(found, declared)
            probe.verify()  # chunk checksums and structure, still without decoding the pixels
        with Image.open(io.BytesIO(raw), formats=ACCEPTED) as opened:
            image = _decoded(opened)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise TooManyPixels(f"the image declares more than the {MAX_PIXELS:,} pixels accepted ({exc})") from exc
    except (ImageRefused, MemoryError):
        raise
    except Exception as exc:  # any other failure of a parser on untrusted bytes means the same to the sender
        raise NotAnImage(f"the file is not a PNG, JPEG, GIF or WebP image that decodes ({exc})") from exc
    data = _encoded(image)
    return PreparedImage(image_id_of(data), OUTPUT_TYPE, image.width, image.height, data, found)


def _decoded(image: Image.Image) -> Image.Image:
    """The first frame, upright, in sRGB, RGB or RGBA, with its longest side at most `MAX_SIDE`."""
    if image.format == "JPEG":  # decode a large JPEG at 1/2, 1/4 or 1/8 scale straight away (DCT scaling)
        image.draft(None, _fitted(image.size))
    image.load()
    try:
        upright = ImageOps.exif_transpose(image)  # before anything else: what the camera meant by "up"
    except Exception:  # an EXIF block that does not parse: the orientation is a nicety, never a reason to refuse
        upright = image
    srgb = _in_srgb(upright, image.info.get("icc_profile"))
    srgb.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    return srgb


def _fitted(size: tuple[int, int]) -> tuple[int, int]:
    width, height = size
    scale = min(1.0, MAX_SIDE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _in_srgb(image: Image.Image, icc: object) -> Image.Image:
    """RGB or RGBA pixels in sRGB. A profile that does not parse or fit is taken for sRGB (most are)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16-bit and float greys: scale to 8 bits, not clip
        image = image.convert("I").point(lambda value: value / 256).convert("L")
    alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info)
    working = "CMYK" if image.mode == "CMYK" else "RGBA" if alpha else "RGB"
    if image.mode != working:
        image = image.convert(working)
    if isinstance(icc, bytes) and icc:
        try:
            converted = ImageCms.profileToProfile(
                image,
                ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                ImageCms.createProfile("sRGB"),  # made per call: nothing of littlecms is shared between threads
                outputMode="RGBA" if alpha else "RGB",
            )
            if converted is not None:
                image = converted
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            pass
    if image.mode == "CMYK":
        image = image.convert("RGB")
    if image.mode == "RGBA" and image.getchannel("A").getextrema() == (255, 255):
        image = image.convert("RGB")  # an alpha channel that hides nothing costs bytes for nothing
    return image


def _encoded(image: Image.Image) -> bytes:
    """WebP with nothing but the pixels: `info` is emptied, so no EXIF, ICC or XMP can ride along."""
    image.info = {}
    out = io.BytesIO()
    image.save(out, "WEBP", quality=WEBP_QUALITY, method=4)
    return out.getvalue()
