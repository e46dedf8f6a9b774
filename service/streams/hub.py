"""The streams of one process: the commit signal, the feed reader and the stream workers."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import psycopg

from domain.webhook import configure_published_types
from service.config import DEV_JWT_SECRET, Settings
from service.store import EventStore
from service.streams.cloudevents import Catalogue, catalogue
from service.streams.nats_publisher import NatsPublisher
from service.streams.reader import EventFeed, HeadSignal, HeadWatcher
from service.streams.webhooks import (
    DELIVERIES_SQL,
    RetryPolicy,
    WebhookDispatcher,
    WebhookSecrets,
)
from service.streams.worker import TRACKING_SQL, StreamWorker


def signing_key(settings: Settings) -> bytes:
    """The webhook signing key: its own setting, or derived from the JWT secret."""
    if settings.webhook_signing_key is not None:
        return settings.webhook_signing_key.get_secret_value().encode()
    if settings.mode == "production" and settings.jwt_secret.get_secret_value() == DEV_JWT_SECRET:
        raise ValueError("OPSLEDGER_WEBHOOK_SIGNING_KEY (or OPSLEDGER_JWT_SECRET) must be set "
                         "in production mode: webhook secrets would be guessable")
    return hmac.new(settings.jwt_secret.get_secret_value().encode(), b"opsledger-webhooks",
                    hashlib.sha256).digest()


class Streams:
    def __init__(self, settings: Settings, conninfo: str, store: EventStore,
                 published: Catalogue | None = None):
        self.settings = settings
        self.conninfo = conninfo
        self.catalogue = published or catalogue()
        configure_published_types(self.catalogue.record_types, self.catalogue.keys)
        self.signal = HeadSignal()
        self.feed = EventFeed(store, self.catalogue, settings.stream_source)
        self.watcher = HeadWatcher(store, self.signal, settings.stream_poll_interval)
        self.secrets = WebhookSecrets(signing_key(settings))
        self.webhooks = WebhookDispatcher(
            conninfo, self.feed, self.signal, self.catalogue, self.secrets,
            retry=RetryPolicy(settings.webhook_max_attempts, settings.webhook_retry_base_seconds,
                              settings.webhook_retry_max_seconds),
            timeout=settings.webhook_timeout_seconds, concurrency=settings.webhook_concurrency,
            poll_interval=settings.stream_poll_interval)
        self.nats: NatsPublisher | None = None
        if settings.nats_url:
            self.nats = NatsPublisher(
                conninfo, self.feed, self.signal, url=settings.nats_url,
                stream=settings.nats_stream, subject_prefix=settings.nats_subject_prefix,
                batch_size=settings.nats_batch_size,
                duplicate_window=settings.nats_duplicate_window_seconds,
                poll_interval=settings.stream_poll_interval)
        store.committed_listeners.append(self.signal.notify)
        self._started: list[Any] = []

    @property
    def workers(self) -> list[StreamWorker]:
        return [w for w in (self.webhooks, self.nats) if w is not None]

    def create_tables(self) -> None:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_lock(724001)")
            try:
                conn.execute(TRACKING_SQL)
                conn.execute(DELIVERIES_SQL)
            finally:
                conn.execute("SELECT pg_advisory_unlock(724001)")

    def start(self, *, workers: bool) -> None:
        """The head watcher always (live readers need it); the workers where asked."""
        self.watcher.start()
        self._started.append(self.watcher)
        if workers:
            for worker in self.workers:
                worker.start()
                self._started.append(worker)

    def stop(self) -> None:
        while self._started:
            self._started.pop().stop()

    def consumers(self) -> list[dict[str, Any]]:
        """Each stream consumer's tracked position and lag behind the head."""
        head = self.feed.store.max_position()
        rows = self.feed.store.execute(
            "SELECT name, position, updated_at FROM stream_tracking ORDER BY name")
        return [{"name": r["name"], "position": int(r["position"]),
                 "lag": max(0, head - int(r["position"])), "updated_at": r["updated_at"],
                 "head": head} for r in rows]
