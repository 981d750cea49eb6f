"""Property test (性质测试): random command sequences on random records, valid and invalid.

A hypothesis state machine drives ``domain.application.Ledger``. After every command: a refused
command (a domain error) recorded nothing; an accepted one recorded exactly its own events — all
of its record, versions following on, the receipt naming the last one. A closure (结案) is checked
against a model of what it rests on: the reply (R18); for an initial petition (初信初访) the three
meetings and a return visit (R16); for a nail case (钉子案) its four checks (R12): it is taken exactly
when the model has them all, and a refusal names the rule and exactly what is missing. After every
run: folding each record's events from the global log reproduces the state the repository loads.
Many runs on an in-memory (POPO) ledger; a few on each real store.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, rule, run_state_machine_as_test

from domain.application import Ledger, Receipt
from domain.base import BUREAU_TZ, record_uuid
from domain.errors import DomainError, RuleViolation
from domain.people import Person
from domain.personal import DryRunVault
from domain.petitions import Petition
from domain.units import Unit
from domain.vocabulary import Channel, EscalationLevel, Meeting, NailCheck, PetitionCategory, Post, UnitKind
from store.transcoder import OrjsonTranscoder
from tests.faults.conftest import LONG

START = datetime(2023, 1, 1, tzinfo=BUREAU_TZ)
KINDS: dict[type[Any], str] = {Unit: "unit", Person: "person", Petition: "petition"}


def popo_ledger() -> Ledger:
    env = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
    ledger = Ledger(env, vault=DryRunVault(), transcoder=OrjsonTranscoder())
    ledger.ensure_policy()  # as `ledger init` does for a real store
    return ledger


#: Closures are dated after every other step (DAYS), so only what is missing can refuse them, never chronology.
CLOSING_DAY = 500


@dataclass
class Steps:
    """The model of one registered petition: the steps its closure rests on, as accepted so far."""

    initial: bool = True  # 初信初访: it repeats no earlier petition
    meetings: set[str] = field(default_factory=set)
    replied: bool = False
    visited: bool = False
    nail_case: bool = False
    checks: set[str] = field(default_factory=set)
    closed: bool = False

    def missing(self) -> dict[str, set[str]]:
        """What closure still lacks, by rule, in the order the rules are checked."""
        lacking = {
            "R12": {str(c) for c in NailCheck} - self.checks if self.nail_case else set(),
            "R16": {str(m) for m in Meeting} - self.meetings if self.initial else set(),
            "R18": set() if self.replied else {"reply"},
        }
        if self.initial and not self.visited:
            lacking["R16"].add("return visit")
        return {rule: absent for rule, absent in lacking.items() if absent}


TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
DAYS = st.integers(min_value=-30, max_value=400)


def machine_for(ledger_factory: Callable[[], Ledger]) -> type[RuleBasedStateMachine]:
    class LedgerMachine(RuleBasedStateMachine):
        units = Bundle("units")
        people = Bundle("people")
        petitions = Bundle("petitions")

        def __init__(self) -> None:
            super().__init__()
            self.ledger = ledger_factory()
            self.prefix = secrets.token_hex(3)  # real stores are shared across examples
            self.touched: set[tuple[type[Any], str]] = set()
            self.model: dict[str, Steps] = {}  # every petition whose registration was taken

        def teardown(self) -> None:
            try:
                self.check_replay()
            finally:
                self.ledger.close()

        # --- the properties --------------------------------------------------------------------

        def attempt(self, cls: type[Any], record_id: str, command: Callable[[], Receipt]) -> str | None:
            before = self.ledger.recorder.max_notification_id() or 0
            old_version = self.version(cls, record_id)
            try:
                receipt = command()
            except DomainError:
                assert (self.ledger.recorder.max_notification_id() or 0) == before, "a refusal recorded something"
                return None
            new = list(self.ledger.iter_log(before + 1))
            assert new, "an accepted command recorded nothing"
            uuid = record_uuid(KINDS[cls], receipt.id)
            assert all(event.originator_id == uuid for _, event in new), "it recorded another record's events"
            versions = [event.originator_version for _, event in new]
            assert versions == list(range((old_version or 0) + 1, receipt.version + 1))
            assert receipt.position == new[-1][0]
            self.touched.add((cls, receipt.id))
            return receipt.id

        def version(self, cls: type[Any], record_id: str) -> int | None:
            try:
                return int(self.ledger.get(cls, record_id).version)
            except DomainError:
                return None

        def check_replay(self) -> None:
            folded: dict[Any, Any] = {}
            for _, event in self.ledger.iter_log():
                folded[event.originator_id] = event.mutate(folded.get(event.originator_id))
            for cls, record_id in self.touched:
                loaded = self.ledger.get(cls, record_id)
                assert vars(folded[loaded.id]) == vars(loaded), (cls, record_id)

        def when(self, days: int) -> datetime:
            return START + timedelta(days=days)

        def rid(self, name: str) -> str:
            return f"{self.prefix}-{name}"

        # --- the commands ----------------------------------------------------------------------

        @initialize(target=units)
        def city(self) -> str:
            city = self.rid("city")
            made = self.attempt(
                Unit,
                city,
                lambda: self.ledger.register_unit(city, "市", UnitKind.CITY, None, actor="t", occurred_at=START),
            )
            assert made == city
            return city

        @rule(
            target=units,
            parent=units,
            name=st.sampled_from(["a", "b", "c", "bad id", ""]),
            kind=st.sampled_from(list(UnitKind)),
            days=DAYS,
        )
        def register_unit(self, parent: str, name: str, kind: UnitKind, days: int) -> Any:
            unit_id = self.rid(name) if name else ""
            made = self.attempt(
                Unit,
                unit_id,
                lambda: self.ledger.register_unit(
                    unit_id, name or "x", kind, parent, actor="t", occurred_at=self.when(days)
                ),
            )
            return made or parent

        @rule(target=people, unit=units, name=TEXT, post=st.sampled_from(list(Post)), days=DAYS)
        def register_person(self, unit: str, name: str, post: Post, days: int) -> Any:
            pid = self.rid(f"p{secrets.token_hex(2)}")
            made = self.attempt(
                Person,
                pid,
                lambda: self.ledger.register_person(
                    name, unit, post, person_id=pid, actor="t", occurred_at=self.when(days)
                ),
            )
            return made or pid  # a refused id stays in play: later commands on it must be refused

        @rule(
            target=petitions,
            unit=units,
            count=st.integers(-1, 9),
            who=TEXT,
            subject=TEXT,
            channel=st.sampled_from(list(Channel)),
            category=st.sampled_from(list(PetitionCategory)),
            skip=st.booleans(),
            days=DAYS,
        )
        def register_petition(
            self,
            unit: str,
            count: int,
            who: str,
            subject: str,
            channel: Channel,
            category: PetitionCategory,
            skip: bool,
            days: int,
        ) -> Any:
            pid = self.rid(f"x{secrets.token_hex(2)}")
            made = self.attempt(
                Petition,
                pid,
                lambda: self.ledger.register_petition(
                    unit,
                    channel,
                    count,
                    who,
                    subject,
                    category,
                    petition_id=pid,
                    skip_level=skip,
                    actor="t",
                    occurred_at=self.when(days),
                ),
            )
            if made:
                self.model[made] = Steps()
            return made or pid

        def step(self, petition: str, command: Callable[[], Receipt]) -> Steps | None:
            """Attempt a step; the petition's model if it was taken."""
            taken = self.attempt(Petition, petition, command)
            return self.model[petition] if taken else None

        @rule(petition=petitions, leader=people, days=DAYS, stale=st.booleans())
        def take_ownership(self, petition: str, leader: str, days: int, stale: bool) -> None:
            expected = 99 if stale else None
            self.attempt(
                Petition,
                petition,
                lambda: self.ledger.take_ownership(
                    petition, leader, actor="t", occurred_at=self.when(days), expected_version=expected
                ),
            )

        @rule(petition=petitions, party=st.sampled_from(list(Meeting)), days=DAYS)
        def hold_meeting(self, petition: str, party: Meeting, days: int) -> None:
            if taken := self.step(
                petition, lambda: self.ledger.hold_meeting(petition, party, actor="t", occurred_at=self.when(days))
            ):
                taken.meetings.add(str(party))

        @rule(petition=petitions, days=st.integers(-5, 45), when=DAYS)
        def extend(self, petition: str, days: int, when: int) -> None:
            self.attempt(
                Petition,
                petition,
                lambda: self.ledger.extend_petition(petition, days, actor="t", occurred_at=self.when(when)),
            )

        @rule(petition=petitions, summary=TEXT, days=DAYS)
        def reply(self, petition: str, summary: str, days: int) -> None:
            if taken := self.step(
                petition, lambda: self.ledger.reply_petition(petition, summary, actor="t", occurred_at=self.when(days))
            ):
                taken.replied = True

        @rule(petition=petitions, satisfied=st.booleans(), days=DAYS)
        def return_visit(self, petition: str, satisfied: bool, days: int) -> None:
            if taken := self.step(
                petition, lambda: self.ledger.return_visit(petition, satisfied, actor="t", occurred_at=self.when(days))
            ):
                taken.visited = True

        @rule(petition=petitions, resolver=people, days=DAYS)
        def designate_nail_case(self, petition: str, resolver: str, days: int) -> None:
            if taken := self.step(
                petition,
                lambda: self.ledger.designate_nail_case(petition, resolver, actor="t", occurred_at=self.when(days)),
            ):
                taken.nail_case = True

        @rule(petition=petitions, check=st.sampled_from(list(NailCheck)), days=DAYS)
        def nail_check(self, petition: str, check: NailCheck, days: int) -> None:
            if taken := self.step(
                petition, lambda: self.ledger.record_nail_check(petition, check, actor="t", occurred_at=self.when(days))
            ):
                taken.checks.add(str(check))

        @rule(
            target=petitions,
            meetings=st.sets(st.sampled_from(list(Meeting))),
            reply=st.booleans(),
            visit=st.booleans(),
            nail=st.booleans(),
            checks=st.sets(st.sampled_from(list(NailCheck))),
            repeat=st.booleans(),
        )
        def towards_closure(
            self, meetings: set[Meeting], reply: bool, visit: bool, nail: bool, checks: set[NailCheck], repeat: bool
        ) -> Any:
            """A petition of the city walked through some of its steps in order, then closed: random commands seldom
            reach a closure with everything in place, and the model must be checked both ways."""
            city, leader = self.rid("city"), self.register_person(self.rid("city"), "市长", Post.PRINCIPAL_LEADER, 0)
            petition = self.register_petition(
                city, 1, "张", "征地", Channel.VISIT, PetitionCategory.OTHER, skip=False, days=1
            )
            if repeat:  # a repeat of that one (重复信访): not initial, so R16 asks nothing of it
                original, petition = petition, self.rid(f"x{secrets.token_hex(2)}")
                if self.attempt(
                    Petition,
                    petition,
                    lambda: self.ledger.register_petition(
                        city,
                        Channel.VISIT,
                        1,
                        "张",
                        "征地",
                        PetitionCategory.OTHER,
                        petition_id=petition,
                        repeat_of=original,
                        actor="t",
                        occurred_at=self.when(1),
                    ),
                ):
                    self.model[petition] = Steps(initial=False)
            self.take_ownership(petition, leader, days=2, stale=False)
            for party in sorted(meetings):
                self.hold_meeting(petition, party, days=3)
            if reply:
                self.reply(petition, "答复", days=4)
            if visit:
                self.return_visit(petition, satisfied=True, days=5)
            if nail:
                self.designate_nail_case(petition, leader, days=6)
                for check in sorted(checks):
                    self.nail_check(petition, check, days=7)
            self.close(petition)
            return petition

        @rule(petition=petitions)
        def close(self, petition: str) -> None:
            """结案 against the model: taken exactly when nothing is missing; else refused by the first rule that
            finds something missing (R12, R16, R18 in that order), naming all of that rule's missing steps."""
            steps = self.model.get(petition)
            before = self.ledger.recorder.max_notification_id() or 0
            try:
                self.ledger.close_petition(petition, actor="t", occurred_at=self.when(CLOSING_DAY))
            except RuleViolation as refused:
                assert (self.ledger.recorder.max_notification_id() or 0) == before
                if steps is None or steps.closed:
                    return  # unknown, or closed already: the record's own refusal
                missing = steps.missing()
                assert missing, f"refused with nothing missing: {refused}"
                rule_, absent = next(iter(missing.items()))
                assert refused.rule == rule_, (refused.rule, missing)
                listed = absent - {"return visit"}  # R12's checks, or R16's meetings: the refusal lists them all
                if rule_ == "R12" or (rule_ == "R16" and listed):
                    assert set(str(refused).rsplit(": ", 1)[1].split(", ")) == listed, (str(refused), absent)
                return
            except DomainError:
                assert steps is None, "a registered petition's closure refused for something other than a rule"
                return
            assert steps is not None and not steps.closed and not steps.missing(), steps
            steps.closed = True
            self.touched.add((Petition, petition))

        @rule(petition=petitions, level=st.sampled_from(list(EscalationLevel)), collective=st.booleans(), days=DAYS)
        def escalate(self, petition: str, level: EscalationLevel, collective: bool, days: int) -> None:
            self.attempt(
                Petition,
                petition,
                lambda: self.ledger.escalate(petition, level, collective, actor="t", occurred_at=self.when(days)),
            )

        @rule(petition=petitions, days=DAYS)
        def cease_and_close(self, petition: str, days: int) -> None:
            self.attempt(
                Petition,
                petition,
                lambda: self.ledger.record_cessation(petition, actor="t", occurred_at=self.when(days)),
            )
            if self.step(
                petition, lambda: self.ledger.close_petition(petition, actor="t", occurred_at=self.when(days + 1))
            ):
                assert not self.model[petition].missing(), self.model[petition]
                self.model[petition].closed = True

        @rule(person=people, course=TEXT, days=DAYS)
        def training(self, person: str, course: str, days: int) -> None:
            self.attempt(
                Person,
                person,
                lambda: self.ledger.record_training(person, course, actor="t", occurred_at=self.when(days)),
            )

    return LedgerMachine


def test_in_memory_ledger_state_machine() -> None:
    examples = 300 if LONG else 40
    run_state_machine_as_test(
        machine_for(popo_ledger),
        settings=settings(
            max_examples=examples,
            stateful_step_count=30,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )


def test_state_machine_on_each_real_store(store_url: str) -> None:
    from store.ledger import open_ledger

    run_state_machine_as_test(
        machine_for(lambda: open_ledger(store_url)),
        settings=settings(
            max_examples=20 if LONG else 4,
            stateful_step_count=20,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
