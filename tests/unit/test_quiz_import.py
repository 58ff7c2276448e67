"""Quiz files (`quizroom.server.quiz_import`, `quizroom.server.quiz_sheets`): Kahoot's template as CSV and XLSX,
every reason a row is refused, the bounds on what a file may cost, and our JSON format. No server, no network."""

from __future__ import annotations

import codecs
import csv
import io
import zipfile
from typing import Any

import pytest
from openpyxl import Workbook

from quizroom.rooms.game.errors import BadFile, InvalidInput, NothingImported
from quizroom.rooms.game.quiz import Question
from quizroom.server.quiz_import import (
    DEFAULT_TITLE,
    FORMAT,
    Refusal,
    export_document,
    import_rows,
    import_title,
    quiz_from_json,
)
from quizroom.server.quiz_sheets import CELL_MAX, MAX_ROWS, MAX_UNPACKED, csv_rows, detect_format, xlsx_rows
from quizroom.server.spreadsheet import XLSX_MEDIA_TYPE

# Kahoot's public template, as its sheet lays it out: a title and instructions, a blank row, then the header in
# row 8 (column A numbers the questions), the questions from row 9.
KAHOOT_HEADER = [
    "",
    "Question - max 120 characters",
    "Answer 1 - max 75 characters",
    "Answer 2 - max 75 characters",
    "Answer 3 - max 75 characters",
    "Answer 4 - max 75 characters",
    "Time limit (sec) – 5, 10, 20, 30, 60, 90, 120, or 240 secs",
    "Correct answer(s) - choose at least one",
]
PREAMBLE: list[list[Any]] = [
    ["", "Quiz template"],
    ["", "Add questions, at least two answer alternatives, time limit and choose correct answers (at least one)."],
    ["", "Have fun creating your awesome quiz!"],
    ["", "Remember: questions have a limit of 120 characters and answers can have 75 characters max."],
    ["", "If several answers are correct, separate them with a comma."],
    [],
    [],
]
QUESTIONS: list[list[Any]] = [
    [1, "Which planet is closest to the Sun?", "Venus", "Mercury", "Mars", "Earth", 20, 2],
    [2, "Which are noble gases?", "Helium", "Nitrogen", "Neon", "", 30, "1,3"],
    [3, "Is water wet?", "Yes", "No", "", "", 10, "1"],
]


def as_csv(rows: list[list[Any]], delimiter: str = ",") -> bytes:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode("utf-8")


