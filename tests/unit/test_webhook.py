"""Webhooks (integrations): given commands, when one command, then events, state or refusal."""

from __future__ import annotations

from typing import Any

import pytest

from domain.shared import Actor, InvalidTransition, NotPermitted, ValidationFailed
from domain.webhook import Webhook

LENA = Actor("lena", roles=frozenset({"leadership"}))
LEO = Actor("leo", roles=frozenset({"leadership"}))
AUDITING_LEADER = Actor("al", roles=frozenset({"leadership", "auditor"}))
MANAGER = Actor("mgr", roles=frozenset({"dept_manager"}), departments=frozenset({"ops"}))
ANALYST = Actor("ana", roles=frozenset({"analyst"}))


def registered(**extra: Any) -> Webhook:
    fields: dict[str, Any] = {"name": "ERP", "url": "https://erp.example.com/hooks", **extra}
    hook = Webhook.register(LENA, **fields)
    return hook


def names(hook: Webhook) -> list[str]:
    return [type(e).__name__ for e in hook.collect_events()]


def test_leadership_registers_an_endpoint_with_a_filter() -> None:
    hook = registered(record_types=["Project"], event_types=["risk.assessed", "project.approved"])

    assert names(hook) == ["Registered"]
    assert (hook.status, hook.department, hook.registered_by) == ("active", "integrations",
                                                                 "lena")
    assert hook.record_types == ["project"]
    assert hook.event_types == ["project.approved", "risk.assessed"]
    assert hook.secret_version == 1


def test_only_leadership_manages_webhooks_and_auditors_never() -> None:
    for actor in (MANAGER, ANALYST, AUDITING_LEADER):
        with pytest.raises(NotPermitted) as refused:
            Webhook.register(actor, name="x", url="https://example.com")
        assert refused.value.rule == "leadership_only"
    hook = registered()
    with pytest.raises(NotPermitted):
        hook.disable(ANALYST, reason="no")


@pytest.mark.parametrize("url", ["ftp://example.com/x", "example.com/x", "https://",
                                 "https://user:pw@example.com/x"])
def test_an_endpoint_is_an_absolute_http_url_without_credentials(url: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        registered(url=url)
    assert refused.value.field == "url"


def test_event_types_are_named_record_type_dot_event() -> None:
    with pytest.raises(ValidationFailed) as refused:
        registered(event_types=["Approved"])
    assert refused.value.field == "event_types"


def test_disabling_needs_a_reason_and_enabling_resumes() -> None:
    hook = registered()
    hook.collect_events()
    with pytest.raises(ValidationFailed):
        hook.disable(LENA, reason=" ")

    hook.disable(LEO, reason="ERP maintenance")
    with pytest.raises(InvalidTransition):
        hook.disable(LEO, reason="again")
    hook.enable(LENA)

    assert names(hook) == ["Disabled", "Enabled"]
    assert hook.status == "active" and hook.disable_reason is None


def test_an_update_records_only_what_changed() -> None:
    hook = registered()
    hook.collect_events()

    hook.update(LEO, name="ERP", url="https://erp2.example.com/hooks", record_types=[])
    events = hook.collect_events()

    assert [type(e).__name__ for e in events] == ["Updated"]
    assert events[0].changes == {"url": "https://erp2.example.com/hooks"}  # type: ignore[attr-defined]
    with pytest.raises(ValidationFailed):
        hook.update(LEO, name="ERP")


def test_rotating_the_secret_moves_to_a_new_version_and_replays_are_counted() -> None:
    hook = registered()
    hook.collect_events()

    hook.rotate_secret(LEO)
    hook.replay_dead_letters(LENA, delivery_ids=[3, 1, 3])
    events = hook.collect_events()

    assert [type(e).__name__ for e in events] == ["SecretRotated", "DeadLettersReplayRequested"]
    assert hook.secret_version == 2 and hook.dead_letter_replays == 1
    assert events[1].delivery_ids == [1, 3]  # type: ignore[attr-defined]


def test_replaying_the_events_rebuilds_the_same_webhook() -> None:
    hook = registered(event_types=["project.approved"])
    hook.update(LEO, url="https://other.example.com")
    hook.disable(LEO, reason="pause")
    hook.rotate_secret(LENA)
    events = hook.collect_events()

    copy = None
    for e in events:
        copy = e.mutate(copy)

    assert {k: v for k, v in vars(copy).items() if k != "_pending_events"} == {
        k: v for k, v in vars(hook).items() if k != "_pending_events"}
