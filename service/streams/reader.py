"""Reading published events in global order: pages for the feed, and following them live.

Gapless by construction: every append transaction holds the event store's ``EXCLUSIVE`` table
lock and writes its ``event_log`` rows in the same transaction, so transactions commit in
position order and any snapshot sees a prefix of the log. One page is read in one statement
(one snapshot) together with the head position of that snapshot: a page that is not full ends
at the head, so a filtered reader moves its cursor past events it does not want without ever
stepping over one committed later at a lower position.

Live readers wait on ``HeadSignal``: the event store's writer announces each group commit in
this process, and a watcher thread polls the head for commits made by other processes — only
while someone waits, one query per interval for all of them. Every follower pulls the next page
from PostgreSQL only when it has handed the previous one to its client, so a slow client holds
at most one page in memory (back-pressure), never a growing buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncGenerator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import anyio
from eventsourcing.persistence import StoredEvent

from service.background import BackgroundThread
from service.store import EventStore
from service.streams.cloudevents import Catalogue, PublishedType, to_cloudevent

MAX_PAGE = 1000


class HeadSignal:
    """The highest committed position this process knows of; threads and tasks wait on it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._head = 0
        self._generation = 0  # bumped by wake_all: waiters return without a new head
        self._tasks: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._threads = 0

    @property
    def head(self) -> int:
        return self._head

    @property
    def has_waiters(self) -> bool:
        return bool(self._tasks) or self._threads > 0

    def notify(self, position: int) -> None:
        """A commit up to ``position`` happened (called by the writer thread or the watcher)."""
        with self._cond:
            if position <= self._head:
                return
            self._head = position
        self._wake()

    def wake_all(self) -> None:
        """Wakes every waiter without a new head (a worker is stopping)."""
        with self._cond:
            self._generation += 1
        self._wake()

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()
            tasks = list(self._tasks)
        for loop, flag in tasks:
            with contextlib.suppress(RuntimeError):  # that loop has closed
                loop.call_soon_threadsafe(flag.set)

    def wait_sync(self, after: int, timeout: float) -> bool:
        """Blocks until the head passes ``after`` or ``timeout`` elapses; True if it passed."""
        with self._cond:
            generation = self._generation
            self._threads += 1
            try:
                self._cond.wait_for(
                    lambda: self._head > after or self._generation != generation, timeout)
                return self._head > after
            finally:
                self._threads -= 1

    async def wait(self, after: int, timeout: float) -> bool:
        """Awaits until the head passes ``after`` or ``timeout`` elapses; True if it passed."""
        if self._head > after:
            return True
        flag = asyncio.Event()
        entry = (asyncio.get_running_loop(), flag)
        with self._cond:
            self._tasks.add(entry)
        try:
            if self._head > after:
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(flag.wait(), timeout)
            return self._head > after
        finally:
            with self._cond:
                self._tasks.discard(entry)


class HeadWatcher(BackgroundThread):
    """Polls the head position for commits made by other processes, while anyone waits."""

    thread_name = "stream-head-watcher"

    def __init__(self, store: EventStore, signal: HeadSignal, interval: float):
        super().__init__()
        self.store = store
        self.signal = signal
        self.interval = interval

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.check()

    def check(self) -> None:
        """Reads the head for whoever waits (each tick, and when a commit is heard of)."""
        if not self.signal.has_waiters:
            return
        with contextlib.suppress(Exception):  # the database may be away; try next tick
            self.signal.notify(self.store.max_position())


@dataclass(frozen=True)
class EventFilter:
    """Which published events a reader wants; empty sets mean all."""

    record_types: frozenset[str] = frozenset()
    types: frozenset[PublishedType] = frozenset()
    record_id: UUID | None = None

    @classmethod
    def parse(cls, catalogue: Catalogue, record_types: Iterable[str] = (),
              types: Iterable[str] = (), record_id: UUID | None = None) -> EventFilter:
        """From public names; raises ``UnknownEventType`` naming the first unknown one."""
        return cls(frozenset(catalogue.parse_record_type(r) for r in record_types),
                   frozenset(catalogue.parse_type(t) for t in types), record_id)

    def matches(self, published: PublishedType, record_id: UUID) -> bool:
        return ((not self.record_types or published.record_type in self.record_types)
                and (not self.types or published in self.types)
                and (self.record_id is None or self.record_id == record_id))


ALL = EventFilter()


@dataclass(frozen=True)
class Envelope:
    """A stored event as the stream workers see it (internal events included)."""

    position: int
    record_type: str
    event: Any


@dataclass
class FeedPage:
    events: list[dict[str, Any]]
    next_after: int  # the cursor to pass as `after` for the next page
    head: int  # the last committed position when the page was read
    full: bool  # the page hit its limit: more may follow at once
    envelopes: list[Envelope] = field(default_factory=list)


