"""How events and record state are encoded: the library's JSON transcoder, and JSON views."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from operator import attrgetter
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.domain import Snapshot
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Mapper,
    StoredEvent,
    Transcoding,
    UUIDAsHex,
)
from psycopg.types.json import Jsonb


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class FastJSONTranscoder(JSONTranscoder):
    """The library's JSON transcoder, with orjson underneath: the same bytes and the same
    objects, faster (decoding events was a third of a rebuild's CPU, encoding record states
    another seventh).

    Decoding: what orjson refuses (NaN, lone surrogates) or may not give exactly (integers
    past 64 bits, which it reads as floats: any float that large sends the document back) is
    decoded by the library's decoder. Encoding: the values the library would hand to a
    transcoding (a UUID, a Decimal, a date …) are replaced, in a copy, by the library's own
    ``{"_type_", "_data_"}`` objects, and orjson writes the rest, byte for byte what the
    library's ``json`` encoder writes for strings, integers, booleans and null
    (``tests/unit/test_codec.py``). Anything else — a float, a key that is not a string, a
    subclass, an integer past 64 bits — is encoded by the library's encoder, as before.

    The library's own transcodings of UUIDs, Decimals and datetimes, and ours of dates, are
    each one call of a built-in (``_INLINE``): the walks make that call themselves (a
    project's state holds ~60 such values; encoding it took ~115 µs, decoding ~80)."""

    def __init__(self) -> None:
        self._encoders: dict[type, tuple[str, Callable[[Any], str]]] = {}
        self._decoders: dict[str, Callable[[str], Any]] = {}
        super().__init__()

    def register(self, transcoding: Transcoding) -> None:
        super().register(transcoding)
        inline = _INLINE.get(type(transcoding))
        self._encoders.pop(transcoding.type, None)
        self._decoders.pop(transcoding.name, None)
        if inline is not None:
            self._encoders[transcoding.type] = (transcoding.name, inline[0])
            self._decoders[transcoding.name] = inline[1]

    def encode(self, obj: Any) -> bytes:
        try:
            return orjson.dumps(self._plain_list([obj])[0])
        except (_Unplain, orjson.JSONEncodeError):
            return super().encode(obj)

    # The walks test the common scalars inline (a record's state is mostly those), write the
    # inline transcodings' objects, and hand anything else to ``_plain``.
    def _plain_dict(self, d: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        encoders = self._encoders
        for key, value in d.items():
            if type(key) is not str:
                raise _Unplain
            kind = type(value)
            if kind is str or kind is int or kind is bool or value is None:
                out[key] = value
            elif (inline := encoders.get(kind)) is not None:
                out[key] = {"_type_": inline[0], "_data_": inline[1](value)}
            else:
                out[key] = self._plain(value, kind)
        return out

    def _plain_list(self, items: list[Any] | tuple[Any, ...]) -> list[Any]:
        out: list[Any] = []
        encoders = self._encoders
        for value in items:
            kind = type(value)
            if kind is str or kind is int or kind is bool or value is None:
                out.append(value)
            elif (inline := encoders.get(kind)) is not None:
                out.append({"_type_": inline[0], "_data_": inline[1](value)})
            else:
                out.append(self._plain(value, kind))
        return out

    def _plain(self, value: Any, kind: type) -> Any:
        """A container's plain copy, or a value as the library's transcoding object."""
        if kind is dict:
            return self._plain_dict(value)
        if kind is list or kind is tuple:
            return self._plain_list(value)
        transcoding = self.types.get(kind)
        if transcoding is None:  # a float, a subclass, an unknown type: the library's way
            raise _Unplain
        data = transcoding.encode(value)
        if type(data) is not str:
            data = self._plain_list([data])[0]
        return {"_type_": transcoding.name, "_data_": data}

    def decode(self, data: bytes) -> Any:
        try:
            document = [orjson.loads(data)]
            self._revive_list(document)
            return document[0]
        except (orjson.JSONDecodeError, _Inexact):
            return super().decode(data)

    # The library's decoder calls ``_decode_obj`` on every JSON object, innermost first;
    # these walks do the same, calling it only on the objects it would change.
    def _revive_dict(self, d: dict[str, Any]) -> Any:
        for key, value in d.items():
            kind = type(value)
            if kind is dict:
                d[key] = self._revive_dict(value)
            elif kind is list:
                self._revive_list(value)
            elif kind is float and abs(value) >= _INT64:
                raise _Inexact
        if len(d) == 2 and "_type_" in d and "_data_" in d:
            name, data = d["_type_"], d["_data_"]
            inline = (self._decoders.get(name) if type(name) is str and type(data) is str
                      else None)
            return self._decode_obj(d) if inline is None else inline(data)
        return d

    def _revive_list(self, items: list[Any]) -> None:
        for i, value in enumerate(items):
            kind = type(value)
            if kind is dict:
                items[i] = self._revive_dict(value)
            elif kind is list:
                self._revive_list(value)
            elif kind is float and abs(value) >= _INT64:
                raise _Inexact


_INT64 = 2.0 ** 63

# Transcodings (their exact classes) whose encoding and decoding are each one call of a
# built-in, as their own ``encode`` and ``decode`` make it.
_INLINE: dict[type[Transcoding], tuple[Callable[[Any], str], Callable[[str], Any]]] = {
    UUIDAsHex: (attrgetter("hex"), UUID),
    DecimalAsStr: (str, Decimal),
    DatetimeAsISO: (datetime.isoformat, datetime.fromisoformat),
    DateAsISO: (date.isoformat, date.fromisoformat),
}


class _Inexact(Exception):
    pass


class _Unplain(Exception):
    pass


def make_mapper() -> Mapper[UUID]:
    transcoder = FastJSONTranscoder()
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO(), DateAsISO()):
        transcoder.register(transcoding)
    return Mapper(transcoder=transcoder)


SNAPSHOT_TOPIC = "eventsourcing.domain:Snapshot"


def freeze(mapper: Mapper[UUID], aggregate: Any) -> bytes:
    """The aggregate's exact state as bytes (a library snapshot body). Deterministic: the
    snapshot is stamped with the record's own last-modified time, not the wall clock, so a
    view rebuilt (or resumed after a crash) is byte-for-byte the same."""
    snapshot = dataclasses.replace(Snapshot.take(aggregate), timestamp=aggregate.modified_on)
    return mapper.to_stored_event(snapshot).state


def thaw(mapper: Mapper[UUID], record_id: UUID, version: int, state: bytes) -> Any:
    snapshot = mapper.to_domain_event(StoredEvent(record_id, version, SNAPSHOT_TOPIC, state))
    return snapshot.mutate(None)  # type: ignore[attr-defined]


def jsonable(value: Any) -> Any:
    """Decimal → string (never float), dates → ISO 8601, UUID → string, recursively."""
    kind = type(value)  # the common exact types first (a view walks every value of a record)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is dict:
        return {str(k): jsonable(v) for k, v in value.items()}
    if kind is list:
        return [jsonable(v) for v in value]
    if kind is Decimal or kind is UUID:
        return str(value)
    if kind is datetime or kind is date:
        return value.isoformat()
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, float):  # never produced by our domain; keep exactness visible
        return str(Decimal(repr(value)))
    return str(value)


