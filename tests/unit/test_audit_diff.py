"""The field-level diff behind record histories and version diffs (pure function)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from service.audit.diff import Change, diff_values, diff_views


def changes(old: Any, new: Any) -> list[tuple[str, Any, Any]]:
    return [(c.path, c.old, c.new) for c in diff_views(old, new)]


def test_a_changed_scalar_reads_old_to_new() -> None:
    assert changes({"status": "draft"}, {"status": "submitted"}) == [
        ("status", "draft", "submitted")]


def test_the_first_event_lists_the_whole_initial_state() -> None:
    state = {"name": "Portal", "tasks": [{"id": "t1", "status": "todo"}], "lead": None}
    assert changes(None, state) == [("name", None, "Portal"),
                                    ("tasks", None, [{"id": "t1", "status": "todo"}])]


def test_version_and_modified_on_are_bookkeeping_not_changes() -> None:
    assert changes({"version": 1, "modified_on": "a", "x": 1},
                   {"version": 2, "modified_on": "b", "x": 1}) == []


def test_nested_objects_read_as_dotted_paths() -> None:
    assert changes({"lead": {"user_id": "leo", "name": "Leo"}},
                   {"lead": {"user_id": "mia", "name": "Leo"}}) == [
        ("lead.user_id", "leo", "mia")]


def test_items_with_ids_are_matched_by_id_not_position() -> None:
    old = {"tasks": [{"id": "a", "status": "todo"}, {"id": "b", "status": "todo"}]}
    new = {"tasks": [{"id": "b", "status": "done"}, {"id": "a", "status": "todo"},
                     {"id": "c", "status": "todo"}]}
    assert changes(old, new) == [("tasks[b].status", "todo", "done"),
                                 ("tasks[c]", None, {"id": "c", "status": "todo"})]


def test_a_removed_line_reads_value_to_none() -> None:
    line = {"id": "L1", "amount": "12000.00"}
    result = diff_views({"lines": [line, {"id": "L2", "amount": "1.00"}]},
                        {"lines": [{"id": "L2", "amount": "1.00"}]})
    assert result == [Change("lines[L1]", line, None)]
    assert result[0].as_dict() == {"path": "lines[L1]", "kind": "removed", "old": line,
                                   "new": None}


def test_lists_without_ids_are_compared_by_position() -> None:
    assert changes({"items": ["a", "b"]}, {"items": ["a", "c", "d"]}) == [
        ("items[1]", "b", "c"), ("items[2]", None, "d")]
    assert changes({"plans": [{"version": 1, "status": "review"}]},
                   {"plans": [{"version": 1, "status": "approved"}]}) == [
        ("plans[0].status", "review", "approved")]


def test_a_field_that_disappears_reads_value_to_none() -> None:
    assert changes({"a": 1, "b": 2}, {"a": 1}) == [("b", 2, None)]


def test_a_change_of_type_is_a_change() -> None:
    assert changes({"x": 1}, {"x": "1"}) == [("x", 1, "1")]
    assert changes({"x": True}, {"x": 1}) == [("x", True, 1)]
    assert changes({"x": [1]}, {"x": {"0": 1}}) == [("x", [1], {"0": 1})]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(["id", "a", "b", "c"]), inner, max_size=4),
    max_leaves=20)


@given(json_values)
def test_nothing_changes_between_equal_values(value: Any) -> None:
    assert diff_values(value, value) == []


@given(json_values, json_values)
def test_the_reverse_diff_swaps_old_and_new(old: Any, new: Any) -> None:
    forward = sorted(repr((c.path, c.old, c.new)) for c in diff_values(old, new))
    backward = sorted(repr((c.path, c.new, c.old)) for c in diff_values(new, old))
    assert forward == backward


@given(json_values, json_values)
def test_values_that_differ_in_a_scalar_show_a_change(old: Any, new: Any) -> None:
    if not isinstance(old, dict | list) and (old != new or type(old) is not type(new)):
        assert diff_values(old, new) == [Change("$", old, new)]
