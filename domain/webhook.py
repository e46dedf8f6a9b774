"""Webhooks (integrations): HTTP endpoints that receive the published event stream.

Registering an endpoint sends company data out of the system, so it is a command like any other
— audited, with its actor and comment — and only ``leadership`` may issue it: they decide for
the whole company (SPEC §1), and read-only roles (``analyst``, ``auditor``) never act. Webhook
records belong to the ``integrations`` department.

The signing secret is never part of an event (the event log is read by auditors and exported):
the service derives it from its signing key, the record id and ``secret_version``;
``rotate_secret`` moves to a new version. Deliveries and dead letters are kept by the service's
dispatcher, not here; ``replay_dead_letters`` is the operator's audited request to send the
dead letters again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from eventsourcing.domain import event

from domain.shared import (
    Actor,
    NotPermitted,
    Record,
    Role,
    ValidationFailed,
    command,
    require,
    require_reason,
    require_text,
)

INTEGRATIONS_DEPARTMENT = "integrations"
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
MAX_FILTER_ITEMS = 100


class WebhookStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


# The record types and event types ("project.approved") the service publishes; set once at
# start-up by the composition root. None: only the form of a name is checked (unit tests).
_published: tuple[frozenset[str], frozenset[str]] | None = None


def configure_published_types(record_types: Iterable[str], event_types: Iterable[str]) -> None:
    global _published
    _published = (frozenset(record_types), frozenset(event_types))


def _check_integrator(actor: Actor) -> None:
    if actor.has_role(Role.AUDITOR) or not actor.has_role(Role.LEADERSHIP):
        raise NotPermitted("only leadership registers and manages webhooks",
                           rule="leadership_only")


def _url(value: str) -> str:
    url = require_text(value, "url", max_length=2000)
    parts = urlsplit(url)
    require(parts.scheme in ("http", "https") and bool(parts.hostname),
            "'url' must be an absolute http(s) URL", field="url", rule="url")
    # Credentials in a URL would be shown to every reader of the record: sign, don't embed.
    require(parts.username is None and parts.password is None,
            "'url' must not carry credentials; deliveries are signed instead", field="url",
            rule="url_credentials")
    return url


def _names(values: list[str] | None, field: str, pattern: re.Pattern[str],
           known: frozenset[str] | None) -> list[str]:
    names = sorted({require_text(v, field, max_length=200).lower() for v in values or []})
    require(len(names) <= MAX_FILTER_ITEMS, f"'{field}' names more than {MAX_FILTER_ITEMS}",
            field=field)
    for name in names:
        require(bool(pattern.match(name)), f"'{field}': '{name}' is not a valid name",
                field=field)
        if known is not None and name not in known:
            raise ValidationFailed(f"'{field}': '{name}' is not a published type",
                                   field=field, rule="unknown_type")
    return names


def _record_types(values: list[str] | None) -> list[str]:
    return _names(values, "record_types", NAME_PATTERN,
                  _published[0] if _published else None)


def _event_types(values: list[str] | None) -> list[str]:
    return _names(values, "event_types", TYPE_PATTERN, _published[1] if _published else None)


class Webhook(Record):
    """An integration's endpoint: where published events matching its filter are delivered."""

    RECORD_TYPE = "webhook"

    @classmethod
    @command
    def register(cls, actor: Actor, *, name: str, url: str,
                 record_types: list[str] | None = None,
                 event_types: list[str] | None = None) -> Webhook:
        """Register an endpoint for the published events matching the filter (record types,
        event types like "project.approved"; empty: all); leadership only."""
        _check_integrator(actor)
        return cls(name=require_text(name, "name", max_length=200), url=_url(url),
                   record_types=_record_types(record_types),
                   event_types=_event_types(event_types), by=actor.user_id)

    @event("Registered")
    def __init__(self, *, name: str, url: str, record_types: list[str],
                 event_types: list[str], by: str) -> None:
        """An endpoint was registered; deliveries start with the next event."""
        self.department = INTEGRATIONS_DEPARTMENT
        self.name = name
        self.url = url
        self.record_types = list(record_types)
        self.event_types = list(event_types)
        self.status: str = WebhookStatus.ACTIVE.value
        self.registered_by = by
        self.secret_version = 1
        self.disable_reason: str | None = None
        self.dead_letter_replays = 0

    @command
    def update(self, actor: Actor, *, name: str | None = None, url: str | None = None,
               record_types: list[str] | None = None,
               event_types: list[str] | None = None) -> None:
        """Change the name, URL or filter (None leaves a field as is; [] means all); leadership."""
        _check_integrator(actor)
        new: dict[str, Any] = {}
        if name is not None:
            new["name"] = require_text(name, "name", max_length=200)
        if url is not None:
            new["url"] = _url(url)
        if record_types is not None:
            new["record_types"] = _record_types(record_types)
        if event_types is not None:
            new["event_types"] = _event_types(event_types)
        changes = {k: v for k, v in new.items() if getattr(self, k) != v}
        require(bool(changes), "the update changes nothing", rule="no_changes")
        self._updated(changes=changes, by=actor.user_id)

    @event("Updated")
    def _updated(self, *, changes: dict[str, Any], by: str) -> None:
        """The endpoint's name, URL or filter changed (new values only)."""
        for key, value in changes.items():
            setattr(self, key, value)

    @command
    def disable(self, actor: Actor, *, reason: str) -> None:
        """Stop deliveries (pending ones wait until enabled again); leadership, with a reason."""
        _check_integrator(actor)
        self.check_status("disable", WebhookStatus.ACTIVE)
        self._disabled(reason=require_reason(reason, "disable a webhook"), by=actor.user_id)

    @event("Disabled")
    def _disabled(self, *, reason: str, by: str) -> None:
        """Deliveries to the endpoint stopped."""
        self.status = WebhookStatus.DISABLED.value
        self.disable_reason = reason

    @command
    def enable(self, actor: Actor) -> None:
        """Resume deliveries, pending ones first; leadership."""
        _check_integrator(actor)
        self.check_status("enable", WebhookStatus.DISABLED)
        self._enabled(by=actor.user_id)

    @event("Enabled")
    def _enabled(self, *, by: str) -> None:
        """Deliveries to the endpoint resumed."""
        self.status = WebhookStatus.ACTIVE.value
        self.disable_reason = None

    @command
    def rotate_secret(self, actor: Actor) -> None:
        """Replace the signing secret (the old one stops signing at once); leadership."""
        _check_integrator(actor)
        self._secret_rotated(secret_version=self.secret_version + 1, by=actor.user_id)

    @event("SecretRotated")
    def _secret_rotated(self, *, secret_version: int, by: str) -> None:
        """The signing secret moved to a new version (the secret itself is never recorded)."""
        self.secret_version = secret_version

    @command
    def replay_dead_letters(self, actor: Actor, *, delivery_ids: list[int] | None = None) -> None:
        """Send the dead-lettered deliveries again (all, or those named); leadership."""
        _check_integrator(actor)
        ids = sorted(set(delivery_ids or []))
        require(all(i > 0 for i in ids), "'delivery_ids' are positive numbers",
                field="delivery_ids")
        self._dead_letters_replay_requested(delivery_ids=ids, by=actor.user_id)

    @event("DeadLettersReplayRequested")
    def _dead_letters_replay_requested(self, *, delivery_ids: list[int], by: str) -> None:
        """An operator asked for dead letters (all when none are named) to be sent again."""
        self.dead_letter_replays += 1
