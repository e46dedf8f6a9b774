"""Publishes every published event to a NATS JetStream stream, at least once, in order.

Subjects are ``<prefix>.<record type>.<event>`` (``opsledger.project.approved``), the body is
the CloudEvent (JSON) and ``Nats-Msg-Id`` is the event id, so JetStream drops the copies that a
restart re-sends within its duplicate window. Each message is published and its acknowledgement
awaited before the next (the stream's order is the global order); the position is saved in
``stream_tracking`` after each acknowledged page, so a restarted publisher (this or another
process: it is leader-elected) resumes exactly after the last page it finished, and at most
one page is sent twice — and de-duplicated. Without ``OPSLEDGER_NATS_URL`` nothing runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import nats
from nats.js.api import StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError
from opentelemetry import trace
from psycopg import Connection

from service import telemetry
from service.streams.reader import EventFeed, HeadSignal
from service.streams.worker import StreamWorker, save_position

log = logging.getLogger(__name__)
tracer = trace.get_tracer("opsledger.streams")

CONTENT_TYPE = "application/cloudevents+json"


def subject_for(prefix: str, ce_type: str) -> str:
    """``opsledger.project.approved.v1`` → ``<prefix>.project.approved``."""
    _type_prefix, record_type, event, _version = ce_type.split(".")
    return f"{prefix}.{record_type}.{event}"


class NatsPublisher(StreamWorker):
    name = "nats"
    lock_key = 724_010

    def __init__(self, conninfo: str, feed: EventFeed, signal: HeadSignal, *, url: str,
                 stream: str, subject_prefix: str, batch_size: int = 100,
                 duplicate_window: float = 600.0, ack_timeout: float = 5.0,
                 poll_interval: float = 1.0):
        super().__init__(conninfo, feed, signal, poll_interval=poll_interval)
        self.url = url
        self.stream = stream
        self.subject_prefix = subject_prefix
        self.batch_size = batch_size
        self.duplicate_window = duplicate_window
        self.ack_timeout = ack_timeout
        self.published = 0
        self.duplicates = 0

    def lead(self, conn: Connection[Any]) -> None:
        asyncio.run(self._lead(conn))

    async def _lead(self, conn: Connection[Any]) -> None:
        nc = await nats.connect(self.url, name=f"opsledger-{self.name}", connect_timeout=2,
                                reconnect_time_wait=1, max_reconnect_attempts=3)
        try:
            js = nc.jetstream(timeout=self.ack_timeout)
            await self.ensure_stream(js)
            while not self.stopping:
                page = await asyncio.to_thread(self.feed.read, self.position, self.batch_size)
                self.head = max(self.head, page.head)
                if page.events:
                    await self._publish_page(js, page.events)
                if page.next_after != self.position:
                    save_position(conn, self.name, page.next_after)
                    self.position = page.next_after
                if not page.full:
                    await self.signal.wait(self.position, self.poll_interval)
        finally:
            await nc.close()

    async def _publish_page(self, js: JetStreamContext, events: list[dict[str, Any]]) -> None:
        # One span per page, linked to the commands that caused its events.
        with tracer.start_as_current_span(
                "publish nats", kind=trace.SpanKind.PRODUCER,
                links=telemetry.links_from_traceparents(ce.get("traceparent") for ce in events),
        ) as span:
            span.set_attribute("messaging.system", "nats")
            span.set_attribute("messaging.destination.name", self.stream)
            span.set_attribute("messaging.batch.message_count", len(events))
            span.set_attribute("opsledger.first_position", events[0].get("position", 0))
            for ce in events:
                body = json.dumps(ce, separators=(",", ":"), ensure_ascii=False).encode()
                ack = await js.publish(
                    subject_for(self.subject_prefix, ce["type"]), body, stream=self.stream,
                    headers={"Nats-Msg-Id": ce["id"], "Content-Type": CONTENT_TYPE})
                self.published += 1
                self.duplicates += bool(ack.duplicate)

    async def ensure_stream(self, js: JetStreamContext) -> None:
        """Creates the stream on first use; an existing one is left as configured."""
        try:
            await js.stream_info(self.stream)
        except NotFoundError:
            await js.add_stream(StreamConfig(name=self.stream,
                                             subjects=[f"{self.subject_prefix}.>"],
                                             duplicate_window=self.duplicate_window))
            log.info("created JetStream stream %s for %s.>", self.stream, self.subject_prefix)
