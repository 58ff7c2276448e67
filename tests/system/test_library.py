"""The quiz library (docs/protocol.md, "Quiz library") on a real server, on both backends: list with paging and
search, read, replace, copy, delete; rooms keep the version they were opened with, across a restart too; the admin
token guards every call when configured."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gameclient import Host, Player, quiz
from tests.serverproc import ServerProcess


def titled(title: str, questions: int = 2, prefix: str = "Question") -> dict[str, Any]:
    document = quiz(questions)
    for i, question in enumerate(document["questions"]):
        question["text"] = f"{prefix} {i}?"
    return {**document, "title": title}


async def save(http: httpx.AsyncClient, document: dict[str, Any], **headers: str) -> dict[str, Any]:
    response = await http.post("/api/quizzes", json=document, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def listed(http: httpx.AsyncClient, query: str = "") -> dict[str, Any]:
    response = await http.get(f"/api/quizzes{query}")
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def titles(page: dict[str, Any]) -> list[str]:
    return [item["title"] for item in page["quizzes"]]


async def test_the_library_lists_saved_quizzes_newest_edited_first_with_paging_and_search(
    http: httpx.AsyncClient,
) -> None:
    saved = [await save(http, titled(name)) for name in ("Capitals", "Rivers", "Mountains", "Capital cities", "Été")]
    await Host.open(http, titled("Inline, never listed"))
    page = await listed(http)
    assert titles(page) == ["Été", "Capital cities", "Mountains", "Rivers", "Capitals"]
    assert page["paging"] == {"offset": 0, "limit": 20, "total": 5, "next_offset": None}
    first = page["quizzes"][-1]
    assert first == {
        "quiz_id": saved[0]["quiz_id"],
        "title": "Capitals",
        "question_count": 2,
        "created_at_ms": first["created_at_ms"],
        "updated_at_ms": first["created_at_ms"],
        "version": 1,
    }
    assert saved[0] == first  # POST answers the same summary
    page = await listed(http, "?offset=1&limit=2")
    assert titles(page) == ["Capital cities", "Mountains"]
    assert page["paging"] == {"offset": 1, "limit": 2, "total": 5, "next_offset": 3}
    assert titles(await listed(http, "?q=CAPITAL")) == ["Capital cities", "Capitals"]
    assert titles(await listed(http, "?q=%C3%A9T%C3%89")) == ["Été"]  # "éTÉ"
    assert (await listed(http, "?q=nothing"))["paging"]["total"] == 0
    for bad in ("limit=0", "limit=101", "offset=-1", "limit=x", "q=" + "q" * 201):
        response = await http.get(f"/api/quizzes?{bad}")
        assert response.status_code == 422, bad
        assert response.json()["error"]["field"] == bad.split("=")[0]


async def test_a_replaced_quiz_is_its_next_version_and_a_room_opened_before_keeps_its_own(
    server: ServerProcess, http: httpx.AsyncClient
) -> None:
    quiz_id = (await save(http, titled("Before", 2, "Old")))["quiz_id"]
    response = await http.post("/api/rooms", json={"quiz_id": quiz_id})
    assert response.status_code == 201, response.text
    before = Host(http, response.json())
    ann = await before.join("Ann")
    await ann.connect()

    replaced = await http.put(f"/api/quizzes/{quiz_id}", json=titled("After", 3, "New"))
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["version"] == 2 and replaced.json()["question_count"] == 3
    fetched = (await http.get(f"/api/quizzes/{quiz_id}")).json()
    assert fetched["title"] == "After" and fetched["version"] == 2 and fetched["quiz_id"] == quiz_id
    assert [q["text"] for q in fetched["questions"]] == ["New 0?", "New 1?", "New 2?"]
    assert fetched["updated_at_ms"] >= fetched["created_at_ms"]

    await before.command("start")
    assert (await ann.expect("question"))["text"] == "Old 0?"
    assert (await before.state())["question_count"] == 2
    after = Host(http, (await http.post("/api/rooms", json={"quiz_id": quiz_id})).json())
    assert (await after.state())["question_count"] == 3

    # Deleted too, then the server restarts: the room loads its own version from storage.
    assert (await http.delete(f"/api/quizzes/{quiz_id}")).status_code == 204
    await ann.close()
    server.restart()
    welcome = await ann.connect()
    assert welcome is not None and welcome["question"]["text"] == "Old 0?" and welcome["question_count"] == 2
    results = await before.results()
    assert results["title"] == "Before" and [q["text"] for q in results["questions"]] == ["Old 0?", "Old 1?"]
    await before.command("close")
    await before.command("next")
    assert (await ann.expect("question"))["text"] == "Old 1?"
    assert (await after.results())["title"] == "After"
    await ann.close()


async def test_a_deleted_quiz_is_gone_from_every_call(http: httpx.AsyncClient) -> None:
    quiz_id = (await save(http, titled("Doomed")))["quiz_id"]
    kept = (await save(http, titled("Kept")))["quiz_id"]
    assert (await http.delete(f"/api/quizzes/{quiz_id}")).status_code == 204
    for method, path in [
        ("GET", ""),
        ("PUT", ""),
        ("DELETE", ""),
        ("POST", "/copy"),
        ("GET", "/export"),
    ]:
        body = titled("x") if method == "PUT" else None
        response = await http.request(method, f"/api/quizzes/{quiz_id}{path}", json=body)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"]["code"] == "not_found"
    assert (await http.post("/api/rooms", json={"quiz_id": quiz_id})).status_code == 404
    assert [item["quiz_id"] for item in (await listed(http))["quizzes"]] == [kept]


async def test_a_copy_is_a_new_quiz_titled_as_a_copy_within_the_limit(http: httpx.AsyncClient) -> None:
    original = await save(http, titled("Planets", 3))
    response = await http.post(f"/api/quizzes/{original['quiz_id']}/copy")
    assert response.status_code == 201, response.text
    copy = response.json()
    assert copy["quiz_id"] != original["quiz_id"]
    assert copy["title"] == "Planets (copy)" and copy["version"] == 1 and copy["question_count"] == 3
    copied = (await http.get(f"/api/quizzes/{copy['quiz_id']}")).json()
    source = (await http.get(f"/api/quizzes/{original['quiz_id']}")).json()
    assert copied["questions"] == source["questions"] and source["title"] == "Planets"
    assert titles(await listed(http)) == ["Planets (copy)", "Planets"]
    long = await save(http, titled("L" * 200))
    copy = (await http.post(f"/api/quizzes/{long['quiz_id']}/copy")).json()
    assert copy["title"] == "L" * 193 + " (copy)"


async def test_an_invalid_save_is_422_with_the_field_path_and_changes_nothing(http: httpx.AsyncClient) -> None:
    quiz_id = (await save(http, titled("Valid")))["quiz_id"]
    bad = titled("Valid")
    bad["questions"][1]["choices"] = ["only one"]
    for method, path in [("POST", "/api/quizzes"), ("PUT", f"/api/quizzes/{quiz_id}")]:
        response = await http.request(method, path, json=bad)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["field"] == "questions[1].choices"
    response = await http.put(f"/api/quizzes/{quiz_id}", content=b"{not json")
    assert response.status_code == 422
    assert (await http.get(f"/api/quizzes/{quiz_id}")).json()["version"] == 1
    assert (await listed(http))["paging"]["total"] == 1


async def test_a_method_a_library_path_does_not_take_is_405_naming_those_it_does(http: httpx.AsyncClient) -> None:
    response = await http.patch("/api/quizzes/anything", json={})
    assert response.status_code == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) >= {"GET", "PUT", "DELETE"}
    assert response.json()["error"]["code"] == "method_not_allowed"


async def test_with_an_admin_token_every_library_call_needs_it(start_server, database_url: str) -> None:  # type: ignore[no-untyped-def]
    server = start_server(database_url, "--admin-token", "s3cret")
    admin = {"Authorization": "Bearer s3cret"}
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as client:
        quiz_id = (await save(client, titled("Secret"), **admin))["quiz_id"]
        calls: list[tuple[str, str, dict[str, Any]]] = [
            ("GET", "/api/quizzes", {}),
            ("POST", "/api/quizzes", {"json": titled("x")}),
            ("GET", f"/api/quizzes/{quiz_id}", {}),
            ("PUT", f"/api/quizzes/{quiz_id}", {"json": titled("x")}),
            ("POST", f"/api/quizzes/{quiz_id}/copy", {}),
            ("GET", f"/api/quizzes/{quiz_id}/export", {}),
            ("POST", "/api/quizzes/import", {"json": titled("x")}),
            ("DELETE", f"/api/quizzes/{quiz_id}", {}),
            ("GET", "/api/quizzes/no-such-quiz", {}),  # 401 before 404: ids cannot be probed
        ]
        for method, path, extra in calls:
            for headers in ({}, {"Authorization": "Bearer wrong"}):
                response = await client.request(method, path, headers=headers, **extra)
                assert response.status_code == 401, (method, path)
                assert response.json()["error"]["code"] == "unauthorized"
        for method, path, extra in calls:
            response = await client.request(method, path, headers=admin, **extra)
            assert response.status_code in (200, 201, 204, 404), (method, path, response.text)
            assert response.status_code != 404 or path.endswith("no-such-quiz")


async def test_saved_quizzes_meet_the_creation_meter(start_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = start_server(
        f"sqlite:///{tmp_path / 'meter.db'}", "--create-rate-per-ip", "0.001", "--create-burst", "2", relaxed=False
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as client:
        quiz_id = (await save(client, titled("One")))["quiz_id"]
        assert (await client.put(f"/api/quizzes/{quiz_id}", json=titled("Two"))).status_code == 200
        for method, path in [("POST", f"/api/quizzes/{quiz_id}/copy"), ("PUT", f"/api/quizzes/{quiz_id}")]:
            response = await client.request(method, path, json=titled("Three"))
            assert response.status_code == 429 and "retry-after" in response.headers
        assert (await client.get("/api/quizzes")).status_code == 200  # reading is not metered


async def test_players_of_a_room_from_the_library_play_it(http: httpx.AsyncClient) -> None:
    quiz_id = (await save(http, titled("Played", 1)))["quiz_id"]
    room = await http.post("/api/rooms", json={"quiz_id": quiz_id})
    host = Host(http, room.json())
    players: list[Player] = [await host.join(name) for name in ("Ann", "Bob")]
    await asyncio.gather(*(p.connect() for p in players))
    await host.command("start")
    for player in players:
        question = await player.expect("question")
        await player.answer(question["index"], 0)
        assert (await player.expect("answer_ack"))["accepted"]
    result = await players[0].expect("result")
    assert result["is_correct"] and result["points"] > 0
    for player in players:
        await player.close()


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_reading_a_saved_quiz_keeps_spec_s_shape(http: httpx.AsyncClient, method: str) -> None:
    document = titled("Shape")
    quiz_id = (await save(http, document))["quiz_id"]
    response = await http.request(method, f"/api/quizzes/{quiz_id}")
    assert response.status_code == 200
    if method == "GET":
        body = response.json()
        assert {k: body[k] for k in ("title", "questions")} == document and body["quiz_id"] == quiz_id
        assert (await http.post("/api/quizzes", json=body)).status_code == 201  # what GET answers saves again
