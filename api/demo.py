"""The Laiwu demo year (莱芜演示数据): a deterministic, realistic 2025 for the bureau.

The year is first written as a plan — a list of application calls, each with its business and
recording time — then checked in full against a throw-away in-memory ledger, and only then
recorded in the store. A plan with bad rows is refused before anything is recorded.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from rich.progress import Progress

from domain.application import Ledger
from domain.base import BUREAU_TZ
from domain.errors import DomainError
from domain.personal import DryRunVault
from domain.vocabulary import (
    Agency,
    AssignedFrom,
    Channel,
    ClueSource,
    Commendation,
    EscalationLevel,
    Meeting,
    MisconductKind,
    NailCheck,
    PetitionCategory,
    Post,
    UnitKind,
    Violation,
)
from store.ledger import open_ledger

YEAR = 2025
ADMIN = "demo-admin"
DISTRICTS = {
    "laicheng": (
        "莱城区",
        [
            ("fengcheng", "凤城街道"),
            ("zhangjiawa", "张家洼街道"),
            ("gaozhuang", "高庄街道"),
            ("pengquan", "鹏泉街道"),
            ("kouzhen", "口镇"),
            ("yangli", "羊里镇"),
            ("fangxia", "方下镇"),
            ("niuquan", "牛泉镇"),
            ("miaoshan", "苗山镇"),
            ("xueye", "雪野镇"),
            ("dawangzhuang", "大王庄镇"),
            ("zhaili", "寨里镇"),
            ("yangzhuang", "杨庄镇"),
            ("chayekou", "茶业口镇"),
            ("hezhuang", "和庄镇"),
        ],
    ),
    "gangcheng": (
        "钢城区",
        [
            ("aishan", "艾山街道"),
            ("lixin", "里辛街道"),
            ("wenyuan", "汶源街道"),
            ("yanzhuang", "颜庄镇"),
            ("xinzhuang", "辛庄镇"),
        ],
    ),
}
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建国志红文斌宁海波峰"
SUBJECTS = {
    PetitionCategory.LAND_EXPROPRIATION: ["征地程序不公开", "征地范围有异议", "集体土地被征收未告知"],
    PetitionCategory.ILLEGAL_LAND_USE: ["村外耕地上建厂房", "未批先建养殖场", "占用基本农田建房"],
    PetitionCategory.MINING: ["夜间非法采砂", "无证开采石料", "采矿导致房屋裂缝"],
    PetitionCategory.COMPENSATION: ["征地补偿款未足额发放", "青苗补偿标准偏低", "安置补助费被截留"],
    PetitionCategory.OTHER: ["宅基地确权纠纷", "土地承包经营权争议"],
}


@dataclass(frozen=True)
class Step:
    """One application call of the plan, with its business time and its (simulated) recording time."""

    method: str
    kwargs: dict[str, Any]
    occurred_at: datetime
    recorded_at: datetime


@dataclass
class Summary:
    """What the demo recorded."""

    counts: dict[str, int] = field(default_factory=dict)
    events: int = 0
    last_position: int = 0

    def lines(self) -> list[str]:
        rows = [f"  {name:<22}{count:>6}" for name, count in sorted(self.counts.items())]
        return ["Laiwu demo year 2025 loaded (莱芜市 2025 年演示数据):", *rows, f"  {'events':<22}{self.events:>6}"]


class DemoRefused(Exception):
    """The plan has rows the rules refuse; nothing was recorded."""


class _SimulatedClock:
    """The recording clock of the demo: each step is recorded at its planned moment."""

    def __init__(self) -> None:
        self.now = datetime(YEAR, 1, 1, tzinfo=BUREAU_TZ)

    def __call__(self) -> datetime:
        return self.now


def at(month: int, day: int, hour: int = 9) -> datetime:
    return datetime(YEAR, month, min(day, 28), hour, tzinfo=BUREAU_TZ)


def some_day(rng: random.Random, first_month: int = 1, last_month: int = 12) -> datetime:
    """A working moment of the year, after the organisation is set up in the first days of January."""
    month = rng.randint(first_month, last_month)
    return at(month, rng.randint(6 if month == 1 else 1, 28), rng.randint(8, 17))


class _Planner:
    """Writes the year, deterministically from a seed."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.steps: list[Step] = []
        self.leaders: dict[str, list[str]] = {}  # unit -> leader person ids
        self.officers: dict[str, list[str]] = {}  # district -> officer ids
        self.removed: dict[str, datetime] = {}  # officer -> removed from the enforcement post then (R7)
        self.station_of: dict[str, str] = {}  # township -> land station
        self.district_of: dict[str, str] = {}  # township -> district
        self.names: set[str] = set()

    def add(self, method: str, when: datetime, late_days: int = 0, **kwargs: Any) -> None:
        # Recorded half an hour after it happened (or weeks late); equal delays keep same-moment steps in order.
        recorded = when + timedelta(minutes=30, days=late_days)
        self.steps.append(Step(method, kwargs, when, recorded))

    def name(self) -> str:
        while True:
            candidate = self.rng.choice(SURNAMES) + "".join(self.rng.choices(GIVEN, k=self.rng.choice([1, 2])))
            if candidate not in self.names:
                self.names.add(candidate)
                return candidate

    def plan(self) -> list[Step]:
        self.organisation()
        self.agreements_and_quota()
        self.policy_amendment()
        self.conduct()
        self.cases()
        self.petitions()
        self.receptions()
        # Recorded in the order the ledger would have seen them.
        return sorted(self.steps, key=lambda s: s.recorded_at)

    # --- the organisation ---------------------------------------------------------------------

    def organisation(self) -> None:
        t = at(1, 2, 8)
        self.add("register_unit", t, unit_id="laiwu", name="莱芜市", kind=UnitKind.CITY, parent_id=None)
        self.add(
            "register_unit",
            t,
            unit_id="laiwu-bureau",
            name="莱芜市国土资源局",
            kind=UnitKind.CITY_BUREAU,
            parent_id="laiwu",
        )
        self.person("laiwu", Post.PRINCIPAL_LEADER, "mayor")
        self.person("laiwu", Post.LEADER_IN_CHARGE, "vice-mayor")
        self.person("laiwu-bureau", Post.PRINCIPAL_LEADER, "bureau-director")
        self.person("laiwu-bureau", Post.LEADER_IN_CHARGE, "bureau-deputy")
        for i in range(2):
            self.person("laiwu-bureau", Post.PETITION_CLERK, f"bureau-clerk-{i + 1}")
        for district, (district_name, townships) in DISTRICTS.items():
            branch = f"{district}-branch"
            self.add(
                "register_unit", t, unit_id=district, name=district_name, kind=UnitKind.DISTRICT, parent_id="laiwu"
            )
            self.add(
                "register_unit",
                t,
                unit_id=branch,
                name=f"{district_name}分局",
                kind=UnitKind.BRANCH_BUREAU,
                parent_id=district,
            )
            self.person(district, Post.PRINCIPAL_LEADER, f"{district}-head")
            self.person(district, Post.LEADER_IN_CHARGE, f"{district}-deputy")
            self.person(branch, Post.PRINCIPAL_LEADER, f"{branch}-director")
            self.officers[district] = [
                self.person(branch, Post.ENFORCEMENT_OFFICER, f"{branch}-officer-{i + 1}") for i in range(4)
            ]
            for i in range(2):
                self.person(branch, Post.PETITION_CLERK, f"{branch}-clerk-{i + 1}")
            for township, township_name in townships:
                station = f"{township}-station"
                self.district_of[township] = district
                self.station_of[township] = station
                self.add(
                    "register_unit", t, unit_id=township, name=township_name, kind=UnitKind.TOWNSHIP, parent_id=district
                )
                self.add(
                    "register_unit",
                    t,
                    unit_id=station,
                    name=f"{township_name}国土资源所",
                    kind=UnitKind.LAND_STATION,
                    parent_id=township,
                )
                self.person(township, Post.PRINCIPAL_LEADER, f"{township}-head")
                self.person(township, Post.LEADER_IN_CHARGE, f"{township}-deputy")
                self.officers[district].append(self.person(station, Post.ENFORCEMENT_OFFICER, f"{station}-officer"))

    def person(self, unit: str, post: Post, person_id: str) -> str:
        self.add("register_person", at(1, 2, 10), person_id=person_id, name=self.name(), unit_id=unit, post=post)
        if post in (Post.PRINCIPAL_LEADER, Post.LEADER_IN_CHARGE):
            self.leaders.setdefault(unit, []).append(person_id)
        return person_id

    def agreements_and_quota(self) -> None:
        t = at(1, 10)
        for district, (_, townships) in DISTRICTS.items():
            self.add(
                "sign_agreement",
                t,
                year=YEAR,
                issuer_unit_id="laiwu",
                responsible_unit_id=district,
                targets=["耕地保有量不减少", "重大违法案件零发生", "信访案件按期办结率100%"],
            )
            self.add(
                "sign_agreement",
                t,
                year=YEAR,
                issuer_unit_id="laiwu-bureau",
                responsible_unit_id=f"{district}-branch",
                targets=["违法案件立案率100%", "结案率95%以上"],
            )
            for township, _ in townships:
                self.add(
                    "sign_agreement",
                    t,
                    year=YEAR,
                    issuer_unit_id=district,
                    responsible_unit_id=township,
                    targets=["辖区内无新增违法用地", "初信初访化解率90%"],
                )
                self.add(
                    "sign_agreement",
                    t,
                    year=YEAR,
                    issuer_unit_id=f"{district}-branch",
                    responsible_unit_id=self.station_of[township],
                    targets=["动态巡查每周不少于两次"],
                )
        # The province gave the city under 1000 mu; the city asks for three to four thousand (R19).
        self.add("allocate_quota", at(1, 15), unit_id="laiwu", year=YEAR, mu=Decimal(960))
        self.add("allocate_quota", at(1, 20), unit_id="laicheng", year=YEAR, mu=Decimal(620))
        self.add("allocate_quota", at(1, 20), unit_id="gangcheng", year=YEAR, mu=Decimal(340))
        places: list[str] = list(self.district_of)
        for i in range(44):
            township = self.rng.choice(places)
            mu = Decimal(self.rng.randrange(200, 1600)) / 10
            self.add(
                "approve_land",
                at(self.rng.randint(2, 12), self.rng.randint(1, 28)),
                unit_id=township,
                mu=mu,
                project=f"{self.rng.choice(['工业园', '物流园', '安置区', '道路', '学校'])}项目第{i + 1}期",
            )

    def policy_amendment(self) -> None:
        # Mid-year the bureau tightened the rules: escalations weigh more, major cases start smaller.
        self.add(
            "amend_policy",
            at(6, 20),
            effective_from=at(7, 1, 0),
            note="局党组会议决定（2025年第6次）",
            params={"points_escalation": 8, "major_case_area_mu": 8, "points_missed_reception": 2},
        )

    # --- conduct ----------------------------------------------------------------------------

    def conduct(self) -> None:
        officers = [o for group in self.officers.values() for o in group]
        for officer in officers:
            self.add(
                "record_training",
                at(self.rng.randint(2, 11), self.rng.randint(1, 28)),
                late_days=self.late(),
                person_id=officer,
                course=self.rng.choice(["《土地管理法》执法实务", "《信访条例》专题培训", "矿产资源执法取证"]),
            )
        accused = self.rng.sample(officers, 14)
        for n, officer in enumerate(accused):
            month = self.rng.randint(2, 9)
            self.add(
                "report_misconduct",
                at(month, 3),
                person_id=officer,
                kind=self.rng.choice(list(MisconductKind)),
                reporter=self.name(),
                detail="群众来信反映该同志在执法检查中存在不当行为",
            )
            substantiated = n < 7
            self.add(
                "record_finding", at(month + 1, 10), person_id=officer, report_id="r1", substantiated=substantiated
            )
            if substantiated and n < 6:  # one removal still due at year end: R7's trigger stays open
                self.add("remove_from_post", at(month + 1, 12), person_id=officer)
                self.removed[officer] = at(month + 1, 12)
            if n == 0:
                self.add("refer_to_judiciary", at(month + 2, 1), person_id=officer)
        for officer in self.rng.sample([o for o in officers if o not in accused[:7]], 6):
            self.add("commend", at(12, 20), person_id=officer, title=self.rng.choice(list(Commendation)))

    def in_post(self, district: str, handlers: list[str], when: datetime) -> list[str]:
        """The handlers drawn, an officer removed from the post by ``when`` replaced by the district's first one still
        in it (R7: a removed officer handles no case); the draws stay as they were, so the rest of the year does."""

        def serving(officer: str) -> bool:
            return officer not in self.removed or self.removed[officer] > when

        spare = [o for o in self.officers[district] if o not in handlers and serving(o)]
        return [h if serving(h) else spare.pop(0) for h in handlers]

    def receptions(self) -> None:
        # R17: leaders receive petitioners publicly at the grassroots at least once a month; some miss months.
        for unit, leaders in self.leaders.items():
            for leader in leaders:
                for month in range(1, 13):
                    if self.rng.random() < 0.88:
                        self.add(
                            "hold_reception",
                            at(month, self.rng.randint(5, 25), 14),
                            late_days=self.late(),
                            person_id=leader,
                            place=f"{unit}便民服务中心",
                        )

    def late(self) -> int:
        """Most entries are recorded the same day; a few weeks late (the back-dating report shows them)."""
        return self.rng.choice([20, 35]) if self.rng.random() < 0.03 else 0

    # --- enforcement cases -------------------------------------------------------------------

    def cases(self) -> None:
        townships = list(self.district_of)
        violations = list(Violation)
        for n in range(132):
            township = self.rng.choice(townships)
            district = self.district_of[township]
            unit = self.station_of[township] if self.rng.random() < 0.7 else f"{district}-branch"
            violation = violations[n % len(violations)]
            case_id = f"AJ{YEAR}-{n + 1:04d}"
            start = some_day(self.rng, 1, 11)
            mineral = violation.resource == "minerals"
            area = Decimal(self.rng.randrange(5, 260 if self.rng.random() < 0.15 else 90)) / 10
            self.add(
                "report_clue",
                start,
                case_id=case_id,
                unit_id=unit,
                violation=violation,
                source=list(ClueSource)[n % 4],
                area_mu=area,
                value_yuan=Decimal(self.rng.randrange(20, 900)) * 1000 if mineral else None,
                location=f"{self.rng.choice(['东', '西', '南', '北'])}{self.rng.randint(1, 9)}村",
            )
            if n % 13 == 5:
                continue  # never filed: 有案不查
            handlers = self.rng.sample(self.officers[district], 2)
            t = start + timedelta(days=self.rng.randint(1, 12))
            handlers = self.in_post(district, handlers, t)
            self.add("file_case", t, case_id=case_id, handler_ids=handlers)
            if mineral or n % 7 == 0:
                self.add(
                    "handle_jointly",
                    t + timedelta(days=2),
                    case_id=case_id,
                    agencies=[Agency.POLICE] if mineral else [Agency.POLICE, Agency.DISCIPLINE],
                )
            if n % 17 == 3:
                self.add(
                    "declare_major", t + timedelta(days=3), case_id=case_id, reason="社会影响恶劣，市局认定为重大案件"
                )
            if area >= 8 or n % 17 == 3:
                self.add("report_upward", t + timedelta(days=4), case_id=case_id)
                self.add("file_for_record", t + timedelta(days=5), case_id=case_id)
                self.add("review_jointly", t + timedelta(days=9), case_id=case_id, decision="依法从重处罚")
                self.add(
                    "supervise",
                    t + timedelta(days=6),
                    case_id=case_id,
                    by_unit_id="laiwu-bureau",
                    deadline=t + timedelta(days=60),
                )
            if self.rng.random() < 0.8:
                self.add(
                    "decide_penalty",
                    t + timedelta(days=20),
                    case_id=case_id,
                    fine_yuan=Decimal(self.rng.randrange(5, 300)) * 1000,
                    demolition_mu=area if not mineral else None,
                )
                if mineral and self.rng.random() < 0.5:
                    self.add("transfer_case", t + timedelta(days=25), case_id=case_id, to=Agency.POLICE)
                if (t + timedelta(days=40)).year == YEAR:
                    self.add("close_case", t + timedelta(days=40), case_id=case_id, outcome="处罚到位，拆除复耕")
                    if n in (8, 61):
                        self.add(
                            "find_wrongful",
                            t + timedelta(days=70 if n == 8 else 55),
                            case_id=case_id,
                            handler_ids=handlers,
                            reason="复查发现认定事实不清、适用法律错误",
                        )

    # --- petitions --------------------------------------------------------------------------

    def petitions(self) -> None:
        townships = list(self.district_of)
        registered: list[tuple[datetime, str]] = []
        for n in range(380):
            township = self.rng.choice(townships)
            district = self.district_of[township]
            unit = self.rng.choice([township, self.station_of[township], f"{district}-branch"])
            petition_id = f"XF{YEAR}-{n + 1:04d}"
            start = some_day(self.rng)
            category = self.rng.choice(list(PetitionCategory))
            collective = self.rng.random() < 0.08
            earlier = [pid for when, pid in registered if when < start - timedelta(days=1)]
            repeat_of = self.rng.choice(earlier) if earlier and self.rng.random() < 0.12 else None
            assigned = self.rng.choices(
                [None, AssignedFrom.CITY, AssignedFrom.PROVINCE, AssignedFrom.CENTRAL], [80, 10, 7, 3]
            )[0]
            self.add(
                "register_petition",
                start,
                petition_id=petition_id,
                unit_id=unit,
                channel=self.rng.choice(list(Channel)),
                petitioner_count=self.rng.randint(5, 40) if collective else self.rng.choice([1, 1, 1, 2, 3]),
                petitioner=self.name(),
                subject=self.rng.choice(SUBJECTS[category]),
                category=category,
                skip_level=self.rng.random() < 0.1,
                repeat_of=repeat_of,
                assigned_from=assigned,
            )
            registered.append((start, petition_id))
            self.petition_life(petition_id, unit, township, district, start, initial=repeat_of is None, n=n)

    def petition_life(
        self, pid: str, unit: str, township: str, district: str, start: datetime, *, initial: bool, n: int
    ) -> None:
        end_of_year = datetime(YEAR, 12, 31, 18, tzinfo=BUREAU_TZ)
        leader = self.rng.choice(self.leaders[township] + self.leaders[district])

        def step(after_days: float, method: str, **kwargs: Any) -> datetime | None:
            when = start + timedelta(days=after_days)
            if when > end_of_year:
                return None
            self.add(method, when, petition_id=pid, **kwargs)
            return when

        # A few petitions still open at the year's end have no leader yet: those of them that are key ones (重点信访件)
        # show on the board as unowned (未包案, R9), as a supervisor chasing them would find them.
        unowned = n % 9 == 2 and n % 4 == 0
        if not unowned:
            step(1, "take_ownership", leader_id=leader)
        if n % 37 == 11:
            branch = f"{district}-branch"
            step(2, "divert_petition", to_unit_id=township if unit == branch else branch)
        if initial:
            if not unowned:  # the leader meets the petitioner only once owning the petition
                step(3, "hold_meeting", party=Meeting.LEADER)
            step(4, "hold_meeting", party=Meeting.HANDLING_UNIT)
            step(5, "hold_meeting", party=Meeting.PETITIONER)
        nail = n % 29 == 7 and not unowned  # the demo names the owning leader as a nail case's resolver
        if nail:
            step(6, "designate_nail_case", resolver_id=leader)
        if n % 11 == 4:
            step(10, "extend_petition", days=self.rng.choice([15, 30]))
        if self.rng.random() < 0.07:
            step(
                self.rng.randint(8, 40),
                "escalate",
                level=self.rng.choice(list(EscalationLevel)),
                collective=self.rng.random() < 0.3,
            )
        if n % 9 == 2:
            return  # still being handled at year end (some will be overdue)
        done = self.rng.randint(20, 55)
        if step(done, "reply_petition", summary="经调查核实，已依法作出处理并书面答复") is None:
            return
        if initial:
            step(done + 7, "return_visit", satisfied=self.rng.random() < 0.85)
        if nail:
            checks = list(NailCheck) if n % 2 else list(NailCheck)[:3]  # one nail case keeps a check open
            for i, check in enumerate(checks):
                step(done + 8 + i, "record_nail_check", check=check)
            if len(checks) < 4:
                return
        step(done + 12, "record_cessation")
        step(done + 14, "close_petition")
        if self.rng.random() < 0.02:
            step(done + 30, "escalate", level=EscalationLevel.CITY, collective=False)