def as_xlsx(rows: list[list[Any]], *, sheets_before: int = 0) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for n in range(sheets_before):
        sheet.title = f"Notes {n}"
        sheet.append(["nothing to see here"])
        sheet = book.create_sheet("Quiz")
    for row in rows:
        sheet.append([None if cell == "" else cell for cell in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def template(*rows: list[Any]) -> list[list[Any]]:
    return [*PREAMBLE, KAHOOT_HEADER, *rows]


def first_data_row() -> int:
    return len(PREAMBLE) + 2


EXPECTED = (
    Question("Which planet is closest to the Sun?", ("Venus", "Mercury", "Mars", "Earth"), frozenset({1}), 20_000),
    Question("Which are noble gases?", ("Helium", "Nitrogen", "Neon"), frozenset({0, 2}), 30_000),
    Question("Is water wet?", ("Yes", "No"), frozenset({0}), 10_000),
)


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_kahoots_template_is_read_with_its_header_found_after_the_instructions(kind: str) -> None:
    body = as_csv(template(*QUESTIONS)) if kind == "csv" else as_xlsx(template(*QUESTIONS))
    rows = csv_rows(body) if kind == "csv" else xlsx_rows(body)
    imported = import_rows(rows)
    assert imported.questions == EXPECTED
    assert imported.refused == ()
    assert imported.title == ""


def test_the_header_is_read_liberally_and_in_any_column_order() -> None:
    rows = [
        ["Title:", "Planets"],
        ["correct ANSWERS", "  QUESTION ", "choice 2", "Choice 1", "option_3", "TIME", "Points"],
        ["2", "Closest to the Sun?", "Mercury", "Venus", "Mars", "5 sec", "500"],
    ]
    imported = import_rows(csv_rows(as_csv(rows)))
    assert imported.title == "Planets"
    assert imported.questions == (
        Question("Closest to the Sun?", ("Venus", "Mercury", "Mars"), frozenset({1}), 5_000, 500),
    )


def test_a_column_numbering_the_questions_is_not_taken_for_their_text() -> None:
    rows = [["Question #", "Question text", "Answer 1", "Answer 2", "Correct"], ["1", "2 + 2?", "4", "5", "1.0"]]
    assert import_rows(csv_rows(as_csv(rows))).questions == (Question("2 + 2?", ("4", "5"), frozenset({0})),)


def test_a_sheet_without_time_or_points_columns_takes_the_defaults() -> None:
    rows = [["Question", "Answer 1", "Answer 2", "Correct answer"], ["2 + 2?", "4", "5", "A"]]
    imported = import_rows(csv_rows(as_csv(rows)))
    assert imported.questions == (Question("2 + 2?", ("4", "5"), frozenset({0}), 20_000, 1000),)


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_a_csv_saved_with_semicolons_or_tabs_reads_the_same(delimiter: str) -> None:
    assert import_rows(csv_rows(as_csv(template(*QUESTIONS), delimiter))).questions == EXPECTED


@pytest.mark.parametrize(
    "encode",
    [
        lambda text: text.encode("utf-8-sig"),
        lambda text: codecs.BOM_UTF16_LE + text.encode("utf-16-le"),
        lambda text: text.encode("cp1252"),
    ],
    ids=["utf-8 with BOM", "utf-16", "windows-1252"],
)
def test_csv_encodings_excel_writes_are_decoded(encode: Any) -> None:
    text = as_csv([["Question", "Answer 1", "Answer 2", "Correct"], ["Café or thé?", "Café", "Thé", "2"]]).decode()
    assert import_rows(csv_rows(encode(text))).questions[0].choices == ("Café", "Thé")


def test_the_sheet_with_the_header_is_found_among_several() -> None:
    imported = import_rows(xlsx_rows(as_xlsx(template(*QUESTIONS), sheets_before=2)))
    assert imported.questions == EXPECTED


REFUSALS = [
    (["", "", "A", "B", "", "", 20, 1], "the question text is missing"),
    (["", "Only one answer?", "A", "", "", "", 20, 1], "it has fewer than 2 answers"),
    (["", "Out of range?", "A", "B", "C", "D", 20, 5], "correct answer 5 is out of range (answers 1 to 4)"),
    (["", "Empty answer?", "A", "B", "", "", 20, "1,3"], "correct answer 3 names an empty answer"),
    (["", "Not a number?", "A", "B", "", "", 20, "first"], "the correct answer 'first' is not an answer number"),
    (["", "No correct answer?", "A", "B", "", "", 20, ""], "no correct answer is given"),
    (["", "Too quick?", "A", "B", "", "", 4, 1], "the time limit (seconds) 4 is not between 5 and 300"),
    (["", "Too slow?", "A", "B", "", "", 301, 1], "the time limit (seconds) 301 is not between 5 and 300"),
    (["", "Time in words?", "A", "B", "", "", "long", 1], "the time limit (seconds) 'long' is not a whole number"),
    (["", "Q" * 501, "A", "B", "", "", 20, 1], "the question is longer than 500 characters"),
    (["", "Long answer?", "A", "B" * 121, "", "", 20, 1], "answer 2 is longer than 120 characters"),
]


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_every_refused_row_is_reported_with_its_row_number_and_why(kind: str) -> None:
    rows = template(QUESTIONS[0], *[row for row, _ in REFUSALS], [], QUESTIONS[2])
    body = as_csv(rows) if kind == "csv" else as_xlsx(rows)
    imported = import_rows(csv_rows(body) if kind == "csv" else xlsx_rows(body))
    assert imported.questions == (EXPECTED[0], EXPECTED[2])  # the blank row is skipped without a word
    first = first_data_row() + 1
    assert imported.refused == tuple(Refusal(first + n, reason) for n, (_, reason) in enumerate(REFUSALS))


def test_a_file_with_nothing_valid_is_refused_with_every_row() -> None:
    with pytest.raises(NothingImported) as refused:
        import_rows(csv_rows(as_csv(template(REFUSALS[0][0], REFUSALS[1][0]))))
    assert refused.value.status == 422 and refused.value.code == "nothing_imported"
    assert refused.value.refused == [
        {"row": first_data_row(), "reason": REFUSALS[0][1]},
        {"row": first_data_row() + 1, "reason": REFUSALS[1][1]},
    ]


def test_rows_after_the_200th_question_are_refused() -> None:
    rows = [["Question", "Answer 1", "Answer 2", "Correct"], *[[f"Q{n}?", "a", "b", "1"] for n in range(203)]]
    imported = import_rows(csv_rows(as_csv(rows)))
    assert len(imported.questions) == 200
    assert imported.refused == tuple(Refusal(n, "the quiz already has 200 questions") for n in (202, 203, 204))


def test_a_sheet_without_a_header_row_is_a_bad_file() -> None:
    with pytest.raises(BadFile, match="no header row"):
        import_rows(csv_rows(as_csv([["What", "is", "this"], ["1", "2", "3"]])))
    late = [[f"note {n}"] for n in range(50)] + [KAHOOT_HEADER, QUESTIONS[0]]
    with pytest.raises(BadFile, match="no header row"):
        import_rows(csv_rows(as_csv(late)))  # the header must be among the first 50 rows


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_more_rows_than_the_cap_is_a_bad_file_and_trailing_blank_rows_are_not(kind: str) -> None:
    header = ["Question", "Answer 1", "Answer 2", "Correct"]
    fits = [header, *[["Q?", "a", "b", "1"]] * (MAX_ROWS - 1), *[[]] * 5]
    over = [header, *[["Q?", "a", "b", "1"]] * MAX_ROWS]
    read = csv_rows if kind == "csv" else xlsx_rows
    write = as_csv if kind == "csv" else as_xlsx
    assert len(read(write(fits))) <= MAX_ROWS
    with pytest.raises(BadFile, match=f"more than {MAX_ROWS} rows"):
        read(write(over))


def test_cells_are_cut_before_use_and_a_long_one_is_still_refused() -> None:
    rows = csv_rows(as_csv([["Question", "Answer 1", "Answer 2", "Correct"], ["x" * 100_000, "a", "b", "1"]]))
    assert len(rows[1][0]) == CELL_MAX
    with pytest.raises(NothingImported) as refused:
        import_rows(rows)
    assert refused.value.refused == [{"row": 2, "reason": "the question is longer than 500 characters"}]


def test_a_csv_field_past_the_csv_modules_limit_is_a_bad_file() -> None:
    body = b'Question,Answer 1,Answer 2,Correct\r\n"' + b"x" * 200_000 + b'",a,b,1\r\n'
    with pytest.raises(BadFile, match="CSV cannot be read"):
        csv_rows(body)


def zipped(parts: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    return out.getvalue()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"PK\x03\x04" + b"\x00" * 100, id="a broken zip"),
        pytest.param(zipped({"hello.txt": b"not a workbook"}), id="a zip that is no workbook"),
        pytest.param(zipped({"xl/sharedStrings.xml": b"\x00" * (MAX_UNPACKED + 1)}), id="a zip bomb"),
        pytest.param(zipped({f"part{n}": b"" for n in range(201)}), id="too many parts"),
    ],
)
def test_a_workbook_that_cannot_be_read_safely_is_a_bad_file(body: bytes) -> None:
    assert len(body) < 1_048_576  # each fits in the default body limit
    with pytest.raises(BadFile) as refused:
        xlsx_rows(body)
    assert refused.value.code == "bad_file" and refused.value.field == "file"


