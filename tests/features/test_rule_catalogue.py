"""The rule catalogue (规则目录) against the specs: every rule of domain.rulebook has a tagged scenario."""

from __future__ import annotations

import re

from domain.rulebook import RULES
from tests.features.feature_files import all_tags

RULE_TAG = re.compile(r"^R\d+$")


def test_catalogue_lists_r1_to_r20() -> None:
    assert list(RULES) == [f"R{n}" for n in range(1, 21)]
    for rule_id, rule in RULES.items():
        assert rule.id == rule_id
        assert rule.title.strip() and rule.summary.strip()


def test_every_rule_has_a_scenario() -> None:
    missing = sorted(set(RULES) - all_tags(), key=lambda r: int(r[1:]))
    assert not missing, f"rules with no scenario tagged in features/: {', '.join(missing)}"


def test_every_rule_tag_names_a_catalogued_rule() -> None:
    unknown = sorted(t for t in all_tags() if RULE_TAG.match(t) and t not in RULES)
    assert not unknown, f"feature files tag rules the rulebook does not know: {', '.join(unknown)}"
