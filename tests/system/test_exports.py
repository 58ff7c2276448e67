"""Results a teacher can use (docs/protocol.md, "Results exports"), from a real server on both backends: one row per
player in CSV and XLSX (read back with openpyxl), players who never answered included, questions numbered from 1
with their text, answers as text; SPEC §2's JSON and per-answer CSV unchanged beside them."""

from __future__ import annotations

import asyncio
import csv
import io
from typing import Any

import httpx
import openpyxl

from tests.gameclient import Host, Player
from tests.serverproc import ServerProcess

QUIZ: dict[str, Any] = {
    "title": "Export quiz",
    "questions": [
        {"text": "=1+1 is?", "choices": ["=2", "3"], "correct": [0], "time_limit_ms": 60_000},
        {"text": "Pick the primes", "choices": ["2", "4", "5"], "correct": [0, 2], "time_limit_ms": 60_000},
    ],
}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
HOSTILE = '=HYPERLINK("http://x")'  # SPEC's 24-character nicknames leave no room for the second argument
SPEC_HEADER = ["player_id", "nickname", "question", "choices", "correct", "points", "response_ms"]


async def played(http: httpx.AsyncClient) -> tuple[Host, dict[str, Player]]:
    """Question 1 (single choice): Ann and `=HYPERLINK…` right, Bob wrong. Question 2 (multi): Ann the exact set,
    `=HYPERLINK…` part of it (wrong), Bob nothing. Cy never answers."""
    response = await http.post("/api/rooms", json={"quiz": QUIZ})
    assert response.status_code == 201, response.text
    host = Host(http, response.json())
    players = {name: await host.join(name) for name in ("Ann", "Bob", "Cy", HOSTILE)}
    await asyncio.gather(*(p.connect() for p in players.values()))
    await host.command("start")
    await asyncio.gather(*(p.expect("question") for p in players.values()))
    for name, choice in (("Ann", 0), (HOSTILE, 0), ("Bob", 1)):
        await players[name].answer(0, choice)
        assert (await players[name].expect("answer_ack"))["accepted"]
    await host.command("close")
    await host.command("next")
    for name, choices in (("Ann", [0, 2]), (HOSTILE, [0])):
        await players[name].expect("question")
        await players[name].answer(1, choices)
        assert (await players[name].expect("answer_ack"))["accepted"]
    await host.command("end")
    return host, players


async def get(host: Host, query: str, accept: str = "application/json") -> httpx.Response:
    response = await host.http.get(f"/api/rooms/{host.pin}/results{query}", headers={**host.headers, "Accept": accept})
    return response


def csv_rows(response: httpx.Response) -> list[list[str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.text)))


def quoted(text: str) -> str:
    """OWASP's rule as the CSV exports apply it (docs/protocol.md, *Hardening*)."""
    return "'" + text if text.startswith(("=", "+", "-", "@", "\t", "\r")) else text


def spec_csv_of(document: dict[str, Any]) -> list[list[str]]:
    """SPEC §2's CSV, derived by hand from SPEC §2's JSON fields: questions from 0, choices as `0|2`."""
    rows = [SPEC_HEADER]
    for player in document["players"]:
        for a in player["answers"]:
            choices = "|".join(str(c) for c in a["choices"])
            row = [player["player_id"], quoted(player["nickname"]), str(a["question"]), choices]
            rows.append(row + [str(a["correct"]).lower(), str(a["points"]), str(a["response_ms"])])
    return rows


async def test_json_keeps_spec_fields_and_adds_numbers_texts_and_correct_counts(
    server: ServerProcess, http: httpx.AsyncClient
) -> None:
    host, _ = await played(http)
    document = (await get(host, "")).json()
    assert document["title"] == "Export quiz" and document["phase"] == "finished" and document["pin"] == host.pin
    assert [(q["index"], q["number"], q["text"]) for q in document["questions"]] == [
        (0, 1, "=1+1 is?"),
        (1, 2, "Pick the primes"),
    ]
    assert document["questions"][1]["choices"] == ["2", "4", "5"] and document["questions"][1]["correct"] == [0, 2]
    assert [p["nickname"] for p in document["players"]] == ["Ann", HOSTILE, "Bob", "Cy"], "rank order"
    assert [p["rank"] for p in document["players"]] == [1, 2, 3, 3], "Bob and Cy tie on 0"
    assert [p["correct_count"] for p in document["players"]] == [2, 1, 0, 0]
    by_name = {p["nickname"]: p for p in document["players"]}
    assert by_name["Cy"]["answers"] == [] and by_name["Cy"]["score"] == 0, "a player who never answered is there"
    for player in document["players"]:
        assert set(player) >= {"player_id", "nickname", "score", "rank", "answers"}
        assert player["score"] == sum(a["points"] for a in player["answers"])
        for a in player["answers"]:
            assert set(a) >= {"question", "choices", "correct", "points", "response_ms"}
            assert a["number"] == a["question"] + 1
            assert a["answer"] == [QUIZ["questions"][a["question"]]["choices"][c] for c in a["choices"]]
    assert [a["answer"] for a in by_name["Ann"]["answers"]] == [["=2"], ["2", "5"]]
    assert [(a["choices"], a["correct"]) for a in by_name[HOSTILE]["answers"]] == [([0], True), ([0], False)]