def _view_fields(aggregate: Any) -> dict[str, Any]:
    """What a record's view shows, as the values it holds: its public attributes, then its
    id, version, type and times."""
    doc = {k: v for k, v in vars(aggregate).items() if not k.startswith("_")}
    doc["id"] = aggregate.id
    doc["version"] = aggregate.version
    doc["record_type"] = getattr(aggregate, "RECORD_TYPE", None)
    doc["created_on"] = aggregate.created_on
    doc["modified_on"] = aggregate.modified_on
    return doc


def record_view(aggregate: Any) -> dict[str, Any]:
    """The public state of a record: what REST, GraphQL and as-of queries all return.

    ``view_bytes`` read back by orjson: the values ``jsonable`` gives, in C (~10 × faster on a
    large record than walking it in Python, which was most of an audit history page's time:
    a view per entry). orjson writes no integer past 64 bits, so it reads each back exactly."""
    try:
        view: dict[str, Any] = orjson.loads(_orjson_view(aggregate))
    except TypeError:  # (orjson.JSONEncodeError is one)
        return walked_view(aggregate)
    return view


def walked_view(aggregate: Any) -> dict[str, Any]:
    """``record_view`` by ``jsonable``: what orjson cannot write (see ``view_bytes``)."""
    return {k: jsonable(v) for k, v in _view_fields(aggregate).items()}


