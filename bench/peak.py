"""Peak memory (内存峰值) of one operation, measured in a child process.

``python -m bench.peak OP URL`` runs OP (rebuild, verify or export) on the store at URL in a child
process and prints the child's peak resident set in KiB (``getrusage(RUSAGE_CHILDREN).ru_maxrss``).
This process is fresh, so the child is the only one it has waited for: the figure is the child's.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
from pathlib import Path

OPS = {
    "rebuild": "from projections.engine import rebuild; rebuild({url!r})",
    "verify": "from audit.verify import verify; r = verify({url!r}); assert r.ok, r",
    "export": "from audit.bundle import export; export({url!r}, {out!r})",
}


class PeakFailed(Exception):
    """The measured operation failed; the message is the end of its stderr."""


def measure(op: str, url: str) -> int:
    """Run ``op`` in a child process; its peak RSS in KiB."""
    with tempfile.TemporaryDirectory(prefix="peak-") as tmp:
        code = OPS[op].format(url=url, out=str(Path(tmp) / "bundle.jsonl"))
        subprocess.run([sys.executable, "-c", code], check=True)
    return int(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)


def peak_kib(op: str, url: str) -> int:
    """Run ``measure`` in a fresh interpreter, so earlier children of the caller do not count."""
    done = subprocess.run([sys.executable, "-m", "bench.peak", op, url], capture_output=True, text=True)
    if done.returncode:
        raise PeakFailed(f"{op}: " + " | ".join(done.stderr.strip().splitlines()[-3:]))
    return int(done.stdout.split()[-1])


if __name__ == "__main__":
    print(measure(sys.argv[1], sys.argv[2]))
