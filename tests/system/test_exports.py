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
HOSTILE = '=HYPERLINK("x","y")'


async def played(http: httpx.AsyncClient) -> tuple[Host, dict[str, Player]]:
    """Ann answers both right, Bob the first wrong and not the second, `=HYPERLINK…` the first right; Cy never."""
    response = await http.post("/api/rooms", json={"quiz": QUIZ})
    host = Host(http, response.json())
    players = {name: await host.join(name) for name in ("Ann", "Bob", "Cy", HOSTILE)}
    await asyncio.gather(*(p.connect() for p in players.values()))
    await host.command("start")
    await asyncio.gather(*(p.expect("question") for p in players.values()))
    for name, choice in (("Ann", 0), ("Bob", 1), (HOSTILE, 0)):
        await players[name].answer(0, choice)
        assert (await players[name].expect("answer_ack"))["accepted"]
    await host.command("close")
    await host.command("next")
    await players["Ann"].expect("question")
    await players["Ann"].answer(1, [0, 2])
    assert (await players["Ann"].expect("answer_ack"))["accepted"]
    await host.command("end")
    return host, players


async def get(host: Host, query: str, accept: str = "application/json") -> httpx.Response:
    return await host.http.get(f"/api/rooms/{host.pin}/results{query}", headers={**host.headers, "Accept": accept})


async def test_the_exports_have_every_player_once_with_answer_texts(
    server: ServerProcess, http: httpx.AsyncClient
) -> None:
    host, players = await played(http)

    document = (await get(host, "")).json()
    assert [q["number"] for q in document["questions"]] == [1, 2]
    assert document["questions"][1]["choices"] == ["2", "4", "5"] and document["questions"][1]["correct"] == [0, 2]
    by_name = {p["nickname"]: p for p in document["players"]}
    assert set(by_name) == {"Ann", "Bob", "Cy", HOSTILE}, "a player who never answered is in the document"
    assert by_name["Cy"]["answers"] == [] and by_name["Cy"]["score"] == 0 and by_name["Cy"]["correct_count"] == 0
    ann = by_name["Ann"]
    assert ann["correct_count"] == 2 and ann["rank"] == 1
    assert [a["answer"] for a in ann["answers"]] == [["=2"], ["2", "5"]]
    assert [(a["question"], a["number"], a["choices"]) for a in ann["answers"]] == [(0, 1, [0]), (1, 2, [0, 2])]

    # SPEC §2's CSV: one row per stored answer, exactly as before.
    spec_rows = list(csv.reader(io.StringIO((await get(host, "", "text/csv")).text)))
    assert spec_rows[0] == ["player_id", "nickname", "question", "choices", "correct", "points", "response_ms"]
    assert len(spec_rows) == 1 + 4 and {r[1] for r in spec_rows[1:]} == {"Ann", "Bob", "'" + HOSTILE}
    assert sorted(r[3] for r in spec_rows[1:] if r[1] == "Ann") == ["0", "0|2"]

    # The teacher's CSV: a row per player, in rank order, Cy included.
    response = await get(host, "?layout=players&format=csv")
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="quizroom-' in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    header = rows[0]
    assert header[:4] == ["rank", "nickname", "score", "correct answers"]
    assert header[4:8] == [
        "Q1 =1+1 is? — answer",
        "Q1 =1+1 is? — correct",
        "Q1 =1+1 is? — points",
        "Q1 =1+1 is? — time (s)",
    ]
    assert header[8].startswith("Q2 Pick the primes") and len(header) == 4 + 2 * 4
    table = {row[1]: row for row in rows[1:]}
    assert set(table) == {"Ann", "Bob", "Cy", "'" + HOSTILE}, "a formula-looking nickname is quoted, Cy is there"
    assert table["Ann"][0] == "1" and table["Ann"][3] == "2" and table["Ann"][8] == "2 | 5"
    assert table["Ann"][4] == "'=2", "a choice text that looks like a formula is quoted"
    assert table["Bob"][4:7] == ["3", "no", "0"] and table["Bob"][8:12] == ["", "", "0", ""]
    assert table["Cy"][2:4] == ["0", "0"] and table["Cy"][4:8] == ["", "", "0", ""]
    assert int(table["Ann"][2]) == by_name["Ann"]["score"]
    assert [row[1] for row in rows[1:]][0] == "Ann"

    # XLSX: the same table, numbers as numbers, text as text (never a formula), and a sheet of questions.
    for query, accept in (("?format=xlsx", "*/*"), ("", XLSX)):
        response = await get(host, query, accept)
        assert response.status_code == 200 and response.headers["content-type"] == XLSX
        book = openpyxl.load_workbook(io.BytesIO(response.content))
        sheet = book["Results"]
        assert sheet.freeze_panes == "A2", "the header stays in view"
        values = [[cell.value for cell in row] for row in sheet.iter_rows()]
        assert values[0][:4] == ["rank", "nickname", "score", "correct answers"]
        sheet_rows = {row[1]: row for row in values[1:]}
        assert set(sheet_rows) == {"Ann", "Bob", "Cy", HOSTILE}
        assert sheet_rows["Ann"][0] == 1 and sheet_rows["Ann"][2] == by_name["Ann"]["score"]
        assert isinstance(sheet_rows["Ann"][7], float) and sheet_rows["Ann"][8] == "2 | 5"
        assert sheet_rows["Cy"][2] == 0 and sheet_rows["Cy"][6] == 0
        hostile = next(row for row in sheet.iter_rows(min_row=2) if row[1].value == HOSTILE)
        assert hostile[1].data_type == "s", "a nickname that looks like a formula stays a string"
        assert sheet["E1"].data_type == "s" and sheet_rows["Ann"][4] == "=2"
        questions = [[cell.value for cell in row] for row in book["Questions"].iter_rows()]
        assert questions[1] == [1, "=1+1 is?", "=2 | 3", "=2", 3, 2]
        assert questions[2] == [2, "Pick the primes", "2 | 4 | 5", "2 | 5", 1, 1]
    assert len(players) == 4


async def test_export_paging_and_bad_parameters(server: ServerProcess, http: httpx.AsyncClient) -> None:
    host, _ = await played(http)
    page = list(csv.reader(io.StringIO((await get(host, "?layout=players&format=csv&offset=1&limit=2")).text)))
    assert len(page) == 1 + 2 and page[1][0] != "1", "the second and third players by rank"
    json_page = (await get(host, "?offset=3&limit=10")).json()
    assert len(json_page["players"]) == 1 and json_page["paging"]["total"] == 4
    for query, field in (("?format=pdf", "format"), ("?layout=grid", "layout"), ("?format=xlsx&limit=0", "limit")):
        response = await get(host, query)
        assert response.status_code == 422, (query, response.text)
        assert response.json()["error"]["field"] == field
