"""Field-level differences between two JSON views of a record (pure: no I/O).

A change names the field by a path an auditor can read: ``status``, ``lead.user_id``,
``tasks[<task id>].status`` (items of a list of objects that all carry an ``id`` are matched by
that id, so a reordered or grown list does not read as every item changing), ``lines[2]``
(other lists are compared position by position). A value that appears reads ``None → value``;
one that disappears reads ``value → None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Fields every event changes; the history shows them in the entry's header instead.
BOOKKEEPING_FIELDS = frozenset({"version", "modified_on"})


@dataclass(frozen=True)
class Change:
    path: str
    old: Any
    new: Any

    @property
    def kind(self) -> str:
        if self.old is None:
            return "added"
        if self.new is None:
            return "removed"
        return "changed"

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "old": self.old, "new": self.new}


def diff_views(old: dict[str, Any] | None, new: dict[str, Any] | None, *,
               ignore: frozenset[str] = BOOKKEEPING_FIELDS) -> list[Change]:
    """Changes from ``old`` to ``new`` (either may be ``None``: nothing), top-level fields in
    ``ignore`` left out."""
    old = {k: v for k, v in (old or {}).items() if k not in ignore}
    new = {k: v for k, v in (new or {}).items() if k not in ignore}
    out: list[Change] = []
    _diff_dicts(old, new, "", out)
    return out


def diff_values(old: Any, new: Any, path: str = "") -> list[Change]:
    """Changes between any two JSON values, ``path`` naming where they sit."""
    out: list[Change] = []
    _diff(old, new, path, out)
    return out


def _diff(old: Any, new: Any, path: str, out: list[Change]) -> None:
    if old == new and type(old) is type(new):
        return
    if isinstance(old, dict) and isinstance(new, dict):
        _diff_dicts(old, new, path, out)
    elif isinstance(old, list) and isinstance(new, list):
        if _keyed(old) and _keyed(new):
            _diff_keyed(old, new, path, out)
        else:
            _diff_indexed(old, new, path, out)
    else:
        out.append(Change(path or "$", old, new))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _diff_dicts(old: dict[str, Any], new: dict[str, Any], path: str, out: list[Change]) -> None:
    for key, value in new.items():
        _diff(old.get(key), value, _join(path, key), out)
    for key, value in old.items():
        if key not in new and value is not None:
            out.append(Change(_join(path, key), value, None))


def _keyed(items: list[Any]) -> bool:
    """Every item is an object with an ``id``, and the ids are distinct."""
    ids = [item.get("id") if isinstance(item, dict) else None for item in items]
    return None not in ids and len(set(map(str, ids))) == len(ids)


def _diff_keyed(old: list[dict[str, Any]], new: list[dict[str, Any]], path: str,
                out: list[Change]) -> None:
    before = {str(item["id"]): item for item in old}
    after_ids = set()
    for item in new:
        key = str(item["id"])
        after_ids.add(key)
        _diff(before.get(key), item, f"{path}[{key}]", out)
    for key, item in before.items():
        if key not in after_ids:
            out.append(Change(f"{path}[{key}]", item, None))


def _diff_indexed(old: list[Any], new: list[Any], path: str, out: list[Change]) -> None:
    for i in range(max(len(old), len(new))):
        _diff(old[i] if i < len(old) else None, new[i] if i < len(new) else None,
              f"{path}[{i}]", out)
