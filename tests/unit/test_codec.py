"""The transcoder that decodes with orjson gives what the library's own decoder gives."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.persistence import JSONTranscoder, TranscodingNotRegisteredError

from projections.codec import FastJSONTranscoder, make_mapper


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
]


@pytest.mark.parametrize("value", VALUES)
def test_decoding_with_orjson_gives_the_library_decoders_objects(value: Any) -> None:
    library, fast = library_transcoder(), make_mapper().transcoder
    assert isinstance(fast, FastJSONTranscoder)
    data = library.encode(value)
    assert fast.encode(value) == data
    decoded = fast.decode(data)
    assert decoded == library.decode(data)
    assert json.dumps(decoded, default=repr) == json.dumps(library.decode(data), default=repr)


@pytest.mark.parametrize("data", [b'{"big": 123456789012345678901234567890}', b'[NaN, 1]',
                                  b'{"s": "\\ud800"}', b'[-123456789012345678901234567890]',
                                  b'123456789012345678901234567890', b'{"f": 1e300}'])
def test_what_orjson_refuses_is_decoded_by_the_library(data: bytes) -> None:
    library, fast = library_transcoder(), make_mapper().transcoder
    assert repr(fast.decode(data)) == repr(library.decode(data))


def test_an_unknown_transcoding_is_refused_as_by_the_library() -> None:
    with pytest.raises(TranscodingNotRegisteredError):
        make_mapper().transcoder.decode(b'{"x": {"_type_": "nope", "_data_": "1"}}')
