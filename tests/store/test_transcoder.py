"""OrjsonTranscoder must write the same bytes as the library's JSONTranscoder."""

from __future__ import annotations

import enum
import unittest
from collections import namedtuple
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

import pytest
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Transcoder,
    Transcoding,
    TranscodingNotRegisteredError,
    UUIDAsHex,
)
from eventsourcing.tests import persistence
from hypothesis import given, settings
from hypothesis import strategies as st

from store.transcoder import OrjsonTranscoder

_T = TypeVar("_T", JSONTranscoder, OrjsonTranscoder)


def _registered(transcoder: _T) -> _T:
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
        transcoder.register(transcoding)
    return transcoder


OURS = _registered(OrjsonTranscoder())
REFERENCE = _registered(JSONTranscoder())

_offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # includes integers beyond orjson's 64-bit range
    st.floats(),  # includes NaN, infinities, -0.0 and tiny/huge exponents
    st.text(st.characters(exclude_categories=["Cs"])),  # not lone surrogates
    st.sampled_from(["莱城区", "信访", '\x00\x1f\x7f\u2028"\\', "1" * 25]),
    st.uuids(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.datetimes(timezones=st.none() | _offsets | st.just(UTC)),
)
_keys = st.text(max_size=8) | st.sampled_from(["_type_", "_data_"])
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.lists(inner, max_size=5).map(tuple),
        st.dictionaries(_keys, inner, max_size=5),
    ),
    max_leaves=30,
)


def _outcome(decode: Callable[[bytes], Any], data: bytes) -> str:
    # repr() compares NaN and keeps types (int vs float, Decimal, tz) visible;
    # a user dict shaped like {"_type_": ..., "_data_": ...} fails in both.
    try:
        return repr(decode(data))
    except TypeError as e:  # includes TranscodingNotRegisteredError
        return f"raised {type(e).__name__}: {e}"


@settings(max_examples=1500, deadline=None)
@given(_values)
def test_bytes_equal_and_decoding_agrees(value: Any) -> None:
    expected = REFERENCE.encode(value)
    assert OURS.encode(value) == expected
    assert _outcome(OURS.decode, expected) == _outcome(REFERENCE.decode, expected)


@settings(max_examples=500, deadline=None)
@given(_values.filter(lambda v: "_type_" not in repr(v)))
def test_round_trip_matches_json_transcoder(value: Any) -> None:
    # Not always the identity: tuples come back as lists, DatetimeAsISO drops fold.
    ours = OURS.decode(OURS.encode(value))
    assert repr(ours) == repr(REFERENCE.decode(REFERENCE.encode(value)))


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class ColourAsName(Transcoding):
    type = Colour
    name = "colour"

    def encode(self, obj: Colour) -> str:
        return obj.name

    def decode(self, data: str) -> Colour:
        return Colour[data]


Point = namedtuple("Point", "x y")  # json writes named tuples as arrays


@pytest.mark.parametrize(
    "value",
    [
        {"colour": Colour.RED, "level": Level.HIGH},  # orjson writes enums natively
        {2: "int key", None: "null key", False: "bool key", 1.5: "float key"},
        {1: "a", "1": "b"},  # json writes the duplicate key twice
        Point(1.0, 1e-05),
        [float("nan"), float("inf"), -float("inf"), 1e-7, 1e16, 123.0],
        {"n": 2**64, "m": -(2**63) - 1},
    ],
)
def test_cases_orjson_would_render_differently(value: Any) -> None:
    ours, reference = OrjsonTranscoder(), JSONTranscoder()
    ours.register(ColourAsName())
    reference.register(ColourAsName())
    data = reference.encode(value)
    assert ours.encode(value) == data
    assert repr(ours.decode(data)) == repr(reference.decode(data))


def test_unregistered_type_raises_like_json_transcoder() -> None:
    with pytest.raises(TranscodingNotRegisteredError, match="not serializable"):
        OrjsonTranscoder().encode({"id": UUID(int=1)})
    data = REFERENCE.encode({"id": UUID(int=1)})
    with pytest.raises(TranscodingNotRegisteredError, match="uuid_hex"):
        OrjsonTranscoder().decode(data)


def test_typical_event_state() -> None:
    state = {
        "timestamp": datetime(2025, 3, 1, 8, 30, tzinfo=timezone(timedelta(hours=8))),
        "unit_id": UUID("9f1c2a4e-0000-4000-8000-000000000001"),
        "name": "莱城区自然资源局",
        "area_mu": Decimal("12.50"),
        "tags": ("土地", "违法占地"),
    }
    assert OURS.encode(state) == REFERENCE.encode(state)
    assert OURS.decode(OURS.encode(state))["tags"] == ["土地", "违法占地"]


_SAME_AS_JSON = "JSONTranscoder, which we match, returns tuples and subclasses as base types"


class TestLibraryTranscoderSuite(persistence.TranscoderTestCase):
    """The library's transcoder tests, skipping those JSONTranscoder skips too."""

    test_tuple = unittest.skip(_SAME_AS_JSON)(persistence.TranscoderTestCase.test_tuple)
    test_mixed = unittest.skip(_SAME_AS_JSON)(persistence.TranscoderTestCase.test_mixed)
    test_dict_subclass = unittest.skip(_SAME_AS_JSON)(persistence.TranscoderTestCase.test_dict_subclass)
    test_list_subclass = unittest.skip(_SAME_AS_JSON)(persistence.TranscoderTestCase.test_list_subclass)
    test_str_subclass = unittest.skip(_SAME_AS_JSON)(persistence.TranscoderTestCase.test_str_subclass)
    test_int_subclass = unittest.skip(_SAME_AS_JSON)(persistence.TranscoderTestCase.test_int_subclass)

    def construct_transcoder(self) -> Transcoder:
        transcoder = _registered(OrjsonTranscoder())
        transcoder.register(persistence.CustomType1AsDict())
        transcoder.register(persistence.CustomType2AsDict())
        return transcoder
