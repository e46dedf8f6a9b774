"""Periodic digests: the projector's leader signs one each interval, only when events were
appended since the last digest."""

from __future__ import annotations

import time
from typing import Any

from tests.conftest import make_settings
from tests.integration.test_event_store import edit, propose


def digests(container: Any) -> list[tuple[int, str]]:
    return [(r["tree_size"], r["reason"]) for r in container.store.execute(
        "SELECT tree_size, reason FROM merkle_digests ORDER BY id")]


def wait_for(condition: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_the_leader_signs_a_digest_per_interval_only_when_events_were_appended(
        fresh_database: Any) -> None:
    from service.bootstrap import bootstrap

    c = bootstrap(make_settings(digest_interval_seconds=0.2), fresh_database,
                  start_projector=True)
    try:
        time.sleep(0.6)
        assert digests(c) == []  # nothing appended: nothing to attest
        pid = propose(c.ledger).body["id"]
        edit(c.ledger, pid, "second")
        assert wait_for(lambda: digests(c)[-1:] == [(2, "periodic")])
        signed = digests(c)
        time.sleep(0.6)
        assert digests(c) == signed  # idle: no new digest
        edit(c.ledger, pid, "third")
        assert wait_for(lambda: digests(c)[-1:] == [(3, "periodic")])
        assert c.integrity.verify().ok
    finally:
        c.close()


def test_the_leader_prepares_its_tree_at_start_not_at_the_first_tick(
        fresh_database: Any) -> None:
    from service.bootstrap import bootstrap

    first = bootstrap(make_settings(), fresh_database, start_projector=False)
    try:
        pid = propose(first.ledger).body["id"]
        edit(first.ledger, pid, "second")
    finally:
        first.close()
    c = bootstrap(make_settings(digest_interval_seconds=3600), fresh_database,
                  start_projector=True)
    try:
        assert wait_for(lambda: c.integrity.tree_size == 2)  # the tick is an hour away
        assert digests(c) == []  # prepared, not signed
        edit(c.ledger, pid, "third")
        digest = c.integrity.sign_digest()  # extends the prepared tree
        assert (digest.tree_size, digest.reason) == (3, "on_demand")
        assert c.integrity.verify().ok
    finally:
        c.close()