class EventFeed:
    """Reads published events in global order as CloudEvents."""

    def __init__(self, store: EventStore, catalogue: Catalogue, source: str):
        self.store = store
        self.catalogue = catalogue
        self.source = source

    def read(self, after: int, limit: int, flt: EventFilter = ALL) -> FeedPage:
        """Up to ``limit`` published events after position ``after`` that pass the filter."""
        record_types = sorted(flt.record_types or self.catalogue.record_types)
        if flt.types:
            record_types = sorted({t.record_type for t in flt.types} & set(record_types))
        names = sorted(f"{t.record_type}.{t.name}" for t in flt.types)
        page = self._read(after, limit, record_types, names, flt.record_id)
        events = []
        for env in page.envelopes:
            published = self.catalogue.of(env.event)
            if published is not None:  # an event class no longer published: skipped
                events.append(to_cloudevent(env.position, env.event, published, self.source))
        page.events = events
        return page

    def read_envelopes(self, after: int, limit: int, record_types: Sequence[str]) -> FeedPage:
        """Decoded events of the given record types (internal ones allowed), no mapping."""
        return self._read(after, limit, sorted(record_types), [], None)

    def at_positions(self, positions: Sequence[int]) -> dict[int, dict[str, Any]]:
        """The published events at these positions, as CloudEvents."""
        if not positions:
            return {}
        rows = self.store.execute(
            "SELECT l.position, l.record_type, s.originator_id, s.originator_version, s.topic,"
            " s.state FROM event_log l JOIN stored_events s ON s.notification_id = l.position"
            " WHERE l.position = ANY(%s)", (list(positions),))
        out = {}
        for row in rows:
            event = self._decode(row)
            published = self.catalogue.of(event)
            if published is not None:
                out[row["position"]] = to_cloudevent(row["position"], event, published,
                                                     self.source)
        return out

    def _read(self, after: int, limit: int, record_types: list[str], names: list[str],
              record_id: UUID | None) -> FeedPage:
        limit = max(0, min(limit, MAX_PAGE))
        where = ["l.position > %(after)s", "l.record_type = ANY(%(record_types)s)"]
        if names:
            where.append("(l.record_type || '.' || l.event_type) = ANY(%(names)s)")
        if record_id is not None:
            where.append("l.record_id = %(record_id)s")
        # One statement, one snapshot: the page and the head it was read at agree.
        rows = self.store.execute(
            "SELECT h.head, p.* FROM (SELECT coalesce(max(position), 0) AS head FROM event_log) h"
            " LEFT JOIN LATERAL (SELECT l.position, l.record_type, s.originator_id,"
            " s.originator_version, s.topic, s.state"
            " FROM event_log l JOIN stored_events s ON s.notification_id = l.position"
            f" WHERE {' AND '.join(where)} ORDER BY l.position LIMIT %(limit)s) p ON true"
            " ORDER BY p.position",
            {"after": after, "record_types": record_types, "names": names,
             "record_id": record_id, "limit": limit})
        head = int(rows[0]["head"]) if rows else 0
        envelopes = [Envelope(r["position"], r["record_type"], self._decode(r))
                     for r in rows if r["position"] is not None]
        full = limit > 0 and len(envelopes) == limit
        # A short page ends at the snapshot's head: nothing unseen can commit below it.
        next_after = envelopes[-1].position if full else max(after, head)
        return FeedPage([], next_after, head, full, envelopes)

    def _decode(self, row: dict[str, Any]) -> Any:
        # Personal data is never published: it stays sealed, no key is looked up.
        return self.store.to_event(StoredEvent(row["originator_id"], row["originator_version"],
                                               row["topic"], bytes(row["state"])),
                                   with_personal=False)


async def follow(feed: EventFeed, signal: HeadSignal, after: int, flt: EventFilter, *,
                 heartbeat: float, page_size: int = 100,
                 ) -> AsyncGenerator[dict[str, Any] | None, None]:
    """Published events after ``after`` as they commit, for ever; ``None`` is a heartbeat,
    yielded after ``heartbeat`` seconds without an event.

    The next page is read only after the consumer has taken every event of this one.
    """
    last_sent = time.monotonic()
    while True:
        page = await anyio.to_thread.run_sync(feed.read, after, page_size, flt)
        for event in page.events:
            yield event
            last_sent = time.monotonic()
        after = page.next_after
        if page.full:
            continue
        while True:
            remaining = heartbeat - (time.monotonic() - last_sent)
            if remaining <= 0:
                yield None
                last_sent = time.monotonic()
                continue
            if await signal.wait(after, remaining):
                break
