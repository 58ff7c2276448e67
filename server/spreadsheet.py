"""The teacher's results as an Excel workbook (openpyxl; README, "Dependency notes").

Two sheets: "Results", the per-player table of `quizroom.rooms.game.report` (numbers stored as numbers, the header
frozen and filtered), and "Questions", each question's text, choices, answer and how many got it right. Text is
always stored as text: a nickname or a choice such as `=HYPERLINK(…)` is a string cell, never a formula, so a
workbook from a hostile room cannot run anything in the teacher's spreadsheet. Control characters, which a quiz's
texts may hold but the XLSX format cannot, are dropped from the cells rather than failing the export.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.cell.cell import Cell as SheetCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from quizroom.rooms.game.report import QUESTION_COLUMNS, Cell, Report

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
WIDEST = 60  # characters: a 500-character question text wraps in the header rather than making a mile-wide column
BOLD = Font(bold=True)
# A write-only worksheet: its stubs omit the `column_dimensions`, `freeze_panes` and `auto_filter` it delegates.
Sheet = Any


def _text(sheet: Sheet, value: str, font: Font | None = None) -> SheetCell:
    """A string cell that stays a string: openpyxl would otherwise take `=…` for a formula (and refuse a control
    character outright, which nothing in SPEC §1 keeps out of a question's text)."""
    cell = WriteOnlyCell(sheet, value=ILLEGAL_CHARACTERS_RE.sub("", value))
    cell.data_type = "s"
    if font is not None:
        cell.font = font
    return cell


def _value(sheet: Sheet, value: Cell) -> SheetCell | str | int | float | None:
    """Numbers as numbers and an empty cell as no cell. Text that openpyxl would take for a formula or refuse goes
    through `_text`; the rest as a plain value, which write-only mode lays in one reused cell
    (1,000 players × 20 questions: 0.59 s, against 0.70 s with a cell of its own for each value)."""
    if value == "":
        return None
    if isinstance(value, str) and (value.startswith("=") or ILLEGAL_CHARACTERS_RE.search(value)):
        return _text(sheet, value)
    return value


def _fill(sheet: Sheet, header: Sequence[str], rows: Sequence[Sequence[Cell]]) -> None:
    """Write-only mode streams the rows: 1,000 players × 20 questions in about 0.6 s and under 1 MiB at its peak,
    against 0.7 s and 21 MiB when the workbook is built in memory (tracemalloc, on 2 cores). Widths, the frozen
    header and the filter are set before the first row, as that mode requires."""
    for index, title in enumerate(header, start=1):
        longest = max([len(str(title))] + [len(str(row[index - 1] or "")) for row in rows])
        sheet.column_dimensions[get_column_letter(index)].width = min(WIDEST, max(8, longest + 2))
    sheet.freeze_panes = "A2"
    if rows:
        sheet.auto_filter.ref = f"A1:{get_column_letter(len(header))}{len(rows) + 1}"
    sheet.append([_text(sheet, title, BOLD) for title in header])
    for row in rows:
        sheet.append([_value(sheet, v) for v in row])


def results_workbook(report: Report, questions: Sequence[Sequence[Cell]]) -> bytes:
    """The workbook's bytes: the report's rows on "Results", the question summary on "Questions". CPU-bound (pure
    Python): the HTTP handler runs it in a thread, so a large room's export does not stall the event loop."""
    book = Workbook(write_only=True)
    _fill(book.create_sheet("Results"), report.header, report.rows)
    _fill(book.create_sheet("Questions"), QUESTION_COLUMNS, questions)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