def test_a_workbook_with_a_broken_sheet_is_a_bad_file() -> None:
    good = zipfile.ZipFile(io.BytesIO(as_xlsx(template(*QUESTIONS))))
    parts = {name: good.read(name) for name in good.namelist()}
    parts["xl/worksheets/sheet1.xml"] = b"<worksheet><sheetData><row r='1'><c r='A1'"  # cut mid-tag
    with pytest.raises(BadFile):
        xlsx_rows(zipped(parts))


@pytest.mark.parametrize(
    ("body", "content_type", "filename", "requested", "expected"),
    [
        (b"whatever", "", "", "json", "json"),
        (b"PK\x03\x04rest", "text/csv", "quiz.csv", None, "xlsx"),  # a zip is a workbook whatever it is called
        (b"Question,Answer 1", "text/csv; charset=utf-8", "", None, "csv"),
        (b"{}", XLSX_MEDIA_TYPE, "", None, "xlsx"),
        (b"Question;Answer 1", "application/octet-stream", "quiz.CSV", None, "csv"),
        (b"Question;Answer 1", "application/vnd.ms-excel", "", None, "csv"),  # what Windows calls a .csv
        (b'\xef\xbb\xbf  {"title": "x"}', "", "", None, "json"),
        (b"anything else", "", "", None, "csv"),
    ],
)
def test_the_format_is_the_parameter_else_the_bytes_type_or_name(
    body: bytes, content_type: str, filename: str, requested: str | None, expected: str
) -> None:
    assert detect_format(body, content_type, filename, requested) == expected


