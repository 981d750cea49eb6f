"""The API's link to the projections (读模型): imported lazily, so the write side runs without them.

Every query answer says how far the projections had read the log (``position``) and how far they
were behind its head (``lag``); a client that just wrote sends its last ``position`` in
``X-Ledger-Position`` and the answer waits (at most ``READ_YOUR_WRITES_TIMEOUT``) for it.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from api.problems import ProblemError

READ_YOUR_WRITES_TIMEOUT = 2.0


def _module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ProblemError(503, f"the projections are not available ({exc})") from None


_ready: set[str] = set()
_ready_lock = threading.Lock()


def _ensure_tables(url: str) -> None:
    """Create the projection tables once per process, so a query before the first run answers empty."""
    if url in _ready:
        return
    with _ready_lock:
        if url not in _ready:
            db = _module("projections.db").Db(url)
            try:
                _module("projections.engine").ensure_schema(db)
            finally:
                db.close()
            _ready.add(url)


def reads(url: str) -> Any:
    """The connections an API server's queries borrow (``projections.db.Pool``), or ``None`` without the
    projections."""
    try:
        return _module("projections.db").Pool(url)
    except ProblemError:
        return None


@contextmanager
def queries(state: Any) -> Iterator[Any]:
    """A ``projections.queries.Queries`` on the app's query store, on a connection borrowed from its pool (``state``
    is the app's ``state``: ``query_url``, and ``reads`` once the app has started) or opened for it alone."""
    url: str = state.query_url
    _ensure_tables(url)
    pool = getattr(state, "reads", None)
    if pool is not None:
        with pool.borrow() as db:
            yield _module("projections.queries").Queries(db)
        return
    reader = _module("projections.queries").Queries(url)
    try:
        yield reader
    finally:
        reader.close()


def wait_for(url: str, position: int | None) -> None:
    """Read your writes: wait, bounded, until the projections have processed ``position``."""
    if position:
        _module("projections.engine").wait_for(url, position, READ_YOUR_WRITES_TIMEOUT)


def progress(store: Any) -> tuple[int, int]:
    """(position, lag) of the slowest projection, on a store's URL or a connection (a reader's ``db``)."""
    rows: list[dict[str, Any]] = _module("projections.engine").status(store)
    if not rows:
        return 0, 0
    return min(int(r["position"]) for r in rows), max(int(r["lag"]) for r in rows)


def status(url: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = _module("projections.engine").status(url)
    return rows
