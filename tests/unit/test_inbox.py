"""The actor's mailbox (`quizroom.rooms.actors.inbox`): jobs run one at a time and in order; an `ask` of an idle
actor runs at once on the caller's turn, an `ask` behind queued jobs waits its turn on the actor's task."""

from __future__ import annotations

import asyncio
import logging

import pytest

from quizroom.rooms.actors.inbox import Inbox
from quizroom.rooms.game.errors import NotFound, Unavailable


@pytest.fixture
async def inbox() -> Inbox:
    box = Inbox("test", logging.getLogger("test"))
    box.start()
    return box


async def test_an_idle_actor_answers_an_ask_on_the_callers_turn(inbox: Inbox) -> None:
    ran_on: list[asyncio.Task[object] | None] = []

    def job(future: asyncio.Future[str]) -> None:
        ran_on.append(asyncio.current_task())
        future.set_result("done")

    assert await inbox.ask(job) == "done"
    assert ran_on == [asyncio.current_task()]  # no hop through the actor's task
    await inbox.close()


async def test_an_ask_behind_posted_jobs_waits_its_turn_on_the_actors_task(inbox: Inbox) -> None:
    order: list[str] = []
    ran_on: list[asyncio.Task[object] | None] = []

    def first() -> None:
        order.append("posted first")
        inbox.post(lambda: order.append("posted after"))  # queued behind the ask

    def job(future: asyncio.Future[None]) -> None:
        order.append("asked")
        ran_on.append(asyncio.current_task())
        future.set_result(None)

    inbox.post(first)
    await inbox.ask(job)
    await asyncio.sleep(0)
    assert order == ["posted first", "asked", "posted after"]
    assert ran_on and ran_on[0] is not asyncio.current_task()  # the actor's own task ran it
    await inbox.close()


async def test_a_refusal_raised_by_a_job_is_the_answer_either_way(inbox: Inbox) -> None:
    def refuse(future: asyncio.Future[None]) -> None:
        raise NotFound("no such thing")

    with pytest.raises(NotFound):
        await inbox.ask(refuse)  # idle: at once
    inbox.post(lambda: None)
    with pytest.raises(NotFound):
        await inbox.ask(refuse)  # queued
    await inbox.close()


async def test_a_job_settling_later_is_awaited_and_a_close_refuses_the_waiting(inbox: Inbox) -> None:
    later: list[asyncio.Future[int]] = []
    waiting = asyncio.ensure_future(inbox.ask(later.append))  # settles nothing now: like a join awaiting its commit
    await asyncio.sleep(0)
    assert later and not waiting.done()
    await inbox.close()
    with pytest.raises(Unavailable):
        await waiting


async def test_an_ask_of_a_closed_actor_is_refused_not_left_waiting(inbox: Inbox) -> None:
    def job(future: asyncio.Future[None]) -> None:
        future.set_result(None)

    await inbox.close()
    with pytest.raises(Unavailable):
        await asyncio.wait_for(inbox.ask(job), 5)  # before: posted, dropped, never answered
