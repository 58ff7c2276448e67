"""The HTTP API's operator and integrator paper cuts: JSON 404 and 405, `WWW-Authenticate` on 401, paged results
with the full export still one call, and request metrics by route template. A real server on a free port."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx

from tests.gameclient import Host, quiz
from tests.system.test_metrics import samples, value


async def test_json_404_and_405_and_a_401_that_names_the_bearer_scheme(start_server: Any, sqlite_url: str) -> None:
    server = start_server(sqlite_url, "--admin-token", "the-admin")
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as http:
        missing = await http.get("/api/nothing-here")
        assert missing.status_code == 404 and missing.headers["content-type"] == "application/json"
        assert missing.json()["error"]["code"] == "not_found"
        wrong = await http.delete("/api/rooms")
        assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"
        assert wrong.headers["allow"] == "POST"
        refused = await http.post("/api/rooms", json={"quiz": quiz(1)})  # no admin token
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
        assert refused.headers["www-authenticate"] == 'Bearer realm="quizroom"'
        allowed = await http.post("/api/rooms", json={"quiz": quiz(1)}, headers={"Authorization": "Bearer the-admin"})
        assert allowed.status_code == 201 and "www-authenticate" not in allowed.headers


async def test_results_come_in_pages_and_whole_in_one_call(start_server: Any, sqlite_url: str) -> None:
    server = start_server(sqlite_url)
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as http:
        host = await Host.open(http, quiz(1))
        players = [await host.join(f"p{i}") for i in range(7)]
        for player in players:
            await player.connect()
        await host.command("start")
        for i, player in enumerate(players):
            await player.expect("question")
            await player.answer(0, i % 2)
            await player.expect("answer_ack")
        whole = await host.results()
        assert len(whole["players"]) == 7 and "paging" not in whole

        pages: list[dict[str, Any]] = []
        offset: int | None = 0
        while offset is not None:
            response = await http.get(f"/api/rooms/{host.pin}/results?offset={offset}&limit=3", headers=host.headers)
            assert response.status_code == 200
            page = response.json()
            pages.append(page)
            offset = page["paging"]["next_offset"]
        assert [len(p["players"]) for p in pages] == [3, 3, 1]
        assert [p["paging"]["total"] for p in pages] == [7, 7, 7]
        assert [e for p in pages for e in p["players"]] == whole["players"]  # rank order, nothing twice

        csv_page = await http.get(
            f"/api/rooms/{host.pin}/results?limit=2", headers={**host.headers, "Accept": "text/csv"}
        )
        rows = list(csv.reader(io.StringIO(csv_page.text)))
        assert len(rows) == 1 + 2  # the header and the first two players' one answer each
        for bad in ("offset=-1", "limit=0", "limit=10001", "offset=x"):
            refused = await http.get(f"/api/rooms/{host.pin}/results?{bad}", headers=host.headers)
            assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid", bad


async def test_http_requests_are_counted_by_route_template_never_by_path(start_server: Any, sqlite_url: str) -> None:
    server = start_server(sqlite_url)
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as http:
        host = await Host.open(http, quiz(1))
        await host.join("Ann")
        await host.join("Bob")
        await http.get("/no/such/path")
        await http.patch("/api/rooms")
        found = samples((await http.get("/metrics")).text)
        joins = value(
            found, "quizroom_http_requests_total", route="/api/rooms/{pin}/players", method="POST", status="201"
        )
        assert joins == 2
        assert value(found, "quizroom_http_requests_total", route="/api/rooms", method="POST", status="201") == 1
        assert value(found, "quizroom_http_requests_total", route="unmatched", method="GET", status="404") == 1
        assert value(found, "quizroom_http_requests_total", route="/api/rooms", method="PATCH", status="405") == 1
        assert value(found, "quizroom_http_request_seconds_count", route="/api/rooms/{pin}/players") == 2
        assert not [labels for (name, labels) in found if host.pin in str(labels)]


def test_request_metric_labels_stay_in_closed_sets() -> None:
    """A method outside the standard ones (the HTTP parser refuses most before the app sees them) is `other`."""
    from quizroom.server.metrics import Metrics

    metrics = Metrics(process=False)
    metrics.http_request("BREW", None, 400, 0.001)
    found = samples(metrics.render().decode())
    assert value(found, "quizroom_http_requests_total", route="unmatched", method="other", status="400") == 1
