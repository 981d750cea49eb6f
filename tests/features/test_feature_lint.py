"""Lint of the feature files (特性文件检查): characters pytest-bdd 9 silently misreads are refused.

Only ASCII ``:`` and ``"`` work as Gherkin punctuation and step-argument quotes, only half-width
digits match ``{n:d}``, and a full-width ``|``, ``<>`` or ideographic space breaks tables and
outline parameters without an error — so a step would just "not be found" or match wrongly.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.features.feature_files import FEATURES_DIR, feature_files

#: Each refused character and the ASCII one to use instead.
FORBIDDEN: dict[str, str] = {
    "：": ":",
    "﹕": ":",
    "︰": ":",
    "“": '"',
    "”": '"',
    "＂": '"',
    "‘": "'",
    "’": "'",
    "＇": "'",
    "「": '"',
    "」": '"',
    "『": '"',
    "』": '"',
    "｜": "|",
    "＜": "<",
    "＞": ">",
    "＠": "@",
    "＃": "#",
    "\u3000": "a space",
    **{chr(0xFF10 + d): str(d) for d in range(10)},  # full-width digits ０-９
}


def problems(path: Path) -> list[str]:
    """One message per offending character: ``file:line:column: '：' — use ':'``."""
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        for column, char in enumerate(line, start=1):
            if char in FORBIDDEN:
                where = path.relative_to(FEATURES_DIR.parent)
                found.append(f"{where}:{number}:{column}: {char!r} — use {FORBIDDEN[char]!r}")
    return found


def test_there_are_feature_files() -> None:
    assert feature_files(), f"no .feature files under {FEATURES_DIR}"


@pytest.mark.parametrize("path", feature_files(), ids=lambda p: str(p.relative_to(FEATURES_DIR)))
def test_feature_file_uses_ascii_punctuation(path: Path) -> None:
    found = problems(path)
    assert not found, "full-width characters in a feature file:\n" + "\n".join(found)


@pytest.mark.parametrize("path", feature_files(), ids=lambda p: str(p.relative_to(FEATURES_DIR)))
def test_feature_file_declares_chinese(path: Path) -> None:
    first = path.read_text(encoding="utf-8").lstrip("\ufeff").splitlines()[0].strip()
    assert first == "# language: zh-CN", f"{path.name}: the first line must be '# language: zh-CN', not {first!r}"


def test_lint_names_file_line_and_character(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "features" / "x.feature"
    bad.parent.mkdir()
    bad.write_text("# language: zh-CN\n功能：试验\n  场景: 第１个 “引号”\n", encoding="utf-8")
    monkeypatch.setattr("tests.features.test_feature_lint.FEATURES_DIR", bad.parent)
    assert problems(bad) == [
        "features/x.feature:2:3: '：' — use ':'",
        "features/x.feature:3:8: '１' — use '1'",
        "features/x.feature:3:11: '“' — use '\"'",
        "features/x.feature:3:14: '”' — use '\"'",
    ]
