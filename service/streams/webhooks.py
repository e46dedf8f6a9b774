"""The webhook dispatcher: delivers published events to registered endpoints, signed, retried.

It follows the event log from its own tracked position (leader-elected, like every stream
worker). Webhook records' own events come through the same log, so the set of endpoints and
their filters is known *as of each position*: an endpoint registered at position P receives the
matching events after P, and a filter change applies from its event on. For each matching event
a row is added to ``webhook_deliveries`` in the transaction that advances the position, so each
event is queued exactly once per endpoint.

Sending (at least once) is separate: due deliveries are POSTed as CloudEvents (structured JSON,
``application/cloudevents+json``), signed the Standard Webhooks way — ``webhook-id`` (the event
id: the same on every retry, de-duplicate on it), ``webhook-timestamp`` (Unix seconds) and
``webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`` with the endpoint's
secret. A 2xx answer is a delivery; anything else (or no answer within the timeout) is retried
with exponential backoff (base × 2^(attempt−1), capped) until the attempt limit, and then the
delivery is a dead letter. Every attempt is kept in the delivery's ``history``. The operator's
``replay-dead-letters`` command (audited) puts dead letters back in the queue. Deliveries run
concurrently, so their order is not guaranteed: order by the ``position`` attribute.

Secrets are derived, never stored: HMAC-SHA256(signing key, "webhook:<id>:<secret version>"),
shown as ``whsec_<base64>`` by ``GET /webhooks/{id}/secret`` (leadership).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import httpx
from opentelemetry import trace
from psycopg import Connection
from psycopg.types.json import Jsonb

from domain.webhook import Webhook, WebhookStatus
from service import telemetry
from service.streams.cloudevents import Catalogue, UnknownEventType, event_id
from service.streams.reader import EventFeed, EventFilter, HeadSignal
from service.streams.worker import StreamWorker, save_position

log = logging.getLogger(__name__)
tracer = trace.get_tracer("opsledger.streams")

IDLE_POLL_SECONDS = 0.2  # how often the log is read while no endpoint is active
CONTENT_TYPE = "application/cloudevents+json"
USER_AGENT = "opsledger-webhooks/1"
SECRET_PREFIX = "whsec_"

DELIVERIES_SQL = """
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id              bigserial PRIMARY KEY,
    webhook_id      uuid NOT NULL,
    position        bigint NOT NULL,
    event_id        text NOT NULL,
    event_type      text NOT NULL,
    status          text NOT NULL DEFAULT 'pending',
    attempts        int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_status     int,
    last_error      text,
    history         jsonb NOT NULL DEFAULT '[]'::jsonb,
    replays         int NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    UNIQUE (webhook_id, position)
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due_idx
    ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS webhook_deliveries_hook_idx ON webhook_deliveries (webhook_id, id);
"""


# -- signing ------------------------------------------------------------------------------

class WebhookSecrets:
    """Derives each endpoint's signing secret from one key; nothing secret is stored."""

    def __init__(self, key: bytes):
        self._key = key

    def secret(self, webhook_id: UUID, version: int) -> str:
        raw = hmac.new(self._key, f"webhook:{webhook_id}:{version}".encode(),
                       hashlib.sha256).digest()
        return SECRET_PREFIX + base64.b64encode(raw).decode()


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks v1: base64 HMAC-SHA256 over ``<id>.<timestamp>.<body>``."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signed_headers(secret: str, msg_id: str, body: bytes, now: float | None = None,
                   ) -> dict[str, str]:
    timestamp = int(time.time() if now is None else now)
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(secret, msg_id, timestamp, body),
            "content-type": CONTENT_TYPE, "user-agent": USER_AGENT}


def verify(secret: str, headers: Mapping[str, str], body: bytes, *, tolerance: float = 300,
           now: float | None = None) -> bool:
    """What a receiver checks: a valid v1 signature and a timestamp within ``tolerance``."""
    try:
        msg_id, timestamp = headers["webhook-id"], int(headers["webhook-timestamp"])
        given = headers["webhook-signature"].split()
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = signature(secret, msg_id, timestamp, body)
    return any(hmac.compare_digest(expected, sig) for sig in given)


# -- dispatching --------------------------------------------------------------------------

@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_seconds: float = 5.0
    max_seconds: float = 3600.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return min(self.base_seconds * 2 ** (attempt - 1), self.max_seconds)


