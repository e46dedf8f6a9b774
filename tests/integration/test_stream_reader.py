"""The stream reader never skips an event committed out of order, and follows at the
consumer's pace."""

from __future__ import annotations

import asyncio
import threading
from datetime import date
from decimal import Decimal
from typing import Any

from domain.project import Project
from domain.shared import Actor
from service.store import EventStore
from service.streams.cloudevents import catalogue
from service.streams.reader import ALL, EventFeed, EventFilter, FeedPage, HeadSignal, follow

ANN = Actor("ann", "Ann", frozenset({"member"}), frozenset({"ops"}))


def proposal(i: int) -> list[Any]:
    project = Project.propose(ANN, department="ops", name=f"P{i}", background="b",
                              objectives="o", scope="s", requested_budget=Decimal("1.00"),
                              expected_revenue=Decimal("2.00"), start_date=date(2026, 1, 1),
                              end_date=date(2026, 12, 31))
    return list(project.collect_events())


def test_a_reader_racing_concurrent_writers_sees_every_event_once_in_order(
        fresh_database: Any) -> None:
    store = EventStore(fresh_database)
    feed = EventFeed(store, catalogue(), "/test")
    writers_done = threading.Event()
    seen: list[int] = []

    def write(offset: int) -> None:
        for i in range(40):
            store.append(proposal(offset + i)).result(30)

    def read() -> None:
        after = 0
        while True:
            done = writers_done.is_set()  # decided before the read: the last read is complete
            page = feed.read(after, 7)
            seen.extend(e["position"] for e in page.events)
            after = page.next_after
            if done and not page.full:
                return

    try:
        reader = threading.Thread(target=read)
        reader.start()
        writers = [threading.Thread(target=write, args=(k * 100,)) for k in range(8)]
        for w in writers:
            w.start()
        for w in writers:
            w.join()
        writers_done.set()
        reader.join(timeout=30)
        rows = store.execute("SELECT position FROM event_log ORDER BY position")
    finally:
        store.close()
    assert len(seen) == 320
    assert seen == [r["position"] for r in rows]


def test_a_filtered_page_that_is_not_full_moves_the_cursor_to_the_head(
        fresh_database: Any) -> None:
    store = EventStore(fresh_database)
    try:
        for i in range(3):
            store.append_and_wait(proposal(i))
        feed = EventFeed(store, catalogue(), "/test")
        page = feed.read(0, 10, EventFilter.parse(catalogue(), ["risk"]))
        assert page.events == [] and page.next_after == page.head == store.max_position()
    finally:
        store.close()


class CountingFeed:
    """Endless pages; counts how many were read."""

    def __init__(self) -> None:
        self.reads = 0

    def read(self, after: int, limit: int, flt: Any = ALL) -> FeedPage:
        self.reads += 1
        events = [{"position": after + i + 1} for i in range(limit)]
        return FeedPage(events, after + limit, 10**9, True)


def test_a_follower_reads_the_next_page_only_when_the_consumer_took_this_one() -> None:
    feed = CountingFeed()

    async def consume(n: int) -> list[int]:
        stream = follow(feed, HeadSignal(), 0, ALL, heartbeat=10, page_size=5)  # type: ignore[arg-type]
        got = [(await anext(stream))["position"] for _ in range(n)]  # type: ignore[index]
        await stream.aclose()
        return got

    assert asyncio.run(consume(5)) == [1, 2, 3, 4, 5] and feed.reads == 1
    assert asyncio.run(consume(6)) == [1, 2, 3, 4, 5, 6] and feed.reads == 3


def test_a_waiting_follower_wakes_on_commit_and_beats_when_quiet() -> None:
    signal = HeadSignal()

    class Quiet:
        def read(self, after: int, limit: int, flt: Any = ALL) -> FeedPage:
            if signal.head > after:
                return FeedPage([{"position": signal.head}], signal.head, signal.head, False)
            return FeedPage([], after, after, False)

    async def run() -> list[Any]:
        stream = follow(Quiet(), signal, 0, ALL, heartbeat=0.05)  # type: ignore[arg-type]
        first = await asyncio.wait_for(anext(stream), 2)  # a heartbeat
        threading.Timer(0.01, signal.notify, args=(7,)).start()
        second = await asyncio.wait_for(anext(stream), 2)
        while second is None:
            second = await asyncio.wait_for(anext(stream), 2)
        await stream.aclose()
        return [first, second]

    assert asyncio.run(run()) == [None, {"position": 7}]
