"""The host page's quiz library in real Chromium: save a quiz, find it, save its next version, open it back into the
editor, import a Kahoot-style CSV with a refused row, export, copy and delete, then open a game from a saved quiz.
Skipped only when Debian's Chromium is missing outside CI, like tests/system/test_browser.py, whose helpers this
module shares."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, FilePayload, Page, expect

from quizroom.clients.local_server import LocalServer
from tests.system.test_browser import DESKTOP, Screens, chromium, new_page, on_screen

QUIZ: dict[str, Any] = {
    "title": "Rivers of Europe",
    "questions": [
        {"text": "Which river flows through Vienna?", "choices": ["Danube", "Rhine"], "correct": [0]},
        {"text": "Which river flows through Paris?", "choices": ["Loire", "Seine", "Rhône"], "correct": [1]},
    ],
}
KAHOOT_CSV = (
    ",Quiz template\r\n"
    ",Add questions, at least two answer alternatives, time limit and choose correct answers (at least one).\r\n"
    "\r\n"
    ",Question - max 120 characters,Answer 1 - max 75 characters,Answer 2 - max 75 characters,"
    "Answer 3 - max 75 characters,Answer 4 - max 75 characters,Time limit (sec),Correct answer(s)\r\n"
    "1,Closest planet to the Sun?,Venus,Mercury,Mars,,20,2\r\n"
    "2,A question with one answer,Only,,,,20,1\r\n"
    "3,Largest planet?,Jupiter,Saturn,,,30,1\r\n"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    with LocalServer.start(tmp_path_factory.mktemp("library-server")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def entry(host: Page, title: str) -> Any:
    return host.locator("#lib-list li", has=host.locator("strong", has_text=title))


def test_a_teacher_saves_finds_edits_imports_and_reuses_quizzes(
    server: LocalServer, browser: Browser, tmp_path: Path
) -> None:
    shots = Screens(tmp_path)
    errors: list[str] = []
    base = server.base_url
    _, host = new_page(browser, errors, "host", **DESKTOP)
    host.on("dialog", lambda dialog: dialog.accept())  # the delete's confirmation
    host.goto(f"{base}/host")
    on_screen(host, "create")
    expect(host.locator("#lib-empty")).to_contain_text("No saved quizzes yet")

    # Save the editor's quiz, then its next version.
    host.click("#tab-json")
    host.fill("#quiz-json", json.dumps(QUIZ))
    host.click("#lib-save")
    expect(host.locator("#lib-status")).to_have_text("Saved “Rivers of Europe” to the library.")
    expect(host.locator("#lib-editing")).to_contain_text("version 1")
    expect(host.locator("#lib-list li strong")).to_have_text(["Rivers of Europe"])  # the list refreshes after the save
    host.click("#tab-form")
    host.fill("#f-quiz-title", "Rivers of the world")
    host.click("#lib-save")
    expect(host.locator("#lib-status")).to_have_text("Saved “Rivers of the world” (version 2).")
    expect(host.locator("#lib-list li strong")).to_have_text(["Rivers of the world"])

    # A second quiz, saved as new; the search finds each by a piece of its title, in any case.
    host.fill("#f-quiz-title", "Mountains")
    host.click("#lib-save-new")
    expect(host.locator("#lib-list li strong")).to_have_text(["Mountains", "Rivers of the world"])
    host.fill("#lib-search", "RIVERS")
    expect(host.locator("#lib-list li strong")).to_have_text(["Rivers of the world"])
    host.fill("#lib-search", "")
    expect(host.locator("#lib-list li strong")).to_have_text(["Mountains", "Rivers of the world"])

    # Import a sheet in Kahoot's layout: the refused row is listed with its number, the quiz opens in the editor.
    sheet: FilePayload = {"name": "Planets.csv", "mimeType": "text/csv", "buffer": KAHOOT_CSV.encode()}
    host.set_input_files("#lib-file", files=sheet)
    expect(host.locator("#lib-status")).to_contain_text("Imported 2 questions into “Planets”; 1 row was left out")
    expect(host.locator("#lib-refused li")).to_have_text(["Row 6: it has fewer than 2 answers"])
    expect(host.locator("#f-quiz-title")).to_have_value("Planets")
    expect(host.locator("#f-questions .qedit")).to_have_count(2)
    expect(host.locator("#lib-editing")).to_contain_text("Editing “Planets”")
    host.evaluate("window.scrollTo(0, 0)")
    shots.shoot(host, "host-library")

    # Open a saved quiz back into the editor.
    entry(host, "Rivers of the world").get_by_role("button", name="Open “Rivers of the world”").click()
    expect(host.locator("#f-quiz-title")).to_have_value("Rivers of the world")
    expect(host.locator("#f-questions .q-text").first).to_have_value("Which river flows through Vienna?")

    # Export it: our JSON file, named after the quiz.
    with host.expect_download() as download:
        entry(host, "Rivers of the world").get_by_role("button", name="Export “Rivers of the world”").click()
    assert download.value.suggested_filename == "rivers-of-the-world.json"
    exported = json.loads(Path(download.value.path()).read_text())
    assert exported["format"] == "quizroom/quiz" and exported["title"] == "Rivers of the world"

    # Copy, then delete the original: the copy stays.
    entry(host, "Mountains").get_by_role("button", name="Copy “Mountains”").click()
    expect(host.locator("#lib-list li strong")).to_have_text(
        ["Mountains (copy)", "Planets", "Mountains", "Rivers of the world"]
    )
    entry(host, "Mountains").filter(has_not_text="(copy)").get_by_role("button", name="Delete “Mountains”").click()
    expect(host.locator("#lib-list li strong")).to_have_text(["Mountains (copy)", "Planets", "Rivers of the world"])

    library = httpx.get(f"{base}/api/quizzes", timeout=10).json()
    assert [item["title"] for item in library["quizzes"]] == ["Mountains (copy)", "Planets", "Rivers of the world"]
    assert [item["version"] for item in library["quizzes"]] == [1, 1, 2]

    # A game from the quiz in the editor (Rivers of the world, opened above).
    host.uncheck("#o-intro")
    host.click("#create")
    on_screen(host, "lobby")
    expect(host.locator("#h-title")).to_have_text("Rivers of the world")
    assert errors == []