async def test_spec_csv_is_one_row_per_stored_answer_as_before(server: ServerProcess, http: httpx.AsyncClient) -> None:
    host, _ = await played(http)
    document = (await get(host, "")).json()
    expected = spec_csv_of(document)
    assert len(expected) == 1 + 5
    for query, accept in (("", "text/csv"), ("?format=csv", "*/*"), ("?layout=answers", "text/csv")):
        response = await get(host, query, accept)
        assert csv_rows(response) == expected, query
        assert response.headers["content-disposition"] == f'attachment; filename="quizroom-{host.pin}.csv"'


async def test_per_player_csv_has_every_player_ranked_with_answer_texts(
    server: ServerProcess, http: httpx.AsyncClient
) -> None:
    host, _ = await played(http)
    scores = {p["nickname"]: p["score"] for p in (await get(host, "")).json()["players"]}
    for query, accept in (("?layout=players&format=csv", "*/*"), ("?layout=players", "text/csv")):
        response = await get(host, query, accept)
        rows = csv_rows(response)
        disposition = f'attachment; filename="quizroom-{host.pin}-results.csv"'
        assert response.headers["content-disposition"] == disposition
        header = rows[0]
        assert header[:4] == ["rank", "nickname", "score", "correct answers"]
        assert header[4:] == [
            f"Q{n} {text} — {part}"
            for n, text in ((1, "=1+1 is?"), (2, "Pick the primes"))
            for part in ("answer", "correct", "points", "time (s)")
        ]
        assert [row[1] for row in rows[1:]] == ["Ann", quoted(HOSTILE), "Bob", "Cy"], "every player once, quoted"
        table = {row[1]: row for row in rows[1:]}
        ann, hostile, bob, cy = table["Ann"], table[quoted(HOSTILE)], table["Bob"], table["Cy"]
        assert [r[0] for r in (ann, hostile, bob, cy)] == ["1", "2", "3", "3"]
        assert [r[3] for r in (ann, hostile, bob, cy)] == ["2", "1", "0", "0"]
        assert [int(r[2]) for r in (ann, hostile, bob, cy)] == [scores[n] for n in ("Ann", HOSTILE, "Bob", "Cy")]
        assert ann[4:6] == ["'=2", "yes"], "a choice text that looks like a formula is quoted"
        assert ann[8:10] == ["2 | 5", "yes"] and hostile[8:11] == ["2", "no", "0"]
        assert int(ann[6]) + int(ann[10]) == scores["Ann"]
        assert 0 <= float(ann[7]) < 60 and 0 <= float(ann[11]) < 60, "time in seconds"
        assert bob[4:7] == ["3", "no", "0"] and bob[8:12] == ["", "", "0", ""]
        assert cy[2:] == ["0", "0", "", "", "0", "", "", "", "0", ""], "no answers: empty cells, 0 points"


