"""A projection worker process (投影进程): ``python -m projections.worker [--batch-size=N] [NAME...]``.

Follows the log of ``LEDGER_DATABASE_URL`` until SIGTERM/SIGINT; run one per projection, on any host. The one
that keeps the current view also issues each report as its period ends (``reports.Bulletins``).
"""

from __future__ import annotations

import signal
import sys
import time
from types import FrameType

from projections.catalog import select
from projections.engine import DEFAULT_BATCH, run
from projections.reports import issuer
from store.config import database_url
from store.db import require_store, unavailable


class Stopping:
    """The worker's stop, set by SIGTERM or SIGINT. Not a ``threading.Event``: its ``set()`` takes the lock that its
    ``wait()`` holds for a moment, and a signal handled in that moment (the handler runs in the waiting main thread)
    waited on itself for good: a worker stopped by a test was found alive an hour later, its main thread in
    ``Event.set`` inside ``Event.wait``. A flag and a sleep take no lock."""

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float) -> bool:
        """Sleep ``timeout`` unless set (a signal cuts no sleep short, but the loop's polls are 50 ms)."""
        if not self._set:
            time.sleep(timeout)
        return self._set


def main(argv: list[str]) -> int:
    stop = Stopping()

    def halt(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, halt)
    signal.signal(signal.SIGINT, halt)
    names = [a for a in argv if not a.startswith("--")]
    try:
        # As `ledger projections run`: a missing, uninitialised or unreachable store, a bad option or an unknown
        # projection is one line and exit 2, with nothing created (connecting would make an empty SQLite file).
        sizes = [int(a.split("=", 1)[1]) for a in argv if a.startswith("--batch-size=")]
        url = require_store(database_url())
        select(names or None)
    except Exception as error:
        what = "the store is unreachable: " if unavailable(error) else ""
        print(f"ledger: {what}{' '.join(str(error).split())}", file=sys.stderr)
        return 2
    batch_size = sizes[-1] if sizes else DEFAULT_BATCH
    bulletins = issuer(url, names or None)
    run(url, names or None, stop=stop, poll_interval=0.05, batch_size=batch_size, idle=bulletins)
    if bulletins is not None:
        bulletins.close()  # a report being folded is kept, not cut off
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