def view_bytes(aggregate: Any) -> bytes:
    """``view_json(record_view(aggregate))`` as jsonb reads it, written by orjson in one pass
    over the record (the walk and the standard library's encoder were ~7 % of a rebuild's and
    of the projection worker's CPU). orjson writes UUIDs, dates, datetimes, times, enums,
    tuples and subclasses of str, int, dict and list as ``jsonable`` does; Decimals, sets and
    timedeltas become what ``jsonable`` makes of them; anything else (a dataclass, a key that
    is not a string, an integer past 64 bits, a time with a zone) is written the slow way.
    Floats (refused by the domain: money and measures are Decimals) would be JSON numbers here,
    and in ``record_view``, where ``jsonable`` makes strings."""
    try:
        return _orjson_view(aggregate)
    except TypeError:  # (orjson.JSONEncodeError is one)
        return view_json(walked_view(aggregate))


def _orjson_view(aggregate: Any) -> bytes:
    """The record's view written by orjson; TypeError for what orjson cannot write."""
    return orjson.dumps(_view_fields(aggregate), default=_view_default,
                        option=orjson.OPT_PASSTHROUGH_DATACLASS)


# Digits as zeros: 19 in a row in a JSON text may be an integer orjson reads as a float
# (past 64 bits) where the standard library reads it exactly.
_ZEROED_DIGITS = bytes.maketrans(b"123456789", b"000000000")
_NINETEEN_DIGITS = b"0" * 19


def json_loads(data: str | bytes) -> Any:
    """``json.loads``, by orjson (~3 × faster on the views GraphQL and REST read back): what
    orjson refuses, or a text with a number it may read inexactly, by the standard
    library. (psycopg hands it bytes.)"""
    if type(data) is bytes and _NINETEEN_DIGITS not in data.translate(_ZEROED_DIGITS):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)


def _view_default(value: Any) -> Any:
    if isinstance(value, Decimal | timedelta):
        return str(value)
    if isinstance(value, set | frozenset):
        return list(value)
    raise TypeError(type(value).__name__)


# A view's JSON for a jsonb column: compact, UTF-8 as is (jsonb keeps the values, not the text).
_VIEW_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"),
                                 check_circular=False)


def view_json(value: Any) -> bytes:
    """``value`` (a view: JSON types only) as JSON text."""
    return _VIEW_ENCODER.encode(value).encode()


def _as_is(data: Any) -> Any:
    return data


def encoded_jsonb(data: bytes) -> Jsonb:
    """A jsonb parameter whose JSON text is ready (encoded once, by ``view_bytes``)."""
    return Jsonb(data, dumps=_as_is)


class StateDoc(Jsonb):
    """A record's view (encoded) that the transaction has written to ``record_state.doc``
    already: a typed table's row takes it from there (``projections.bulk.insert_rows``)
    instead of PostgreSQL parsing the same JSON a second time (parsing the views was a
    quarter of PostgreSQL's CPU in a rebuild)."""

    def __init__(self, data: bytes):
        super().__init__(data, dumps=_as_is)


# A record's view as the typed tables get it: a dict (as-of queries) or encoded already.
Doc = dict[str, Any] | Jsonb


def doc_jsonb(doc: Doc) -> Jsonb:
    """A record's view as a jsonb parameter: the records projection passes them encoded."""
    return doc if isinstance(doc, Jsonb) else Jsonb(doc)
