"""Reading the feature files (特性文件) without running them: where they are and which tags they carry."""

from __future__ import annotations

import re
from pathlib import Path

FEATURES_DIR = Path(__file__).resolve().parents[2] / "features"
_TAG = re.compile(r"(?<!\S)@([^\s@]+)")


def feature_files() -> list[Path]:
    """Every ``.feature`` file under features/, in a stable order."""
    return sorted(FEATURES_DIR.rglob("*.feature"))


def tags_in(path: Path) -> set[str]:
    """The tags (without ``@``) on the tag lines of a feature file; comments and step text are ignored."""
    found: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith("@"):
            found.update(_TAG.findall(stripped.split("#", 1)[0]))
    return found


def all_tags() -> set[str]:
    return set().union(*(tags_in(p) for p in feature_files()))
