"""A record's history: every event with who, when, what changed (old → new) and why.

The record is replayed event by event with the domain's own code and consecutive
``record_view``s are diffed, so the history shows exactly what the public state showed — for
every record type, with no per-type code. The first entry diffs against nothing: it lists the
whole initial state (and carries it as ``state``).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from domain.shared import Record
from projections.codec import jsonable, record_view
from service.audit.asof import AsOfReader, VersionAt
from service.audit.diff import diff_views

MAX_PAGE = 1000
# Event attributes that are bookkeeping rather than what the command said.
_HEADER = frozenset({"originator_id", "originator_version", "timestamp", "meta"})


def reason_of(event: Any) -> str | None:
    """The reason a command gave in its payload (``reason``, ``justification``,
    ``override_reason`` …), when it has one."""
    for key, value in vars(event).items():
        if key in _HEADER or not isinstance(value, str) or not value.strip():
            continue
        if key == "reason" or key.endswith("_reason") or key == "justification":
            return value
    return None


def entry(event: Any, changes: list[dict[str, Any]], position: int | None) -> dict[str, Any]:
    meta = getattr(event, "meta", None) or {}
    actor = meta.get("actor") or {}
    return {
        "version": event.originator_version,
        "position": position,
        "event_type": type(event).__name__,
        "at": jsonable(event.timestamp),
        "actor": {"user_id": actor.get("user_id"), "name": actor.get("name"),
                  "roles": list(actor.get("roles") or []),
                  "departments": list(actor.get("departments") or [])},
        "command": meta.get("command"),
        "comment": meta.get("comment"),
        "reason": reason_of(event),
        "correlation_id": meta.get("correlation_id"),
        "causation_id": meta.get("causation_id"),
        "request_id": meta.get("request_id"),
        "idempotency_key": meta.get("idempotency_key"),
        "trace_id": meta.get("trace_id"),
        "span_id": meta.get("span_id"),
        "changes": changes,
    }


class HistoryReader:
    def __init__(self, reader: AsOfReader):
        self.reader = reader

    def positions(self, record_id: UUID, after: int, upto: int) -> dict[int, int]:
        rows = self.reader.store.execute(
            "SELECT version, position FROM event_log WHERE record_id = %s"
            " AND version > %s AND version <= %s", (record_id, after, upto))
        return {int(r["version"]): int(r["position"]) for r in rows}

    def history(self, record_cls: type[Record], record_id: UUID, current: VersionAt, *,
                from_version: int = 1, limit: int = 100) -> dict[str, Any]:
        """Entries for versions ``from_version`` … ``from_version + limit - 1`` of a record
        whose latest version is ``current`` (``AsOfReader.head``)."""
        from_version = max(1, from_version)
        limit = max(1, min(limit, MAX_PAGE))
        upto = min(current.version, from_version + limit - 1)
        entries: list[dict[str, Any]] = []
        if from_version <= current.version:
            positions = self.positions(record_id, from_version - 1, upto)
            record = self.reader.rebuild(record_id, from_version - 1) if from_version > 1 \
                else None
            previous = record_view(record) if record is not None else None
            events: Any = self.reader.store.events.get(record_id, gt=from_version - 1,
                                                       lte=upto)
            for event in events:
                record = event.mutate(record)
                view = record_view(record)
                changes = [c.as_dict() for c in diff_views(previous, view)]
                item = entry(event, changes, positions.get(event.originator_version))
                if previous is None:
                    item["state"] = view
                entries.append(item)
                previous = view
        # Erased personal data reads as None at every version (the key is destroyed).
        erased = (hasattr(record_cls, "split_personal_state")
                  and self.reader.store.personal.is_erased(record_id))
        for item in entries:
            if erased and "state" in item:
                item["state"] = {**item["state"], "personal_data_erased": True}
        return {
            "record_type": record_cls.RECORD_TYPE,
            "record_id": str(record_id),
            "current_version": current.version,
            "department": current.department,
            "from_version": from_version,
            "entries": entries,
            "next_from_version": upto + 1 if upto < current.version else None,
            "personal_data_erased": erased,
        }

    def diff(self, record_cls: type[Record], record_id: UUID, from_version: int,
             to_version: int) -> dict[str, Any]:
        """What changed between two versions (either order), and the events in between."""
        before = self.reader.view(self.reader.at_version(record_cls, record_id, from_version))
        after = self.reader.view(self.reader.at_version(record_cls, record_id, to_version))
        low, high = sorted((from_version, to_version))
        rows = self.reader.store.execute(
            "SELECT version, position, event_type, occurred_at, actor_id FROM event_log"
            " WHERE record_id = %s AND version > %s AND version <= %s ORDER BY version",
            (record_id, low, high))
        return {
            "record_type": record_cls.RECORD_TYPE,
            "record_id": str(record_id),
            "from_version": from_version,
            "to_version": to_version,
            "from_at": before["modified_on"],
            "to_at": after["modified_on"],
            "changes": [c.as_dict() for c in diff_views(before, after)],
            "events": [{"version": int(r["version"]), "position": int(r["position"]),
                        "event_type": r["event_type"], "at": r["occurred_at"].isoformat(),
                        "actor_id": r["actor_id"]} for r in rows],
        }
