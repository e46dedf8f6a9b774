"""The transcoder that decodes with orjson gives what the library's own decoder gives."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum, StrEnum
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.persistence import JSONTranscoder, TranscodingNotRegisteredError

from projections.codec import (
    FastJSONTranscoder,
    json_loads,
    make_mapper,
    record_view,
    view_bytes,
    view_json,
    walked_view,
)


def library_transcoder() -> JSONTranscoder:
    library = JSONTranscoder()
    for transcoding in make_mapper().transcoder.types.values():  # type: ignore[attr-defined]
        library.register(transcoding)
    return library


VALUES: list[Any] = [
    {"timestamp": datetime(2026, 11, 21, 15, 37, 42, 290302, tzinfo=UTC),
     "amount": Decimal("12.50"), "day": date(2026, 1, 2), "id": uuid4(),
     "meta": {"actor": {"user_id": "pm1", "roles": ["member"]}, "comment": None},
     "actuals": [{"id": uuid4(), "amount": Decimal("1.00"), "lines": [[Decimal("2")], []]}],
     "text": "naïve \u2028 \"quoted\" \\ \n", "n": -3, "f": 1.5, "t": True, "empty": {}},
    [uuid4(), {"nested": [date(2020, 2, 29)]}, []],
    "plain", 7, None,
    {"_type_": "not a transcoding, three keys", "_data_": 1, "other": 2},
    # no float: orjson writes it all
    {"id": uuid4(), "at": datetime(2026, 11, 21, tzinfo=UTC), "due": date(2026, 12, 1),
     "amount": Decimal("-0.10"), "tasks": ({"done": False, "n": 2**63 - 1}, ["a", None]),
     "text": "控制 \x00\x1f\x7f \u2028 \U0001F600 \"q\" \\ / \t", "": -2**63},
]


class Colour(StrEnum):
    RED = "red"


# What orjson would write differently (or not at all): the library's encoder writes it.
LIBRARY_ONLY: list[Any] = [{"f": 0.1}, {1: "int key"}, {"big": 2**70}, {"colour": Colour.RED},
                           [True, {"k": [1e16]}]]


@pytest.mark.parametrize("value", VALUES)
def test_decoding_with_orjson_gives_the_library_decoders_objects(value: Any) -> None:
    library, fast = library_transcoder(), make_mapper().transcoder
    assert isinstance(fast, FastJSONTranscoder)
    data = library.encode(value)
    assert fast.encode(value) == data
    decoded = fast.decode(data)
    assert decoded == library.decode(data)
    assert json.dumps(decoded, default=repr) == json.dumps(library.decode(data), default=repr)


@pytest.mark.parametrize("value", LIBRARY_ONLY)
def test_what_orjson_would_write_otherwise_is_encoded_by_the_library(value: Any) -> None:
    assert make_mapper().transcoder.encode(value) == library_transcoder().encode(value)


def test_a_plain_document_is_written_by_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = make_mapper().transcoder
    expected = library_transcoder().encode(VALUES[-1])
    monkeypatch.setattr(JSONTranscoder, "encode", lambda self, obj: pytest.fail("library"))
    assert fast.encode(VALUES[-1]) == expected


def test_what_neither_can_encode_is_refused_as_by_the_library() -> None:
    for value in ({"s": "\ud800"}, {"x": object()}):
        with pytest.raises(Exception) as library:
            library_transcoder().encode(value)
        with pytest.raises(type(library.value)):
            make_mapper().transcoder.encode(value)


@pytest.mark.parametrize("data", [b'{"big": 123456789012345678901234567890}', b'[NaN, 1]',
                                  b'{"s": "\\ud800"}', b'[-123456789012345678901234567890]',
                                  b'123456789012345678901234567890', b'{"f": 1e300}'])
def test_what_orjson_refuses_is_decoded_by_the_library(data: bytes) -> None:
    library, fast = library_transcoder(), make_mapper().transcoder
    assert repr(fast.decode(data)) == repr(library.decode(data))


def test_an_unknown_transcoding_is_refused_as_by_the_library() -> None:
    with pytest.raises(TranscodingNotRegisteredError):
        make_mapper().transcoder.decode(b'{"x": {"_type_": "nope", "_data_": "1"}}')


class _Stage(Enum):
    DRAFT = "draft"


@dataclasses.dataclass
class _Part:
    n: int


class _Aggregate:
    """What ``view_bytes`` reads of a record: its attributes, id, version and times."""

    RECORD_TYPE = "thing"

    def __init__(self, **state: Any):
        self.__dict__.update(state)
        self._private = "not in the view"
        self.id = uuid4()
        self.version = 7
        self.created_on = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        self.modified_on = datetime(2026, 11, 21, 15, 37, 42, 290302, tzinfo=UTC)


VIEW_STATES: list[dict[str, Any]] = [
    {"amount": Decimal("12.50"), "neg": Decimal("-0.10"), "day": date(2020, 2, 29),
     "at": datetime(2026, 5, 1, 8, 0, tzinfo=UTC), "naive": datetime(2026, 5, 1, 8, 0, 0, 1),
     "ref": uuid4(), "stage": _Stage.DRAFT, "colour": Colour.RED, "span": timedelta(days=1),
     "clock": time(12, 30, 0, 5), "tags": {"b"}, "frozen": frozenset(), "pair": (1, "x"),
     "lines": [{"amount": Decimal("1"), "monthly": [Decimal("0.5"), None]}],
     "text": "控制 \x00\x1f\x7f \u2028 \U0001F600 \"q\" \\ / \t", "n": 2**63 - 1, "yes": True,
     "none": None, "empty": {}},
    # written the slow way: a dataclass, a key that is not a string, an integer past 64 bits,
    # a time with a zone
    {"part": _Part(1)}, {"by_month": {1: Decimal("2")}}, {"big": 2**70},
    {"clock": time(1, 2, tzinfo=UTC)},
]


@pytest.mark.parametrize("state", VIEW_STATES)
def test_a_view_written_by_orjson_is_the_records_view(state: dict[str, Any]) -> None:
    aggregate = _Aggregate(**state)
    assert json.loads(view_bytes(aggregate)) == json.loads(view_json(record_view(aggregate)))


@pytest.mark.parametrize("state", VIEW_STATES)
def test_a_records_view_read_back_from_orjson_is_the_walked_view(state: dict[str, Any]) -> None:
    aggregate = _Aggregate(**state)
    view, walked = record_view(aggregate), walked_view(aggregate)
    assert view == walked
    assert list(view) == list(walked)  # the same keys, in the same order
    assert json.dumps(view) == json.dumps(walked)  # the same types: str, not Decimal or UUID


@pytest.mark.parametrize("data", [
    b'{"a": [1, -2, "x\\u00e9", null, true, {"b": "\\u4e2d"}], "c": "12.50"}',
    b'{"big": 123456789012345678901234567890}', b'[-18446744073709551617, 1]',
    b'{"s": "\\ud800"}', b'[NaN]', b'"plain"', b'1.5'])
def test_json_columns_read_by_orjson_give_what_the_standard_library_gives(data: bytes) -> None:
    assert repr(json_loads(data)) == repr(json.loads(data))
