"""Quiz import and export (docs/protocol.md, "Quiz import and export") on a real server, on both backends: our JSON
file round trip, Kahoot's template as CSV and XLSX with every refused row reported, and the refusals of files that
cannot be read, each a 4xx with its code."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
from openpyxl import Workbook

from tests.unit.test_quiz_import import KAHOOT_HEADER, PREAMBLE, QUESTIONS

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
QUIZ: dict[str, Any] = {
    "title": "Sciences & arts — été",
    "questions": [
        {"text": "Closest planet?", "choices": ["Venus", "Mercury"], "correct": [1], "time_limit_ms": 10_000},
        {"text": "Noble gases?", "choices": ["He", "N", "Ne"], "correct": [0, 2], "points": 500},
    ],
}


def kahoot_csv(*rows: list[Any]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows([*PREAMBLE, KAHOOT_HEADER, *rows])
    return out.getvalue().encode()


def kahoot_xlsx(*rows: list[Any]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in [*PREAMBLE, KAHOOT_HEADER, *rows]:
        sheet.append([None if cell == "" else cell for cell in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def imported(http: httpx.AsyncClient, body: bytes, query: str = "", content_type: str = "") -> dict[str, Any]:
    headers = {"content-type": content_type} if content_type else {}
    response = await http.post(f"/api/quizzes/import{query}", content=body, headers=headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def refusal(http: httpx.AsyncClient, body: bytes, query: str = "", content_type: str = "") -> httpx.Response:
    headers = {"content-type": content_type} if content_type else {}
    return await http.post(f"/api/quizzes/import{query}", content=body, headers=headers)


async def questions_of(http: httpx.AsyncClient, quiz_id: str) -> list[dict[str, Any]]:
    response = await http.get(f"/api/quizzes/{quiz_id}")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["questions"]
    return found


async def test_an_exported_quiz_is_a_marked_download_that_imports_back_the_same(http: httpx.AsyncClient) -> None:
    quiz_id = (await http.post("/api/quizzes", json=QUIZ)).json()["quiz_id"]
    response = await http.get(f"/api/quizzes/{quiz_id}/export")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="sciences-arts-ete.json"')
    assert "filename*=UTF-8''Sciences%20%26%20arts%20%E2%80%94%20%C3%A9t%C3%A9.json" in disposition
    exported = response.json()
    assert exported["format"] == "quizroom/quiz" and exported["format_version"] == 1
    assert exported["title"] == QUIZ["title"]

    result = await imported(http, response.content, content_type="application/json")
    assert result["imported"] == 2 and result["refused"] == [] and result["title"] == QUIZ["title"]
    assert result["quiz_id"] != quiz_id and result["version"] == 1
    assert await questions_of(http, result["quiz_id"]) == await questions_of(http, quiz_id)
    # The file is still a quiz for POST /api/quizzes, and ?title= renames an import.
    assert (await http.post("/api/quizzes", json=exported)).status_code == 201
    renamed = await imported(http, response.content, "?title=Renamed")
    assert renamed["title"] == "Renamed"


async def test_kahoots_template_imports_from_csv_and_xlsx_with_every_refused_row_reported(
    http: httpx.AsyncClient,
) -> None:
    rows = [*QUESTIONS, ["", "No answers?", "", "", "", "", 20, 1], ["", "Late?", "A", "B", "", "", 7, 9]]
    header_row = len(PREAMBLE) + 1
    expected_refused = [
        {"row": header_row + 4, "reason": "it has fewer than 2 answers"},
        {"row": header_row + 5, "reason": "correct answer 9 is out of range (answers 1 to 4)"},
    ]
    from_csv = await imported(http, kahoot_csv(*rows), "?filename=Planets%20quiz.csv", "text/csv")
    assert from_csv["title"] == "Planets quiz"
    from_xlsx = await imported(http, kahoot_xlsx(*rows), "?filename=ignored.xlsx&title=From%20Excel")
    assert from_xlsx["title"] == "From Excel"
    for result in (from_csv, from_xlsx):
        assert result["imported"] == 3 and result["question_count"] == 3
        assert result["refused"] == expected_refused
    questions = await questions_of(http, from_xlsx["quiz_id"])
    assert questions == await questions_of(http, from_csv["quiz_id"])
    assert questions[1] == {
        "text": "Which are noble gases?",
        "choices": ["Helium", "Nitrogen", "Neon"],
        "correct": [0, 2],
        "time_limit_ms": 30_000,
        "points": 1000,
    }
    listed = (await http.get("/api/quizzes")).json()["quizzes"]
    assert [item["title"] for item in listed] == ["From Excel", "Planets quiz"]
    room = await http.post("/api/rooms", json={"quiz_id": from_csv["quiz_id"]})
    assert room.status_code == 201  # an imported quiz opens a room like any saved one


async def test_an_import_with_nothing_valid_is_422_with_every_refused_row(http: httpx.AsyncClient) -> None:
    response = await refusal(http, kahoot_csv(["", "", "A", "B", "", "", 20, 1]), "?format=csv")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "nothing_imported" and error["field"] == "file"
    assert error["refused"] == [{"row": len(PREAMBLE) + 2, "reason": "the question text is missing"}]
    assert (await http.get("/api/quizzes")).json()["paging"]["total"] == 0


async def test_files_that_cannot_be_read_are_refused_with_a_code(http: httpx.AsyncClient) -> None:
    cases: list[tuple[bytes, str, str, int, str, str]] = [
        (b"PK\x03\x04" + b"\x00" * 64, "", XLSX, 422, "bad_file", "file"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64, "?filename=old.xls", "", 422, "bad_file", "file"),
        (b"just,some,text\n1,2,3\n", "", "text/csv", 422, "bad_file", "file"),
        (b'{"title": "x", "questions": [', "", "application/json", 422, "bad_file", "file"),
        (b'{"format": "kahoot"}', "", "", 422, "bad_file", "file"),
        (b'{"title": "x", "questions": []}', "", "application/json", 422, "invalid", "questions"),
        (b"Question,Answer 1", "?format=pdf", "", 422, "invalid", "format"),
        (b"Question,Answer 1", "?title=", "", 422, "invalid", "title"),
        (b"x" * (1_048_576 + 1), "", "text/csv", 413, "too_big", ""),
    ]
    for body, query, content_type, status, code, field in cases:
        response = await refusal(http, body, query, content_type)
        assert response.status_code == status, (body[:40], query, response.text)
        error = response.json()["error"]
        assert error["code"] == code and error.get("field", "") == field, (body[:40], error)
    assert (await http.get("/api/quizzes")).json()["paging"]["total"] == 0
