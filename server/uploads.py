"""Reading an image upload from a request, bounded while it streams (docs/protocol.md, *Images*).

Two shapes are accepted: `multipart/form-data` with the file in the field `image` (a browser's form or `fetch` with
`FormData`), parsed as it arrives by python-multipart's streaming parser; and a raw body whose `Content-Type` is
the image's type (`curl --data-binary @photo.jpg -H 'Content-Type: image/jpeg'`, for scripts).

A body is refused with 413 as soon as it is known to be too big: at once when `Content-Length` says so, else once
the bytes that arrived pass the limit, whatever part of the form they belong to. Only the image part is kept in
memory, so an upload costs at most the limit plus one read. Starlette's `request.form()` is not used: it spools
files of any size to disk before a handler can look at them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header
from starlette.requests import Request

from quizroom.rooms.game.errors import InvalidInput, QuizroomError, TooBig
from quizroom.server.imaging import Declared
from quizroom.server.requests import read_body

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

FIELD = "image"
FORM_OVERHEAD = 16_384  # boundaries, part headers and small fields beside the image
MAX_PARTS = 16


class UnsupportedUpload(QuizroomError):
    """The request is neither a multipart form nor an image body."""

    code = "unsupported_media_type"
    status = 415


class BadUpload(QuizroomError):
    """A multipart body that does not parse (no boundary, cut short, malformed), or more than one image."""

    code = "bad_upload"
    status = 400


@dataclass(frozen=True, slots=True)
class Upload:
    data: bytes
    declared: Declared


async def read_upload(request: Request, limit: int) -> Upload:
    """The uploaded file and what its sender said it is; `TooBig` past `limit` bytes of image."""
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "multipart/form-data":
        return await _read_form(request, content_type, limit)
    if media.startswith("image/"):
        return Upload(await read_body(request, limit), Declared(content_type=media))
    raise UnsupportedUpload(
        "send the image as multipart/form-data (field `image`) or as the body with its image/* Content-Type"
    )


async def _read_form(request: Request, content_type: str, limit: int) -> Upload:
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise BadUpload("the multipart Content-Type has no boundary")
    body_limit = limit + FORM_OVERHEAD
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > body_limit:
        raise TooBig(f"an image must be at most {limit} bytes")
    form = _Form(limit)
    parser = MultipartParser(boundary, form.callbacks())
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > body_limit:
            raise TooBig(f"an image must be at most {limit} bytes")
        try:
            parser.write(chunk)
        except MultipartParseError as exc:
            raise BadUpload(f"the multipart body does not parse: {exc}") from exc
    parser.finalize()
    return form.upload()


@dataclass(slots=True)
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    name: str = ""
    filename: str = ""
    content_type: str = ""


class _Form:
    """The parser's callbacks: keeps the `image` part's bytes (bounded) and the names of the other parts."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[_Part] = []
        self.image: bytearray | None = None
        self.image_part: _Part | None = None
        self.ended = False
        self._field = b""
        self._value = b""
        self._capturing = False

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": self.header_field,
            "on_header_value": self.header_value,
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_end": self.end,
        }

    def part_begin(self) -> None:
        if len(self.parts) >= MAX_PARTS:
            raise BadUpload(f"a form may have at most {MAX_PARTS} parts")
        self.parts.append(_Part())
        self._capturing = False

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def header_end(self) -> None:
        self.parts[-1].headers[self._field.strip().lower()] = self._value.strip()
        self._field = self._value = b""

    def headers_finished(self) -> None:
        part = self.parts[-1]
        _, options = parse_options_header(part.headers.get(b"content-disposition", b""))
        part.name = options.get(b"name", b"").decode("utf-8", "replace")
        part.filename = options.get(b"filename", b"").decode("utf-8", "replace")
        part.content_type = part.headers.get(b"content-type", b"").decode("latin-1").strip().lower()
        if part.name != FIELD:
            return
        if self.image is not None:
            raise BadUpload(f"send one image per upload (the form has more than one `{FIELD}`)")
        self.image = bytearray()
        self.image_part = part
        self._capturing = True

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._capturing or self.image is None:
            return  # another field's value: counted against the body's limit, not kept
        self.image += data[start:end]
        if len(self.image) > self.limit:
            raise TooBig(f"an image must be at most {self.limit} bytes")

    def end(self) -> None:
        self.ended = True

    def upload(self) -> Upload:
        if not self.ended:
            raise BadUpload("the multipart body ended before its closing boundary")
        if self.image is None or self.image_part is None:
            names = ", ".join(f"`{p.name}`" for p in self.parts if p.name) or "none"
            raise InvalidInput(FIELD, f"the form must have a file field named `{FIELD}` (its fields: {names})")
        part = self.image_part
        return Upload(bytes(self.image), Declared(part.filename, part.content_type))