async def test_xlsx_has_the_same_table_numbers_as_numbers_and_text_never_a_formula(
    server: ServerProcess, http: httpx.AsyncClient
) -> None:
    host, _ = await played(http)
    scores = {p["nickname"]: p["score"] for p in (await get(host, "")).json()["players"]}
    csv_table = csv_rows(await get(host, "?layout=players&format=csv"))
    for query, accept in (("?format=xlsx", "*/*"), ("", XLSX), ("?format=xlsx", "text/csv")):
        response = await get(host, query, accept)
        assert response.status_code == 200 and response.headers["content-type"] == XLSX, (query, accept)
        disposition = f'attachment; filename="quizroom-{host.pin}-results.xlsx"'
        assert response.headers["content-disposition"] == disposition
        book = openpyxl.load_workbook(io.BytesIO(response.content))
        assert book.sheetnames == ["Results", "Questions"]
        sheet = book["Results"]
        assert sheet.freeze_panes == "A2", "the header stays in view"
        values = [[cell.value for cell in row] for row in sheet.iter_rows()]
        assert values[0] == csv_table[0], "the same columns as the per-player CSV"
        assert [row[1] for row in values[1:]] == ["Ann", HOSTILE, "Bob", "Cy"]
        rows = {row[1]: row for row in values[1:]}
        for name, row in rows.items():
            assert all(isinstance(row[i], int) for i in (0, 2, 3, 6, 10)), (name, row)
            assert row[2] == scores[name]
        assert [rows[n][0] for n in ("Ann", HOSTILE, "Bob", "Cy")] == [1, 2, 3, 3]
        assert rows["Ann"][4:7] == ["=2", "yes", int(csv_table[1][6])] and rows["Ann"][8] == "2 | 5"
        assert isinstance(rows["Ann"][7], float) and str(rows["Ann"][7]) == csv_table[1][7]
        assert rows["Cy"][2:] == [0, 0, None, None, 0, None, None, None, 0, None], "no answers: empty, 0 points"
        cells = {row[1].value: row for row in sheet.iter_rows(min_row=2)}
        assert cells[HOSTILE][1].data_type == "s", "a nickname that looks like a formula stays a string"
        assert cells["Ann"][4].data_type == "s", "so does a choice text"
        assert all(cell.data_type == "s" for cell in next(sheet.iter_rows(max_row=1)))
        assert all(width >= 8 for width in (d.width for d in sheet.column_dimensions.values()))
        questions = book["Questions"]
        assert [[c.value for c in row] for row in questions.iter_rows()] == [
            ["question", "text", "choices", "correct answers", "answered", "right"],
            [1, "=1+1 is?", "=2 | 3", "=2", 3, 2],
            [2, "Pick the primes", "2 | 4 | 5", "2 | 5", 2, 1],
        ]
        assert all(questions.cell(2, column).data_type == "s" for column in (2, 3, 4)), "question texts too"


async def test_every_format_pages_its_players(server: ServerProcess, http: httpx.AsyncClient) -> None:
    host, _ = await played(http)
    page = csv_rows(await get(host, "?layout=players&format=csv&offset=1&limit=2"))
    assert [row[1] for row in page[1:]] == [quoted(HOSTILE), "Bob"], "the second and third players by rank"
    spec_page = csv_rows(await get(host, "?offset=0&limit=1", "text/csv"))
    assert spec_page[0] == SPEC_HEADER and [row[1] for row in spec_page[1:]] == ["Ann", "Ann"]
    json_page = (await get(host, "?offset=3&limit=10")).json()
    assert [p["nickname"] for p in json_page["players"]] == ["Cy"]
    assert json_page["paging"] == {"offset": 3, "limit": 10, "total": 4, "next_offset": None}
    book = openpyxl.load_workbook(io.BytesIO((await get(host, "?format=xlsx&offset=2&limit=1")).content))
    assert [row[1] for row in book["Results"].iter_rows(min_row=2, values_only=True)] == ["Bob"]
    summary = list(book["Questions"].iter_rows(min_row=2, values_only=True))
    assert [(row[4], row[5]) for row in summary] == [(3, 2), (2, 1)], "the question sheet counts the whole room"


async def test_bad_export_parameters_are_422_with_the_field(server: ServerProcess, http: httpx.AsyncClient) -> None:
    host, _ = await played(http)
    for query, field in (
        ("?format=pdf", "format"),
        ("?format=", "format"),
        ("?format=XLSX", "format"),
        ("?layout=grid", "layout"),
        ("?layout=players&format=csv&limit=0", "limit"),
        ("?format=xlsx&offset=-1", "offset"),
    ):
        response = await get(host, query)
        assert response.status_code == 422, (query, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid" and error["field"] == field, (query, error)
    response = await http.get(f"/api/rooms/{host.pin}/results?format=xlsx")
    assert response.status_code == 401 and response.json()["error"]["code"], "no workbook without the host token"


async def test_xlsx_of_a_room_without_answers_drops_control_characters(
    server: ServerProcess, http: httpx.AsyncClient
) -> None:
    """A question's text may hold a control character (SPEC §1 does not forbid it) that XLSX cannot store."""
    quiz = {"title": "Bell", "questions": [{"text": "Ring\x07 it?", "choices": ["a\x1bb", "c"], "correct": [1]}]}
    host = await Host.open(http, quiz)
    await host.join("Dee")
    await host.command("end")
    response = await get(host, "?format=xlsx")
    assert response.status_code == 200, response.text
    book = openpyxl.load_workbook(io.BytesIO(response.content))
    assert list(book["Results"].iter_rows(values_only=True)) == [
        ("rank", "nickname", "score", "correct answers")
        + tuple(f"Q1 Ring it? — {part}" for part in ("answer", "correct", "points", "time (s)")),
        (1, "Dee", 0, 0, None, None, 0, None),
    ]
    assert list(book["Questions"].iter_rows(min_row=2, values_only=True)) == [(1, "Ring it?", "ab | c", "c", 0, 0)]
    assert csv_rows(await get(host, "?layout=players&format=csv"))[0][4] == "Q1 Ring\x07 it? — answer", "CSV keeps it"
