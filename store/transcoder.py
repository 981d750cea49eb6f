"""orjson-backed transcoder whose bytes equal the library's JSONTranscoder."""

from __future__ import annotations

import math
from typing import Any

import orjson
from eventsourcing.persistence import JSONTranscoder, Transcoding

_JSON_NATIVE = (str, int, float, list, tuple, dict)
# orjson.loads turns integers beyond 64 bits into floats; json keeps them ints.
# json never writes a float without "." or "e", so any parsed float this large
# may have been such an integer: let json decode those (rare) documents.
_BIG = float(2**63)


class _NotFastPath(Exception):
    """Raised by the encode walk for inputs only the json module renders exactly."""


def _float_token(value: float) -> orjson.Fragment:
    # orjson writes e.g. 1e-05 as 0.00001 and NaN as null; json uses float.__repr__
    # and the NaN/Infinity tokens, so emit json's text verbatim.
    if math.isfinite(value):
        return orjson.Fragment(float.__repr__(value))
    if math.isnan(value):
        return orjson.Fragment(b"NaN")
    return orjson.Fragment(b"Infinity" if value > 0 else b"-Infinity")


class OrjsonTranscoder(JSONTranscoder):
    """Drop-in replacement for JSONTranscoder using orjson.

    It subclasses JSONTranscoder because Application.construct_transcoder()
    registers transcodings (register_transcodings()) only on JSONTranscoders.
    Encoding first rewrites the object into plain JSON types in the json module's
    order of precedence (str, None, bool, int, float, list/tuple, dict, then the
    registered transcodings by exact type), because orjson natively serialises
    UUIDs, enums and dataclasses differently. Inputs orjson cannot render
    byte-identically (non-str keys, integers beyond 64 bits, deep nesting,
    invalid strings) fall back to the inherited json implementation.
    """

    def __init__(self) -> None:
        super().__init__()
        # Registered types json could never hand to `default` (subclasses of
        # str, int, float, list, tuple, dict) are left out, so a lookup here may
        # come before the isinstance() checks without changing precedence.
        self._direct: dict[type, Transcoding] = {}

    def register(self, transcoding: Transcoding) -> None:
        """Registers given transcoding with the transcoder."""
        super().register(transcoding)
        if not issubclass(transcoding.type, _JSON_NATIVE):
            self._direct[transcoding.type] = transcoding

    def encode(self, obj: Any) -> bytes:
        """Encodes obj as JSON bytes, identical to JSONTranscoder.encode()."""
        try:
            return orjson.dumps(self._to_plain(obj))
        except (_NotFastPath, orjson.JSONEncodeError, RecursionError):
            return super().encode(obj)

    def decode(self, data: bytes) -> Any:
        """Decodes JSON bytes, equal to JSONTranscoder.decode()."""
        try:
            return self._revive(orjson.loads(data))
        except (orjson.JSONDecodeError, _NotFastPath):
            # NaN/Infinity tokens, bad UTF-8, maybe-big integers: json decides.
            return super().decode(data)

    def _to_plain(self, obj: Any) -> Any:
        # Hot path: exact-type checks inline, so common leaves cost no call.
        t = type(obj)
        if t is dict:
            return self._plain_dict(obj)
        if t is list or t is tuple:
            return self._plain_list(obj)
        if t is str or t is int or t is bool or obj is None:
            return obj
        if t is float:
            return obj if 1e-4 <= abs(obj) < 1e16 or obj == 0 else _float_token(obj)
        transcoding = self._direct.get(t)
        if transcoding is not None:
            data = transcoding.encode(obj)
            if type(data) is not str:
                data = self._to_plain(data)
            return {"_type_": transcoding.name, "_data_": data}
        # Subclasses, in the json module's order of precedence.
        if isinstance(obj, str):
            return str.__str__(obj)
        if isinstance(obj, int):
            return int.__int__(obj)  # IntEnum etc.: json writes int.__repr__.
        if isinstance(obj, float):
            return _float_token(obj)
        if isinstance(obj, (list, tuple)):
            return self._plain_list(obj)
        if isinstance(obj, dict):
            return self._plain_dict(obj)
        encoded = self._encode_obj(obj)
        encoded["_data_"] = self._to_plain(encoded["_data_"])
        return encoded

    def _plain_dict(self, obj: dict[Any, Any]) -> dict[str, Any]:
        plain: dict[str, Any] = {}
        for key, value in obj.items():
            if type(key) is not str:
                # json coerces int/float/bool/None keys (and may emit duplicate
                # keys doing so); leave that to json.
                raise _NotFastPath
            t = type(value)
            if t is str or t is int or t is bool or value is None:
                plain[key] = value
            else:
                plain[key] = self._to_plain(value)
        return plain

    def _plain_list(self, obj: list[Any] | tuple[Any, ...]) -> list[Any]:
        plain: list[Any] = []
        append = plain.append
        for value in obj:
            t = type(value)
            if t is str or t is int or t is bool or value is None:
                append(value)
            else:
                append(self._to_plain(value))
        return plain

    def _revive(self, obj: Any) -> Any:
        t = type(obj)
        if t is dict:
            return self._revive_dict(obj)
        if t is list:
            self._revive_list(obj)
        elif t is float and not -_BIG < obj < _BIG:
            raise _NotFastPath
        return obj

    def _revive_dict(self, obj: dict[str, Any]) -> Any:
        # Post-order, like json's object_hook: inner objects are revived first.
        # Values are replaced in place; the parsed tree is ours alone.
        for key, value in obj.items():
            t = type(value)
            if t is dict:
                obj[key] = self._revive_dict(value)
            elif t is list:
                self._revive_list(value)
            elif t is float and not -_BIG < value < _BIG:
                raise _NotFastPath
        if len(obj) == 2 and "_type_" in obj and "_data_" in obj:
            return self._decode_obj(obj)
        return obj

    def _revive_list(self, obj: list[Any]) -> None:
        for i, value in enumerate(obj):
            t = type(value)
            if t is dict:
                obj[i] = self._revive_dict(value)
            elif t is list:
                self._revive_list(value)
            elif t is float and not -_BIG < value < _BIG:
                raise _NotFastPath
