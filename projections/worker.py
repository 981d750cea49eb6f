"""A projection worker process (投影进程): ``python -m projections.worker [--batch-size=N] [NAME...]``.

Follows the log of ``LEDGER_DATABASE_URL`` until SIGTERM/SIGINT; run one per projection, on any host.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

from projections.engine import DEFAULT_BATCH, run
from store.config import database_url


def main(argv: list[str]) -> int:
    stop = threading.Event()

    def halt(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, halt)
    signal.signal(signal.SIGINT, halt)
    sizes = [int(a.split("=", 1)[1]) for a in argv if a.startswith("--batch-size=")]
    names = [a for a in argv if not a.startswith("--")]
    run(database_url(), names or None, stop=stop, poll_interval=0.05, batch_size=sizes[-1] if sizes else DEFAULT_BATCH)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
