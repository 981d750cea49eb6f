"""Turn pytest-bdd's cucumber JSON into a readable Markdown page of the specs (验收规格报告).

Usage: python features/report.py reports/cucumber.json > reports/specs.md
Standard library only; rule titles come from domain/rulebook.py (pure data) beside this folder.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from domain.rulebook import RULES

MARK = {"passed": "✅", "failed": "❌", "skipped": "⏭️"}
RULE_TAG = re.compile(r"^R\d+$")


def status_of(scenario: dict[str, Any]) -> str:
    """A scenario failed if a step failed, was skipped if a step was skipped, else passed."""
    statuses = {step["result"]["status"] for step in scenario.get("steps", [])}
    for status in ("failed", "skipped"):
        if status in statuses:
            return status
    return "passed"


def store_of(scenario: dict[str, Any]) -> str:
    """The store a run used, from the test id (``test_x[sqlite-…]``)."""
    match = re.search(r"\[(sqlite|postgres|server)", scenario.get("id", ""))
    return match.group(1) if match else ""


def tags_of(item: dict[str, Any]) -> list[str]:
    return [tag["name"] for tag in item.get("tags", [])]


def first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("E ")]
    return (lines[0][2:] if lines else text.strip().splitlines()[-1] if text.strip() else "").strip()[:300]


def render(features: list[dict[str, Any]]) -> str:
    runs = [(f, s) for f in features for s in f.get("elements", [])]
    totals = Counter(status_of(s) for _, s in runs)
    by_rule: dict[str, Counter[str]] = defaultdict(Counter)
    for feature, scenario in runs:
        for tag in set(tags_of(feature) + tags_of(scenario)):
            if RULE_TAG.match(tag):
                by_rule[tag][status_of(scenario)] += 1

    out = ["# 验收规格报告 (acceptance specs)", ""]
    out.append(
        f"{len(runs)} runs: {totals['passed']} passed, {totals['failed']} failed, {totals['skipped']} skipped "
        "(a scenario outline counts once per example and per store)."
    )
    out += ["", "## 规则覆盖 (rules)", "", "| 规则 | 标题 | 通过 | 失败 | 跳过 |", "|---|---|---|---|---|"]
    for rule_id in sorted(set(RULES) | set(by_rule), key=lambda r: int(r[1:])):
        counts = by_rule.get(rule_id, Counter())
        title = RULES[rule_id].title if rule_id in RULES else "(not in the rulebook)"
        missing = " ⚠️ no scenario" if not counts else ""
        out.append(f"| {rule_id} | {title}{missing} | {counts['passed']} | {counts['failed']} | {counts['skipped']} |")

    for feature in sorted(features, key=lambda f: f.get("uri", "")):
        out += ["", f"## {feature['keyword']}: {feature['name']}", "", f"`features/{feature['uri']}`", ""]
        for scenario in feature.get("elements", []):
            status = status_of(scenario)
            rules = " ".join(f"`@{t}`" for t in tags_of(scenario))
            store = store_of(scenario)
            out.append(f"- {MARK[status]} **{scenario['keyword']}: {scenario['name']}** {rules} {store}".rstrip())
            # Passing runs show what an outline's example did (its 当 steps); the rest show every step run.
            shown = [s for s in scenario.get("steps", []) if status != "passed" or s["keyword"] == "当"]
            if status != "passed" or scenario["keyword"] != "场景":
                for step in shown:
                    out.append(f"  - {MARK[step['result']['status']]} {step['keyword']} {step['name']}")
            if status == "failed":
                failed = next(s for s in scenario["steps"] if s["result"]["status"] == "failed")
                out.append(f"  - 失败原因: `{first_line(failed['result'].get('error_message', ''))}`")
            if status == "skipped":
                out.append(f"  - 跳过原因: {scenario.get('description') or 'skipped'}")
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python features/report.py reports/cucumber.json > reports/specs.md", file=sys.stderr)
        return 2
    try:
        features = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"cannot read {argv[1]}: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(render(features))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
