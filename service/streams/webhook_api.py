"""REST for what webhooks record outside their events: deliveries, dead letters, the secret.

Registering, changing, disabling and replaying are commands (``POST /webhooks`` …, generated
from ``domain/webhook.py``). Delivery history is read by the stream readers (analyst, auditor,
leadership); the signing secret only by leadership, who hand it to the integration.
"""

# No `from __future__ import annotations` here: FastAPI reads the signatures.

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from domain.shared import Actor, NotPermitted, Role
from domain.webhook import Webhook
from service.rest.commands import ActorDep, LedgerDep
from service.streams.feed import ReaderDep, StreamsDep

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid token"}, 403: {"description": "Not permitted"},
    404: {"description": "Unknown webhook"}}


class Attempt(BaseModel):
    attempt: int
    at: datetime
    status: int | None = Field(description="HTTP status, or null when there was no answer.")
    error: str | None
    ms: int


class Delivery(BaseModel):
    id: int
    webhook_id: UUID
    position: int
    event_id: str
    event_type: str
    status: Literal["pending", "delivered", "dead"] = Field(
        description="dead: the attempt limit was reached (a dead letter).")
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    replays: int
    created_at: datetime
    delivered_at: datetime | None
    history: list[Attempt]


class Deliveries(BaseModel):
    deliveries: list[Delivery]
    next_before: int | None = Field(description="Pass as `before` for older deliveries.")


class Secret(BaseModel):
    webhook_id: UUID
    secret_version: int
    secret: str = Field(description="whsec_<base64 key> (Standard Webhooks).")
    scheme: str


def leadership(actor: ActorDep) -> Actor:
    if not actor.has_role(Role.LEADERSHIP) or actor.has_role(Role.AUDITOR):
        raise NotPermitted("only leadership reads webhook secrets", rule="leadership_only")
    return actor


def build_router() -> APIRouter:
    router = APIRouter(tags=["webhooks"])

    @router.get("/webhooks/{record_id}/deliveries", operation_id="webhooks-deliveries",
                response_model=Deliveries, responses=PROBLEMS,
                summary="Delivery history of a webhook, newest first",
                description="Every delivery with each attempt (status, error, duration). "
                            "`status=dead` lists the dead letters. Readers: analyst, "
                            "auditor, leadership.")
    def deliveries(record_id: UUID, ledger: LedgerDep, _actor: ReaderDep,
                   request: Request,
                   status: Annotated[Literal["pending", "delivered", "dead"] | None,
                                     Query()] = None,
                   before: Annotated[int | None, Query(ge=1)] = None,
                   limit: Annotated[int, Query(ge=1, le=500)] = 50) -> Deliveries:
        ledger.load(Webhook, record_id)  # 404 for an unknown webhook
        store = request.app.state.container.store
        rows = store.execute(
            "SELECT id, webhook_id, position, event_id, event_type, status, attempts,"
            " CASE WHEN status = 'pending' THEN next_attempt_at END AS next_attempt_at,"
            " last_status, last_error, replays, created_at, delivered_at, history"
            " FROM webhook_deliveries WHERE webhook_id = %s"
            " AND (%s::text IS NULL OR status = %s) AND (%s::bigint IS NULL OR id < %s)"
            " ORDER BY id DESC LIMIT %s",
            (record_id, status, status, before, before, limit))
        items = [Delivery.model_validate(r) for r in rows]
        return Deliveries(deliveries=items,
                          next_before=items[-1].id if len(items) == limit else None)

    @router.get("/webhooks/{record_id}/secret", operation_id="webhooks-secret",
                response_model=Secret, responses=PROBLEMS,
                summary="The signing secret of a webhook (leadership)",
                description="Derived from the service's signing key and the webhook's "
                            "`secret_version`; `rotate-secret` replaces it. Never stored.")
    def secret(record_id: UUID, ledger: LedgerDep, streams: StreamsDep,
               _actor: Annotated[Actor, Depends(leadership)]) -> Secret:
        hook = ledger.load(Webhook, record_id)
        assert isinstance(hook, Webhook)
        return Secret(webhook_id=hook.id, secret_version=hook.secret_version,
                      secret=streams.secrets.secret(hook.id, hook.secret_version),
                      scheme="Standard Webhooks v1: webhook-signature = 'v1,' + base64("
                             "HMAC-SHA256(base64-decoded secret, '<webhook-id>.<webhook-"
                             "timestamp>.<body>'))")

    return router
