"""The rulebook (规则目录): every rule of DOMAIN.md, with its Chinese title and an English summary.

Pure data. The acceptance specs in ``features/`` tag each scenario with the rule it checks
(``@R12``); ``tests/features/test_rule_catalogue.py`` fails when a rule here has no scenario.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Rule:
    """One rule (规则): its R-number, its Chinese title (标题) and what it requires, in English."""

    id: str
    title: str
    summary: str


_RULES: Final[tuple[Rule, ...]] = (
    Rule(
        "R1",
        "六种违法类型分别登记",
        "The six violation kinds are recorded and counted separately for land and minerals.",
    ),
    Rule(
        "R2",
        "移送、报告、备案、会审、督办、错案追究制度",
        "Transfer, reporting, filing, joint review, supervision and wrong-case accountability are events on the case.",
    ),
    Rule("R3", "与监察、公安联合办案", "A case records which agencies (discipline, police) handled it jointly."),
    Rule(
        "R4",
        "重大案件追究政府主要负责人责任并扣减指标",
        "A major case triggers accountability of the government's principal leader and deducts the district's "
        "land-use quota, consolidation funds and model-district points.",
    ),
    Rule(
        "R5",
        "耕地和矿产资源保护纳入目标考核",
        "Farmland and mineral protection is part of cadres' target assessment; governments sign agreements.",
    ),
    Rule(
        "R6",
        "目标考核责任书, 完成表彰、未完成通报批评",
        "Bureau levels sign target agreements; targets met are commended, targets missed are criticised.",
    ),
    Rule(
        "R7",
        "调查属实, 立即调离执法工作岗位",
        "A substantiated 有案不查, 执纪不严 or 吃拿卡要报 finding makes removal from the enforcement post due at once; "
        "the trigger stays open until the removal is recorded; crimes are referred to the judiciary.",
    ),
    Rule(
        "R8",
        "执法业务标兵、国土资源卫士优先评先",
        "Outstanding officers are commended; dereliction and abuse of power are handled severely.",
    ),
    Rule(
        "R9",
        "重点信访件反复排查、逐一登记、领导包案",
        "Skip-level, repeat, collective and province-assigned petitions are registered one by one "
        "and owned by a leader.",
    ),
    Rule(
        "R10",
        "核查处结案件, 做好息诉罢访",
        "Closed petitions are verified and the petitioner's ceasing is recorded.",
    ),
    Rule("R11", "新交办案件解决在初信初访阶段", "Newly assigned petitions are resolved at the initial stage."),
    Rule(
        "R12",
        "钉子案四个不放过",
        "A nail case has a named resolver and closes only when cause found, error corrected, petitioning stopped "
        "and petitioner satisfied are all recorded.",
    ),
    Rule(
        "R13",
        "日调度、周汇报、月通报",
        "Daily, weekly and monthly reports are built from the projections "
        "and reproducible as known at their issue date.",
    ),
    Rule(
        "R14",
        "再出现赴京、进省、来市和集体上访的严肃追究",
        "An escalation of an owned petition triggers accountability of the owning leader and the handling unit.",
    ),
    Rule(
        "R15",
        "逐级上访、依法分流、属地管理",
        "Every petition and case has one responsible unit; diversion moves it; tokens act only within their territory.",
    ),
    Rule(
        "R16",
        "初信初访三见面和案件回访",
        "Initial petitions get the three meetings and a return visit before closing.",
    ),
    Rule(
        "R17",
        "蹲点包案和领导每月公开接访",
        "On-site case ownership with a deadline; leaders receive petitioners publicly at least once a month.",
    ),
    Rule(
        "R18",
        "信访条例 - 办理期限、延期和责任",
        "Petitions are handled within the statutory deadline, extendable once; overdue ones trigger accountability.",
    ),
    Rule(
        "R19",
        "用地指标台账",
        "The quota ledger shows each district's allocated, used, deducted and remaining mu; a deficit is flagged.",
    ),
    Rule(
        "R20",
        "每个数字都注明依据的事件和政策版本",
        "Every score, trigger and deduction names the events and the policy version that produced it.",
    ),
)

#: The rules by id, in order R1…R20.
RULES: Final[dict[str, Rule]] = {rule.id: rule for rule in _RULES}
