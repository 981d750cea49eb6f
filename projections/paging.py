"""Pages of the long lists (分页): the city's triggers, petition board, officer registry and scores.

A list is answered in one order whatever the moment asked about, so a page is a window on it: at most ``limit``
rows after the row a cursor names. The per-district and per-unit lists (quota, deductions, scores) are ordered by
unit id, and their cursor is the last unit id. The others are ordered by something a row carries but a client
should not have to rebuild (a trigger by the time it opened and its id; a petition or an officer by the log
position of its registration), so their cursor is that key, written as an opaque token (:func:`token`): the next
page is asked for with ``after`` set to the last page's ``next_after``.

A page ends the list when it holds fewer than ``limit`` rows, unless it is a :class:`Cut`: a scores page stops
early once its rows carry enough deductions (a city's row carries its territory's year of them), and names its
successor as a full page does.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any, NamedTuple

import orjson

NOT_A_CURSOR = "after is not a cursor a page of this list gave (its next_after)"
#: A list's sort key, as a token carries it: JSON scalars only.
Key = tuple[Any, ...]


class Page(NamedTuple):
    """Which window of a list to answer: at most ``limit`` rows (all without one) after the row keyed ``after``."""

    limit: int | None = None
    after: Key | None = None


class Cut(list[dict[str, Any]]):
    """A page cut short of its ``limit`` by what its rows carry, with rows after it: its ``next_after`` is named
    as a full page's is."""


#: The fewest rows a page reads from a list at first: the lists filter what they read (a status, a territory), so a
#: page reads twice its size and then, short of it, twice as many again.
MIN_BATCH = 64


def batch(page: Page, filtered: bool = True) -> int | None:
    """How many rows a page reads at first (``None``: the whole list); as many as it shows when nothing it reads is
    ``filtered`` away."""
    if page.limit is None:
        return None
    return max(page.limit * (2 if filtered else 1), MIN_BATCH)


def token(key: Key) -> str:
    """The cursor of a row keyed ``key``: base64url of its JSON, unpadded."""
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).rstrip(b"=").decode()


def key_of(cursor: str, shape: tuple[type, ...]) -> Key:
    """The key a :func:`token` carries, checked against the list's key ``shape``; ``ValueError`` (the client's
    error) for anything no page of that list gave."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = orjson.loads(raw)
    except (binascii.Error, ValueError):
        raise ValueError(NOT_A_CURSOR) from None
    if not isinstance(key, list) or len(key) != len(shape):
        raise ValueError(NOT_A_CURSOR)
    if not all(_is(value, kind) for value, kind in zip(key, shape, strict=True)):
        raise ValueError(NOT_A_CURSOR)
    return tuple(key)


def _is(value: Any, kind: type) -> bool:
    """Whether a cursor's value is of its key's kind: an int within the stores' 64 bits (SQLite overflows past it)."""
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63
    return isinstance(value, kind)


def window(rows: Iterable[dict[str, Any]], key: Callable[[dict[str, Any]], Key], page: Page) -> list[dict[str, Any]]:
    """The page of ``rows`` (in key order, filtered already): those keyed after ``page.after``, at most
    ``page.limit`` of them. Rows are consumed lazily, so a generator that reads in batches reads no further."""
    kept: Iterator[dict[str, Any]] = iter(rows)
    if page.after is not None:
        after = page.after
        kept = (row for row in kept if key(row) > after)
    return list(kept if page.limit is None else islice(kept, page.limit))