def test_an_unknown_format_parameter_an_old_xls_and_a_form_upload_are_refused() -> None:
    with pytest.raises(InvalidInput) as invalid:
        detect_format(b"", "", "", "pdf")
    assert invalid.value.field == "format"
    with pytest.raises(BadFile, match=r"\.xls"):
        detect_format(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "", "quiz.xls", None)
    with pytest.raises(BadFile, match="multipart"):
        detect_format(b"--boundary\r\n", "multipart/form-data; boundary=boundary", "", None)


# --- titles and our JSON ---------------------------------------------------------------------------------------


def test_the_title_is_the_parameter_else_the_title_cell_else_the_file_name() -> None:
    assert import_title("Mine", "From the sheet", "file.xlsx") == "Mine"
    assert import_title(None, "From the sheet", "file.xlsx") == "From the sheet"
    assert import_title(None, "", "C:\\Users\\ann\\Capitals of Europe.xlsx") == "Capitals of Europe"
    assert import_title(None, "", "") == DEFAULT_TITLE
    assert import_title(None, "", "x" * 300 + ".csv") == "x" * 200
    for bad in ("", "  ", "t" * 201):
        with pytest.raises(InvalidInput) as invalid:
            import_title(bad, "", "")
        assert invalid.value.field == "title"


QUIZ = {"title": "Exported", "questions": [{"text": "Q?", "choices": ["a", "b"], "correct": [1]}]}


def test_our_export_is_marked_and_imports_back_to_the_same_quiz() -> None:
    exported = export_document(QUIZ)
    assert exported["format"] == FORMAT and exported["format_version"] == 1
    assert quiz_from_json(exported) == quiz_from_json(QUIZ)  # a bare quiz document imports too
    assert quiz_from_json(exported).title == "Exported"


def test_json_of_another_format_or_a_newer_version_is_a_bad_file_and_a_bad_quiz_names_its_field() -> None:
    with pytest.raises(BadFile, match="not a quizroom quiz"):
        quiz_from_json({**QUIZ, "format": "kahoot"})
    with pytest.raises(BadFile, match="newer quizroom"):
        quiz_from_json({**export_document(QUIZ), "format_version": 2})
    with pytest.raises(InvalidInput) as invalid:
        quiz_from_json(export_document({**QUIZ, "questions": [{"text": "Q?", "choices": ["a"], "correct": [0]}]}))
    assert invalid.value.field == "questions[0].choices"
