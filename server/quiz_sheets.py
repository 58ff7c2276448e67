"""The bytes of an imported quiz file as rows of text (`quizroom.server.quiz_import` reads the rows): which format
a body is, and CSV and XLSX read within fixed bounds, whatever the file claims.

Bounds, so that a hostile file costs little: the body is already capped by the server's `max_body_bytes`; at most
`MAX_ROWS` rows of `MAX_COLUMNS` cells are kept, and a CSV with more rows (or a sheet whose next row is filled) is
refused rather than cut short in silence — a sheet's rows further down are never read, as openpyxl would walk every
empty row up to them; each cell is cut to `CELL_MAX` characters as it is read (over every SPEC limit, so a cell that
is too long is still seen to be, and its row refused). A workbook is a zip: it is refused before openpyxl opens it when
its parts would unpack to more than `MAX_UNPACKED` bytes (zipfile enforces each part's declared size as it reads),
then read in openpyxl's read-only mode, which streams the sheet; its XML goes through expat, whose limits refuse
entity-expansion bombs. Both readers are CPU-bound: the HTTP handler runs them in a thread. Measured once (this
2-core machine): the worst workbook under the caps, 1,000 rows × 26 cells of 540 characters (200 KB on the wire,
15 MB unpacked), reads in 1.6 s with a peak of 16 MiB.
"""

from __future__ import annotations

import codecs
import csv
import io
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime, time
from typing import Any

from openpyxl import load_workbook

from quizroom.rooms.game.errors import BadFile, InvalidInput
from quizroom.server.quiz_import import HEADER_SEARCH_ROWS, find_layout
from quizroom.server.spreadsheet import XLSX_MEDIA_TYPE

FORMATS = ("json", "csv", "xlsx")
MAX_ROWS = 1_000
MAX_COLUMNS = 26
CELL_MAX = 1_000
MAX_SHEETS = 10
MAX_UNPACKED = 16 * 1024 * 1024
MAX_PARTS = 200
DELIMITERS = (",", ";", "\t")  # Excel writes `;` where the decimal mark is a comma, and tabs as "Unicode text"

Rows = list[tuple[str, ...]]

_CONTENT_TYPES = {
    "application/json": "json",
    "text/json": "json",
    "text/csv": "csv",
    "application/csv": "csv",
    "text/comma-separated-values": "csv",
    "text/tab-separated-values": "csv",
    XLSX_MEDIA_TYPE: "xlsx",
}
_EXTENSIONS = {"json": "json", "csv": "csv", "tsv": "csv", "txt": "csv", "xlsx": "xlsx"}
_ZIP = b"PK\x03\x04"
_OLE2 = b"\xd0\xcf\x11\xe0"  # the old binary .xls


def detect_format(body: bytes, content_type: str, filename: str, requested: str | None) -> str:
    """json, csv or xlsx: `?format=` if given; a zip is a workbook; else the content type, the file name's
    extension, and last the bytes (`{` first: JSON; anything else: CSV)."""
    if requested is not None:
        if requested not in FORMATS:
            raise InvalidInput("format", f"must be one of {', '.join(FORMATS)}")
        return requested
    if content_type.lower().startswith("multipart/"):
        raise BadFile("send the file itself as the request body, not inside a form (multipart)")
    if body.startswith(_OLE2):
        raise BadFile("old Excel .xls workbooks cannot be read: save the file as .xlsx or .csv")
    if body.startswith(_ZIP):
        return "xlsx"
    by_type = _CONTENT_TYPES.get(content_type.split(";", 1)[0].strip().lower())
    if by_type is not None:
        return by_type
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if extension in _EXTENSIONS:
        return _EXTENSIONS[extension]
    return "json" if body.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{") else "csv"


def _bounded(rows: Iterable[Sequence[Any]]) -> Rows:
    """At most `MAX_ROWS` rows of at most `MAX_COLUMNS` cells, each as text of at most `CELL_MAX` characters;
    `BadFile` when a row past the cap has anything in it (trailing empty rows are nothing)."""
    kept: Rows = []
    for row in rows:
        cells = tuple(_text(value) for value in row[:MAX_COLUMNS])
        if len(kept) < MAX_ROWS:
            kept.append(cells)
        elif any(cells):
            raise BadFile(f"the file has more than {MAX_ROWS} rows")
    return kept


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    text = value if isinstance(value, str) else str(value)
    return text[:CELL_MAX]


# --- CSV -------------------------------------------------------------------------------------------------------


def decode_text(body: bytes) -> str:
    """UTF-8 (with or without a BOM), UTF-16 with a BOM (Excel's "Unicode text"), else Windows-1252, which is what
    Excel writes as plain "CSV" on a Western Windows; failing that Latin-1, which decodes any bytes."""
    if body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return body.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise BadFile("the file says it is UTF-16 but is not") from exc
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return body.decode(encoding)
        except UnicodeDecodeError:
            continue
    return body.decode("latin-1")


def _csv_rows(text: str, delimiter: str) -> Iterator[list[str]]:
    return csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)


def csv_rows(body: bytes) -> Rows:
    """The rows of a CSV file, its delimiter being the first of `DELIMITERS` with which a header row is found
    (so a sheet saved with `;` or tabs reads as well as one with commas)."""
    text = decode_text(body).replace("\x00", "")
    try:
        delimiter = next((d for d in DELIMITERS if find_layout(_head(_csv_rows(text, d))) is not None), ",")
        return _bounded(_csv_rows(text, delimiter))
    except csv.Error as exc:
        raise BadFile(f"the CSV cannot be read: {exc}") from exc


def _head(rows: Iterator[list[str]]) -> Rows:
    return _bounded(row for _, row in zip(range(HEADER_SEARCH_ROWS), rows, strict=False))


# --- XLSX ------------------------------------------------------------------------------------------------------


def _check_archive(body: bytes) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            parts = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise BadFile("the file is not a readable XLSX workbook") from exc
    if len(parts) > MAX_PARTS or sum(part.file_size for part in parts) > MAX_UNPACKED:
        raise BadFile(f"the workbook unpacks to more than {MAX_UNPACKED // (1024 * 1024)} MiB")


def xlsx_rows(body: bytes) -> Rows:
    """The rows of the first sheet (of the first `MAX_SHEETS`) that has a header row, else of the first sheet.

    Any failure of openpyxl on a malformed workbook (it raises many kinds: KeyError for a missing part, ValueError,
    TypeError, XML parse errors…) is the file's fault, so each one becomes `BadFile`."""
    _check_archive(body)
    try:
        book = load_workbook(io.BytesIO(body), read_only=True, data_only=True)
    except Exception as exc:
        raise BadFile("the file is not a readable XLSX workbook") from exc
    try:
        sheets = book.worksheets[:MAX_SHEETS]
        if not sheets:
            raise BadFile("the workbook has no sheet")
        for sheet in sheets:
            head = _bounded(sheet.iter_rows(max_row=HEADER_SEARCH_ROWS, max_col=MAX_COLUMNS, values_only=True))
            if find_layout(head) is not None:
                return _bounded(sheet.iter_rows(max_row=MAX_ROWS + 1, max_col=MAX_COLUMNS, values_only=True))
        return _bounded(sheets[0].iter_rows(max_row=MAX_ROWS + 1, max_col=MAX_COLUMNS, values_only=True))
    except BadFile:
        raise
    except Exception as exc:
        raise BadFile("the workbook's sheet cannot be read") from exc
    finally:
        book.close()