def demo_plan(seed: int = YEAR) -> list[Step]:
    """The demo year as a plan; the same seed gives the same plan."""
    return _Planner(seed).plan()


def execute(
    ledger: Ledger, clock: _SimulatedClock, steps: list[Step], on_step: Callable[[], None] = lambda: None
) -> Summary:
    """Record the plan's steps through the application, each at its planned recording time."""
    summary = Summary()
    for step in steps:
        clock.now = step.recorded_at
        receipt = getattr(ledger, step.method)(**step.kwargs, actor=ADMIN, occurred_at=step.occurred_at)
        summary.counts[step.method] = summary.counts.get(step.method, 0) + 1
        summary.events += 1
        summary.last_position = receipt.position
        on_step()
    return summary


def check_plan(steps: list[Step]) -> None:
    """Dry-run the whole plan on an in-memory ledger; list every refused row, record nothing."""
    clock = _SimulatedClock()
    trial = Ledger({"PERSISTENCE_MODULE": "eventsourcing.popo"}, vault=DryRunVault(), clock=clock)
    trial.ensure_policy()
    refused: list[str] = []
    for i, step in enumerate(steps):
        clock.now = step.recorded_at
        try:
            getattr(trial, step.method)(**step.kwargs, actor=ADMIN, occurred_at=step.occurred_at)
        except (DomainError, TypeError, ValueError) as e:
            refused.append(f"row {i + 1} ({step.method}): {e}")
    if refused:
        shown = "; ".join(refused[:3])
        raise DemoRefused(f"{len(refused)} of {len(steps)} demo rows refused, nothing recorded: {shown}")


def is_blank(ledger: Ledger) -> bool:
    """A store is blank when it holds nothing but the policy's first version."""
    return all(
        ".Policy." in n.topic or n.topic.endswith(":Policy.Established")
        for n in ledger.recorder.select_notifications(start=1, limit=3)
    )


def load_demo(url: str, steps: list[Step] | None = None) -> Summary:
    """Check the plan in full, then record it in the (blank) store with a progress bar."""
    steps = demo_plan() if steps is None else steps
    check_plan(steps)
    clock = _SimulatedClock()
    ledger = open_ledger(url, clock=clock)
    try:
        if not is_blank(ledger):
            raise DemoRefused("the store already holds records; the demo loads only into an empty store")
        with Progress(transient=True) as progress:
            task = progress.add_task("recording the Laiwu year", total=len(steps))
            return execute(ledger, clock, steps, lambda: progress.advance(task))
    finally:
        ledger.close()