@dataclass
class Attempt:
    delivery_id: int
    attempt: int
    status: int | None
    error: str | None
    millis: int

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class WebhookDispatcher(StreamWorker):
    name = "webhooks"
    lock_key = 724_011

    def __init__(self, conninfo: str, feed: EventFeed, signal: HeadSignal,
                 catalogue: Catalogue, secrets: WebhookSecrets, *,
                 retry: RetryPolicy = RetryPolicy(), timeout: float = 10.0,  # noqa: B008
                 concurrency: int = 8, batch_size: int = 500, poll_interval: float = 1.0):
        super().__init__(conninfo, feed, signal, poll_interval=poll_interval)
        self.catalogue = catalogue
        self.secrets = secrets
        self.retry = retry
        self.timeout = timeout
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.registry: dict[UUID, Webhook] = {}
        self._filters: dict[tuple[UUID, int], EventFilter] = {}

    def lead(self, conn: Connection[Any]) -> None:
        self._load_registry()
        with httpx.Client(timeout=self.timeout, follow_redirects=False) as http, \
                ThreadPoolExecutor(self.concurrency, thread_name_prefix="webhook") as pool:
            while not self.stopping:
                queued = self.fan_out(conn)
                sent = self.send_due(conn, http, pool)
                if not queued and not sent:
                    self.signal.wait_sync(self.position, self._idle_timeout(conn))
                    if not self._active():
                        # No endpoint: only the webhook records' events matter, and an
                        # endpoint registered now is given every event after its
                        # registration whenever it is noticed; look a few times a second.
                        self._stop.wait(IDLE_POLL_SECONDS)

    # -- following the log ------------------------------------------------------------
    def _load_registry(self) -> None:
        """The endpoints as of the tracked position (their events, replayed)."""
        self.registry = {}
        after = 0
        while after < self.position:
            page = self.feed.read_envelopes(after, 1000, ["webhook"])
            for env in page.envelopes:
                if env.position > self.position:
                    return
                self._apply(env.event)
            if not page.full:
                return
            after = page.next_after

    def _apply(self, event: Any) -> None:
        rid = event.originator_id
        self.registry[rid] = event.mutate(self.registry.get(rid))

    def _filter(self, hook: Webhook) -> EventFilter:
        key = (hook.id, hook.version)
        flt = self._filters.get(key)
        if flt is None:
            types = []
            for name in hook.event_types:
                try:
                    types.append(self.catalogue.parse_type(name))
                except UnknownEventType:  # no longer published: matches nothing
                    log.warning("webhook %s names unknown event type %s", hook.id, name)
            record_types = set(hook.record_types) & set(self.catalogue.record_types)
            if (hook.event_types and not types) or (hook.record_types and not record_types):
                record_types = {"-"}  # filtered to nothing
            flt = self._filters[key] = EventFilter(frozenset(record_types), frozenset(types))
        return flt

    def fan_out(self, conn: Connection[Any]) -> bool:
        """Queues the next page of events for the matching endpoints; False at the head.

        While no endpoint is active only the webhook records' own events are read (nothing
        else can be delivered), up to the event that activates one; and a page that queued
        nothing saves its position at most once a second, not in a transaction of its own
        per page: after a restart the few events read again queue nothing twice (deliveries
        are unique per endpoint and event)."""
        anyone = bool(self._active())
        record_types = ([*self.catalogue.record_types, Webhook.RECORD_TYPE] if anyone
                        else [Webhook.RECORD_TYPE])
        page = self.feed.read_envelopes(self.position, self.batch_size, record_types)
        self.head = max(self.head, page.head)
        if page.next_after == self.position:
            self._save_position(conn)
            return False
        next_after = page.next_after
        rows: list[tuple[Any, ...]] = []
        replays: list[tuple[UUID, list[int]]] = []
        for env in page.envelopes:
            event = env.event
            if env.record_type == Webhook.RECORD_TYPE:
                self._apply(event)
                if type(event).__name__ == "DeadLettersReplayRequested":
                    replays.append((event.originator_id, list(event.delivery_ids)))
                if not anyone and self._active():
                    # The events after this one are for the endpoint it activated: the next
                    # page reads them, every type this time.
                    next_after = env.position
                    break
                continue
            published = self.catalogue.of(event)
            if published is None:
                continue
            for hook in self.registry.values():
                if hook.status == WebhookStatus.ACTIVE and self._filter(hook).matches(
                        published, event.originator_id):
                    rows.append((hook.id, env.position,
                                 event_id(event.originator_id, event.originator_version),
                                 published.ce_type))
        if not rows and not replays:
            self.position = next_after
            self._save_position(conn)
            return True
        metas = [getattr(env.event, "meta", None) or {}
                 for env in page.envelopes[:telemetry.MAX_LINKS]]
        links = [lk for lk in (telemetry.link(m.get("trace_id"), m.get("span_id"))
                               for m in metas) if lk]
        with tracer.start_as_current_span("webhooks queue", links=links) as span, \
                conn.transaction():
            span.set_attribute("opsledger.events", len(page.envelopes))
            span.set_attribute("opsledger.deliveries", len(rows))
            if rows:
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO webhook_deliveries (webhook_id, position, event_id,"
                        " event_type) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING", rows)
            for webhook_id, ids in replays:
                conn.execute(
                    "UPDATE webhook_deliveries SET status = 'pending', attempts = 0,"
                    " replays = replays + 1, next_attempt_at = now()"
                    " WHERE webhook_id = %s AND status = 'dead'"
                    " AND (cardinality(%s::bigint[]) = 0 OR id = ANY(%s::bigint[]))",
                    (webhook_id, ids, ids))
            save_position(conn, self.name, next_after)
        self.position = self._saved_position = next_after
        self._saved_at = time.monotonic()
        return True

    _saved_position = -1
    _saved_at = 0.0

    def _save_position(self, conn: Connection[Any]) -> None:
        """Saves the position if it moved and a second has passed since the last save."""
        if self.position == self._saved_position:
            return
        if time.monotonic() - self._saved_at < 1.0:
            return
        save_position(conn, self.name, self.position)
        self._saved_position = self.position
        self._saved_at = time.monotonic()

    # -- sending ----------------------------------------------------------------------
    def _active(self) -> list[UUID]:
        return [rid for rid, hook in self.registry.items()
                if hook.status == WebhookStatus.ACTIVE]

    def send_due(self, conn: Connection[Any], http: httpx.Client,
                 pool: ThreadPoolExecutor) -> bool:
        """Attempts the deliveries that are due (at most a few per worker); False if none."""
        active = self._active()
        if not active:
            return False
        due = conn.execute(
            "SELECT id, webhook_id, position, attempts FROM webhook_deliveries"
            " WHERE status = 'pending' AND next_attempt_at <= now() AND webhook_id = ANY(%s)"
            " ORDER BY next_attempt_at, id LIMIT %s", (active, self.concurrency * 4)).fetchall()
        if not due:
            return False
        events = self.feed.at_positions(sorted({row[2] for row in due}))
        futures = []
        for delivery_id, webhook_id, position, attempts in due:
            futures.append(pool.submit(self._attempt, http, self.registry[webhook_id],
                                       delivery_id, attempts + 1, events.get(position)))
        for future in futures:
            self._record(conn, future.result())
        return True

    def _attempt(self, http: httpx.Client, hook: Webhook, delivery_id: int, attempt: int,
                 event: dict[str, Any] | None) -> Attempt:
        if event is None:
            return Attempt(delivery_id, attempt, None, "the event is no longer published", 0)
        body = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
        secret = self.secrets.secret(hook.id, hook.secret_version)
        started = time.monotonic()
        try:
            response = http.post(hook.url, content=body,
                                 headers=signed_headers(secret, event["id"], body))
            status, error = response.status_code, None
            if not 200 <= status < 300:
                error = f"HTTP {status}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            status, error = None, f"{type(exc).__name__}: {str(exc)[:200]}"
        return Attempt(delivery_id, attempt, status, error, int((time.monotonic() - started)
                                                                * 1000))

    def _record(self, conn: Connection[Any], result: Attempt) -> None:
        entry = Jsonb([{"attempt": result.attempt, "at": datetime.now(UTC).isoformat(),
                        "status": result.status, "error": result.error, "ms": result.millis}])
        if result.ok:
            conn.execute(
                "UPDATE webhook_deliveries SET status = 'delivered', attempts = %s,"
                " last_status = %s, last_error = NULL, delivered_at = now(),"
                " history = history || %s WHERE id = %s",
                (result.attempt, result.status, entry, result.delivery_id))
            return
        dead = result.attempt >= self.retry.max_attempts
        conn.execute(
            "UPDATE webhook_deliveries SET status = %s, attempts = %s, last_status = %s,"
            " last_error = %s, history = history || %s,"
            " next_attempt_at = now() + make_interval(secs => %s) WHERE id = %s",
            ("dead" if dead else "pending", result.attempt, result.status, result.error, entry,
             self.retry.delay(result.attempt), result.delivery_id))
        if dead:
            log.warning("webhook delivery %d is a dead letter after %d attempts: %s",
                        result.delivery_id, result.attempt, result.error)

    def _idle_timeout(self, conn: Connection[Any]) -> float:
        active = self._active()
        if not active:
            return self.poll_interval
        row = conn.execute(
            "SELECT extract(epoch FROM min(next_attempt_at) - now()) FROM webhook_deliveries"
            " WHERE status = 'pending' AND webhook_id = ANY(%s)", (active,)).fetchone()
        if row is None or row[0] is None:
            return self.poll_interval
        return max(0.01, min(float(row[0]), self.poll_interval))
