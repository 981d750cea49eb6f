"""The report sweep (逐日推演): a history's R13 reports issued in one walk forward through time.

An issued report is a fold of the whole city as of its period's end, as known then (``reports.report``). Folding
each of a history's two thousand midnights afresh derives every record two thousand times over (about three hours
of one core at a million events). Yet from one midnight to the next, what is known grows only by the facts that
happened and were recorded in between, and a record's items change only with its own facts or when one of its
deadlines passes. So the sweep keeps, per record, what it puts into a report as of the moment reached (a
:class:`Part`: its counts, deductions and triggers), and moving on to a later moment derives again only the records
whose facts arrived or whose deadline passed in between, with the same ``Known`` methods the fold uses. The parts
that read other records are derived again when what they read changes: R17's missed receptions (a leader's facts,
a month's end), R4 for the leaders of a major case's units (the case, a leader of those units), R6 for an agreement's
year (its territory's deductions and commendations, the year's end), and any trigger a decision was recorded for.
A report is then summed from the parts by the fold's own last step (``reports.assemble``).

A unit tree or policy known afresh (a unit, an amendment recorded) derives every part again. A fact applied after
the sweep passed the moment it was recorded by (a late commit, a history loaded with its own times) is taken in at
the next moment: what the sweep holds from then on is what a fold would derive, and a report already kept without
it is folded again when asked (``reports.issued`` checks for such facts). So the sweep also answers the reports of
the periods in progress: moved on to now after each fact, it derives a few records, not the city.

Tests: tests/projections/test_sweep.py checks the reports of random histories, and of a generated city on both
stores, against the fold, the facts taken in all at once or part by part.
"""

from __future__ import annotations

import contextlib
import heapq
import time
from bisect import insort
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from domain.base import BUREAU_TZ, LEDGER_EPOCH
from domain.vocabulary import LEADER_POSTS, Post, Violation
from projections import facts, lease, reports
from projections.catalog import ISSUED, PROJECTIONS, from_micros, micros
from projections.db import Db
from projections.engine import positions
from projections.facts import FOLDED, Facts
from projections.history import (
    DAY,
    REPORT_TYPES,
    STRUCTURE_TABLES,
    Case,
    Ev,
    Known,
    Leader,
    MajorCase,
    Occurrence,
    PetitionState,
    Rec,
    Structure,
    _trigger,
    month_start,
    year_bounds,
)
from projections.reports import Moment, Period, assemble, period

if TYPE_CHECKING:
    from projections.queries import Queries

#: A part's key: what it is derived from (``case``, ``petition``, ``person``; ``missed``, a leader's R17; ``leaders``,
#: R4 for the leaders of a case's units; ``agreement``, R6) and that record's uuid.
PartKey = tuple[str, str]
#: The bureau's offset from UTC, in microseconds: a time's bureau day is ``(at + OFFSET) // DAY``.
OFFSET = int(BUREAU_TZ.utcoffset(None).total_seconds()) * 1_000_000
LEADERS = frozenset(str(p) for p in LEADER_POSTS)


def day_of(at: int) -> int:
    return (at + OFFSET) // DAY


@dataclass
class Part:
    """What one record (or one cross-record rule's subject) puts into a report as of the sweep's moment."""

    #: (unit, count) for what stands at the moment, whatever the period: an overdue or a nail case petition still
    #: open, a trigger still open.
    standing: list[tuple[str, str]] = field(default_factory=list)
    #: (business time, unit, count) for what happened: a petition registered, a case filed...
    dated: list[tuple[int, str, str]] = field(default_factory=list)
    deductions: list[Occurrence] = field(default_factory=list)
    commendations: list[Occurrence] = field(default_factory=list)
    #: (opened at, trigger as decided).
    triggers: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    #: The moment after which its derivation changes with the clock alone (a deadline passing), if any.
    clock: int | None = None

    def days(self) -> set[int]:
        return (
            {day_of(at) for at, *_ in self.dated}
            | {day_of(o.at) for o in self.deductions}
            | {day_of(at) for at, _ in self.triggers}
        )


_NO_PART = Part()


@dataclass
class _Agreement:
    rec: Rec
    unit_id: str
    year: int


class Sweep:
    """The city's parts as of ``moment`` (as known then), moved forward by :meth:`advance`; :meth:`report` sums a
    period that ends at that moment (or is in progress at it). Reads the facts in memory (``projections.facts``),
    never the fact tables; the unit tree and the policy as known at each moment, as the fold does."""

    def __init__(self, db: Db, facts: Facts) -> None:
        self.db = db  # the connection it derives with (the structure, by ``Known``): the caller's, each step's own
        self.facts = facts
        self.moment = -(2**62)
        self.structure: Structure | None = None
        self.known: Known | None = None
        self._read: dict[tuple[str, bool], tuple[list[Any], int]] = {}  # per fact table: its rows, how many taken
        self._due: list[tuple[int, int, str, bool, Any]] = []  # (admitted at, position, projection, is record, row)
        self.records: dict[str, dict[str, Rec]] = {p: {} for p in ("cases", "petitions", "people")}
        self.events: dict[str, dict[str, list[Ev]]] = {p: defaultdict(list) for p in ("cases", "petitions", "people")}
        self.agreements: dict[str, _Agreement] = {}
        self.decisions: dict[str, Rec] = {}
        self.parts: dict[PartKey, Part] = {}
        self.standing: dict[str, Counter[str]] = defaultdict(Counter)
        self.days: dict[int, set[PartKey]] = defaultdict(set)
        self.clock: list[tuple[int, PartKey]] = []
        self.leaders: dict[str, Leader] = {}
        self.principals: dict[str, list[Leader]] | None = None
        self.majors: dict[str, list[MajorCase]] = {}
        self.majors_under: dict[str, set[str]] = defaultdict(set)  # a unit: its cases' and its government's cases
        self.owners: dict[str, PartKey] = {}  # trigger id: the part that opened it
        self.year_sums: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])  # (deducted, commended)
        # whose deductions or commendations fall there (R6's evidence)
        self.year_parts: dict[tuple[str, int], set[PartKey]] = defaultdict(set)
        self.agreements_at: dict[tuple[str, int], list[str]] = defaultdict(list)
        self._dirty_years: set[tuple[str, int]] = set()
        self.take_in()

    # --- the facts -------------------------------------------------------------------------------

    def take_in(self) -> bool:
        """Queue the rows the facts (caught up by the caller) gained since the last call, each to be taken in at the
        first moment it happened and was recorded by; ``False`` if the facts were read afresh since (a table rebuilt,
        another log): the sweep's are no longer theirs."""
        for name in FOLDED:
            for is_record, table in ((True, self.facts.records[name]), (False, self.facts.events[name])):
                rows, taken = self._read.get((name, is_record), (table.rows, 0))
                if rows is not table.rows:  # read afresh since (a rebuild, another log)
                    return False
                for row in table.rows[taken:]:
                    fact = row[0] if is_record else row
                    # The report's fold reads no accountability event, and of the others only REPORT_TYPES.
                    if is_record or (name != "accountability" and fact.type in REPORT_TYPES[name]):
                        admitted = max(fact.occurred_at, fact.recorded_at)
                        heapq.heappush(self._due, (admitted, fact.position, name, is_record, row))
                self._read[name, is_record] = (table.rows, len(table.rows))
        return True

    def until(self) -> int:
        """The last moment through which the reports as of the moment reached stay the reports as of any later one,
        unless a fact not yet taken in arrives (as ``reports.steady_until`` bounds a fold): before the next midnight
        (a day, a month, a year ends), the next deadline, the next fact due."""
        day = from_micros(self.moment).date() + timedelta(days=1)
        ends = [micros(datetime(day.year, day.month, day.day, tzinfo=BUREAU_TZ)) - 1]
        while self.clock and self.parts.get(self.clock[0][1], _NO_PART).clock != self.clock[0][0]:
            heapq.heappop(self.clock)  # derived again since: not its deadline any more
        if self.clock:
            ends.append(self.clock[0][0])  # a deadline passes once the moment is after it
        if self._due:
            ends.append(self._due[0][0] - 1)
        # The unit tree and the policy are no facts the sweep takes in (``Known`` reads them as known at the moment):
        # one already recorded after the moment (a writer's clock ahead, a history loaded with its own times) changes
        # the reports once known, as ``reports.steady_until`` bounds a fold by it.
        for table in STRUCTURE_TABLES:
            (first,) = self.db.query(f"SELECT MIN(recorded_at) FROM {table} WHERE recorded_at > ?", (self.moment,))[0]
            if first is not None:
                ends.append(int(first) - 1)
        return min(ends)

    # --- moving on ---------------------------------------------------------------------------------

    def advance(self, moment: int) -> None:
        """Move on to ``moment`` (as of then, as known then): take in the facts that happened and were recorded by
        then, and derive again what they, the deadlines passed and the months and years ended have changed."""
        assert moment >= self.moment, "a sweep only moves forward"
        previous, self.moment = self.moment, moment
        k = Known(self.db, from_micros(moment), from_micros(moment))
        # The fold's cached facts, given rather than read: its methods then read the sweep's (decisions here, the
        # leaders once derived: ``_people``), and the records are handed to them one by one.
        k.__dict__["decisions"] = self.decisions
        self.known = k
        everything = not _alike(self.structure, k.structure)
        self.structure = k.structure
        touched: dict[str, set[str]] = {p: set() for p in ("case", "petition", "person", "agreement", "leaders")}
        kinds = {"cases": "case", "petitions": "petition", "people": "person"}
        while self._due and self._due[0][0] <= moment:
            _, _, name, is_record, row = heapq.heappop(self._due)
            if name == "accountability":
                rec, kind = row
                if kind == "agreement":
                    year = int(rec.data["year"])
                    self.agreements[rec.uuid] = _Agreement(rec, rec.unit_id or "", year)
                    self.agreements_at[rec.unit_id or "", year].append(rec.uuid)
                    touched["agreement"].add(rec.uuid)
                elif kind == "decision":
                    self.decisions[rec.record_id] = rec
                    owner = self.owners.get(rec.record_id)
                    if owner is not None:
                        touched[owner[0]].add(owner[1])
            elif is_record:
                rec = row[0]
                self.records[name][rec.uuid] = rec
                touched[kinds[name]].add(rec.uuid)
            else:
                insort(self.events[name][row.uuid], row, key=lambda e: e.position)
                touched[kinds[name]].add(row.uuid)
        while self.clock and self.clock[0][0] < moment:
            at, key = heapq.heappop(self.clock)
            part = self.parts.get(key)
            if part is not None and part.clock == at:
                touched[key[0]].add(key[1])
        months_ended = _month_starts(previous, moment)
        if everything:
            for kind, name in (("case", "cases"), ("petition", "petitions"), ("person", "people")):
                touched[kind] |= set(self.records[name])
            touched["agreement"] |= set(self.agreements)
        for year in {from_micros(m).year - 1 for m in months_ended if from_micros(m).month == 1}:
            touched["agreement"] |= {u for (_, y), uuids in self.agreements_at.items() if y == year for u in uuids}

        renewed, principals = self._people(k, touched["person"], everything)
        self._missed(k, renewed, months_ended, everything)
        self._cases(k, touched["case"], touched["leaders"])
        if everything:  # a unit may lie under another government now
            self.majors_under = defaultdict(set)
            for uuid, majors in self.majors.items():
                for unit in {u for m in majors for u in self._units_of(k, m)}:
                    self.majors_under[unit].add(uuid)
            touched["leaders"] |= set(self.majors)
        for unit in principals:
            touched["leaders"] |= self.majors_under.get(unit, set())
        self._leaders(k, touched["leaders"])
        self._petitions(k, touched["petition"])
        self._agreements(k, touched["agreement"])

    def _people(self, k: Known, uuids: set[str], everything: bool) -> tuple[set[str], set[str]]:
        """Derive these people's parts; the leaders among them whose facts changed (R17), and the units of the
        principal leaders among those whose R4 may have changed."""
        renewed, principals = set(), set()
        for uuid in sorted(uuids):
            person = self.records["people"].get(uuid)
            if person is None:
                continue
            evs = self.events["people"].get(uuid, [])
            part = Part(
                deductions=k.person_occurrences(person, evs),
                commendations=k.person_commendations(person, evs),
            )
            self._triggers(k, part, k.person_triggers(person, evs))
            self._put(("person", uuid), part)
            if person.data["post"] in LEADERS:
                leader = k.leader(person, evs)
                old = self.leaders.get(uuid)
                if everything or old != leader:
                    self.leaders[uuid] = leader
                    renewed.add(uuid)
                    # R4 reads who, where and when in post; R17 alone the receptions (``held``).
                    if leader.post == Post.PRINCIPAL_LEADER and (old is None or old[:-1] != leader[:-1]):
                        principals.add(leader.unit_id)
        k.__dict__["leaders"] = list(self.leaders.values())
        if principals or everything or self.principals is None:
            self.principals = k.principals  # R4 reads no reception: kept until a principal leader's post changes
        k.__dict__["principals"] = self.principals
        return renewed, principals

    def _missed(self, k: Known, renewed: set[str], months_ended: list[int], everything: bool) -> None:
        """R17: a leader whose facts changed, derived afresh; every other leader, the months just ended added."""
        for uuid, leader in self.leaders.items():
            key = ("missed", uuid)
            if uuid in renewed or everything:
                self._put(key, Part(deductions=k.missed_by(leader)))
            elif months_ended:  # derived before (every leader is renewed when first taken in)
                known = self.parts[key].deductions
                added = k.missed_by(leader, since=_month_before(months_ended[0]))
                added = [o for o in added if not known or o.at > known[-1].at]
                if added:
                    self._put(key, Part(deductions=[*known, *added]))

    def _cases(self, k: Known, uuids: set[str], leaders_touched: set[str]) -> None:
        records = [self.records["cases"][u] for u in sorted(uuids) if u in self.records["cases"]]
        for case in k._cases(records, self.events["cases"]):
            uuid = case.rec.uuid
            part = _case_part(k, case)
            triggers, majors = k.case_triggers(case)
            self._triggers(k, part, triggers)
            self._put(("case", uuid), part)
            if majors != self.majors.get(uuid, []):
                for m in self.majors.get(uuid, []):
                    for unit in self._units_of(k, m):
                        self.majors_under[unit].discard(uuid)
                if majors:
                    self.majors[uuid] = majors
                    for m in majors:
                        for unit in self._units_of(k, m):
                            self.majors_under[unit].add(uuid)
                else:
                    self.majors.pop(uuid, None)
                leaders_touched.add(uuid)

    @staticmethod
    def _units_of(k: Known, m: MajorCase) -> set[str]:
        return {m.unit_id} | {u for u in [k.structure.government_of(m.unit_id)] if u is not None}

    def _leaders(self, k: Known, uuids: set[str]) -> None:
        """R4 for the principal leaders of each of these major cases' units (and government)."""
        for uuid in sorted(uuids):
            part = Part()
            self._triggers(k, part, k.leader_triggers(self.majors.get(uuid, [])))
            self._put(("leaders", uuid), part)

    def _petitions(self, k: Known, uuids: set[str]) -> None:
        records = [self.records["petitions"][u] for u in sorted(uuids) if u in self.records["petitions"]]
        for p in k._petitions(records, self.events["petitions"]):
            part = _petition_part(k, p)
            self._triggers(k, part, k.petition_triggers(p))
            self._put(("petition", p.rec.uuid), part)

    def _agreements(self, k: Known, uuids: set[str]) -> None:
        """R6 for these agreements and for every one whose territory's year changed (deductions or commendations),
        once the year is over: the score is summed over the territory's units, as ``Known._tally`` tallies it."""
        for unit, year in self._dirty_years:
            for above in k.ancestors(unit):
                uuids.update(self.agreements_at.get((above, year), ()))
        self._dirty_years = set()
        for uuid in sorted(uuids):
            a = self.agreements[uuid]
            start, end = year_bounds(a.year)
            part = Part()
            if self.moment >= end:
                territory = k.subtree(a.unit_id) | {a.unit_id}
                deducted = commended = 0
                for unit in territory:
                    sums = self.year_sums.get((unit, a.year))
                    if sums:
                        deducted, commended = deducted + sums[0], commended + sums[1]
                base = int(k.policy.at(start)["score_base"])
                score = max(base - deducted + commended, 0)
                closing = k.policy.at(end - 1)
                pass_score = int(closing["pass_score"])
                if score < pass_score:
                    trigger = _trigger(
                        "R6",
                        ["agreement", a.rec.record_id],
                        a.unit_id,
                        None,
                        f"{a.year} closed with score {score} below {pass_score} (通报批评)",
                        [a.rec.position],  # the deductions' evidence is added when the trigger is reported
                        max(end, a.rec.occurred_at),  # an agreement signed after its year: when signed
                        closing.version,
                    )
                    self._triggers(k, part, [trigger])
            self._put(("agreement", uuid), part)

    # --- parts -----------------------------------------------------------------------------------

    def _triggers(self, k: Known, part: Part, found: list[dict[str, Any]]) -> None:
        """Decide the triggers (their decisions as known) into the part: each counted while open."""
        opened = {t["id"]: t["opened_at"] for t in found}
        for t in k.decided(found):
            part.triggers.append((opened[t["id"]], t))
            if t["status"] == "open":
                part.standing.append((t["subject"].get("unit_id") or "", "open_triggers"))

    def _put(self, key: PartKey, part: Part) -> None:
        """Replace the part kept under ``key``."""
        old = self.parts.pop(key, None)
        if old is not None:
            self._count(old, -1, key)
        self.parts[key] = part
        self._count(part, 1, key)
        if part.clock is not None:
            heapq.heappush(self.clock, (part.clock, key))

    def _count(self, part: Part, sign: int, key: PartKey) -> None:
        for unit, name in part.standing:
            counts = self.standing[unit]
            counts[name] += sign
            if not counts[name]:
                del counts[name]
                if not counts:
                    del self.standing[unit]
        for day in part.days():
            (self.days[day].add if sign > 0 else self.days[day].discard)(key)
        for column, occurrences in ((0, part.deductions), (1, part.commendations)):
            for o in occurrences:
                at = (o.unit_id, from_micros(o.at).year)
                self.year_sums[at][column] += sign * o.points
                self._dirty_years.add(at)
                (self.year_parts[at].add if sign > 0 else self.year_parts[at].discard)(key)
        for _, t in part.triggers:
            if sign > 0:
                self.owners[t["id"]] = key
            elif self.owners.get(t["id"]) == key:
                del self.owners[t["id"]]

    # --- reports ---------------------------------------------------------------------------------

    def report(self, kind: str, label: str) -> dict[str, Any]:
        """The report of a period as of the moment reached (its end, or a moment inside it), as ``reports.report``
        folds it."""
        start, end = period(kind, label)
        lo, hi = micros(start), micros(end)
        assert lo <= self.moment <= hi and self.known is not None, "a report is summed inside its period or at its end"
        # The standing counts as they are, but a unit's that the period adds to, copied first.
        tallies: dict[str, Counter[str]] = dict(self.standing)
        copied: set[str] = set()
        deductions: list[tuple[tuple[int, list[int], int], Occurrence]] = []
        opened: list[dict[str, Any]] = []
        keys = set().union(*(self.days.get(day, ()) for day in range(day_of(lo), day_of(hi))))
        for key in keys:
            part = self.parts[key]
            for at, unit, name in part.dated:
                if lo <= at < hi:
                    if unit not in copied:
                        tallies[unit] = Counter(tallies.get(unit, ()))
                        copied.add(unit)
                    tallies[unit][name] += 1
            for n, o in enumerate(part.deductions):
                if lo <= o.at < hi:
                    deductions.append(((o.at, o.evidence, n), o))
            opened += [self._evidenced(t) for at, t in part.triggers if lo <= at < hi]
        deductions.sort(key=lambda pair: pair[0])
        opened.sort(key=lambda t: (t["opened_at"], t["id"]))
        found = [o for _, o in deductions]
        return assemble(self.known.structure, kind, label, (self.moment, self.moment), tallies, found, opened)

    def _evidenced(self, t: dict[str, Any]) -> dict[str, Any]:
        """An R6 trigger with its evidence: the agreement and every deduction and commendation of its territory's year
        (R20: every event its score rests on, as the fold names them)."""
        if t["rule"] != "R6":
            return t
        assert self.known is not None
        a = self.agreements[self.owners[t["id"]][1]]
        start, end = year_bounds(a.year)
        evidence = set(t["evidence"])
        for unit in self.known.subtree(a.unit_id) | {a.unit_id}:
            for key in self.year_parts.get((unit, a.year), ()):
                part = self.parts[key]
                for o in (*part.deductions, *part.commendations):
                    if o.unit_id == unit and start <= o.at < end:
                        evidence.update(o.evidence)
        return {**t, "evidence": sorted(evidence)}


# --- back-issuing (补发) ---------------------------------------------------------------------------------

#: How long one issuing step sweeps on (at least one moment), so the worker's next step (the periods just ended, the
#: periods in progress gone stale) waits no longer than this.
STEP_SECONDS = 10.0
#: A new sweep walks the history from its first fact (minutes at a million events); for fewer moments than this to
#: back-issue, each is folded alone instead (seconds each).
AT_LEAST = 30

_sweeps: dict[str, Sweep] = {}


def _kept(db: Db, since: int | None, *, new: bool = True) -> Sweep | None:
    """This process's sweep of the store, its facts caught up with the tables: a new one (unless not ``new``) if
    there was none, the facts were read afresh, or it has passed ``since``; ``None`` past ``facts.LIMIT`` rows (then
    folds answer)."""
    sweep = _sweeps.get(db.url)
    if sweep is None and not new:
        return None
    found = facts.kept(db)
    if found is None:
        _sweeps.pop(db.url, None)
        return None
    if sweep is None or sweep.facts is not found or not sweep.take_in() or (since is not None and sweep.moment > since):
        if not new:
            return None
        sweep = _sweeps[db.url] = Sweep(db, found)
    sweep.db = db  # the connection of the step that uses it (each step opens its own)
    return sweep


def back_issue(queries: Queries, pending: list[Moment], budget: float | None = None) -> list[Moment]:
    """Issue the backlog's moments (``pending``, as ``reports.backlog`` lists them, the next last) in time order by
    this process's sweep, for about ``budget`` seconds (:data:`STEP_SECONDS`) or until the issuer stops
    (``reports.stopping``); the moments left, in the same order.
    The sweep is kept for the next step, and started afresh when the backlog begins before the moment it reached.
    Without the facts in memory (past ``facts.LIMIT``), or for a short backlog that would need a new sweep, one
    moment is folded alone (``reports.issue_at``)."""
    db = queries.db
    head = _head(db)
    ordered = sorted(pending)
    start = _end(ordered[0][0])
    current = _sweeps.get(db.url)
    if len(ordered) < AT_LEAST and (current is None or current.moment > start):
        reports.issue_at(queries, *pending[-1])
        return pending[:-1]
    sweep = _kept(db, start)
    if sweep is None:
        reports.issue_at(queries, *pending[-1])
        return pending[:-1]
    stop = time.monotonic() + (STEP_SECONDS if budget is None else budget)
    while ordered and not reports.stopping():  # the worker stopping: what is issued is kept, the rest waits
        day, due = ordered.pop(0)
        sweep.advance(_end(day))
        _keep(sweep, due, head)
        if time.monotonic() >= stop:
            break
    left = {day for day, _ in ordered}
    return [m for m in pending if m[0] in left]


def issue_due(queries: Queries, due: list[Period]) -> list[Period]:
    """Issue the periods just ended by this process's sweep, moved on to each one's end, when no backlog is left
    (the caller's to know) and the sweep has not passed it; the periods it could not issue (the caller folds them:
    a process that has no sweep yet folds them rather than walk the history for them)."""
    db = queries.db
    head = _head(db)
    left: list[Period] = []
    fresh = [p for p in due if not db.query(f"SELECT 1 FROM {ISSUED} WHERE kind = ? AND label = ?", p)]
    for end, periods in sorted(_by_end(fresh).items()):
        sweep = _kept(db, end, new=False)
        if sweep is None:
            left += periods
            continue
        sweep.advance(end)
        _keep(sweep, periods, head)
    return left


def running(queries: Queries, now: datetime, wanted: list[Period]) -> bool:
    """Keep the reports of the periods in progress as of ``now``, as ``reports.fold_running`` keeps a fold's, from
    this process's sweep moved on to ``now`` (started, the first time, by one jump there); ``False`` without the facts
    in memory, or if the sweep has passed ``now`` (a clock set back): then the caller folds."""
    db = queries.db
    head = _head(db)
    moment = micros(now)
    sweep = _kept(db, None)
    if sweep is None or sweep.moment > moment:
        return False
    sweep.advance(moment)
    kept = {}
    for kind, label in wanted:
        answer = sweep.report(kind, label)
        del answer["as_of"], answer["known_at"]
        kept[kind, label] = reports.split(answer)
    reports.keep_running(db, head, moment, sweep.until(), kept)
    return True


def answering(db: Db) -> bool:
    """Whether this process keeps a sweep of the store (so it answers the periods in progress by it)."""
    return db.url in _sweeps


def _head(db: Db) -> int:
    """What every fact projection has applied: read before the facts are caught up, as ``reports.issued`` does."""
    return min(positions(db, list(PROJECTIONS)).values())


def _end(day: date) -> int:
    """The midnight after ``day`` (the moment its reports are issued as of)."""
    return micros(datetime(day.year, day.month, day.day, tzinfo=BUREAU_TZ) + timedelta(days=1))


def _by_end(due: list[Period]) -> dict[int, list[Period]]:
    found: dict[int, list[Period]] = defaultdict(list)
    for kind, label in due:
        found[micros(period(kind, label)[1])].append((kind, label))
    return found


def _keep(sweep: Sweep, due: list[Period], head: int) -> None:
    """Keep the reports ending at the moment the sweep reached, unless kept meanwhile or being folded by another
    process (an ask's first fold, which keeps what it folds), as ``reports.issue_at`` does."""
    db = sweep.db
    wanted = [p for p in due if not db.query(f"SELECT 1 FROM {ISSUED} WHERE kind = ? AND label = ?", p)]
    with contextlib.ExitStack() as claims:
        no_wait = time.monotonic()
        for kind, label in wanted:
            name = reports.fold_name(kind, label)
            if claims.enter_context(lease.folding(db, name, head, no_wait, reports._never)):
                reports.keep(db, kind, label, head, reports.split(sweep.report(kind, label)))


def _case_part(k: Known, case: Case) -> Part:
    unit, rec = case.rec.unit_id or "", case.rec
    resource = Violation(rec.data["violation"]).resource
    dated = [(rec.occurred_at, unit, "cases.reported"), (rec.occurred_at, unit, f"cases.by_resource.{resource}")]
    if case.major_at is not None:
        dated.append((case.major_at, unit, "cases.major"))
    if case.unfiled_at is not None:
        dated.append((case.unfiled_at, unit, "cases.not_investigated"))
    dated += [(e.occurred_at, unit, f"cases.{e.type}") for e in case.events if e.type in ("filed", "closed")]
    waiting = not case.filed_in_time and case.filing_deadline >= k.as_of
    return Part(dated=dated, deductions=k.case_occurrences(case), clock=case.filing_deadline if waiting else None)


def _petition_part(k: Known, p: PetitionState) -> Part:
    unit = p.unit_id or ""
    dated = [(p.rec.occurred_at, p.rec.unit_id or "", "petitions.registered")]
    if p.closed_at is not None:
        dated.append((p.closed_at, unit, "petitions.closed"))
    escalations = [e.occurred_at for e in p.events if e.type == "escalated"]
    dated += [(at, p.unit_at(at) or "", "petitions.escalations") for at in escalations]
    standing = []
    if p.status == "overdue":
        standing.append((unit, "petitions.overdue_open"))
    if p.status != "closed" and "nail_case" in p.flags:
        standing.append((unit, "petitions.nail_cases_open"))
    if p.status != "closed" and "unowned" in p.flags:
        standing.append((unit, "petitions.key_unowned_open"))
    waiting = p.closed_at is None and p.deadline >= k.as_of
    return Part(
        standing=standing,
        dated=dated,
        deductions=k.petition_occurrences(p),
        clock=p.deadline if waiting else None,
    )


def _alike(known: Structure | None, now: Structure) -> bool:
    """Whether two structures derive alike: the same units, the same policy versions (the defaults recorded as
    version 1 when a store is set up, after a history loaded in bulk, derive as the defaults known before)."""

    def versions(s: Structure) -> list[tuple[Any, ...]]:
        return sorted((a.version, a.effective_from, a.changes) for a in s.policy.amendments)

    return known is now or (known is not None and known.units == now.units and versions(known) == versions(now))


def _month_starts(after: int, until: int) -> list[int]:
    """The months' starts in (after, until]: each ends the month before it."""
    if until <= after:
        return []
    local = from_micros(max(after, micros(LEDGER_EPOCH)))
    year, month = local.year, local.month
    found: list[int] = []
    while True:
        year, month = (year, month + 1) if month < 12 else (year + 1, 1)
        start = month_start(year, month)
        if start > until:
            return found
        if start > after:
            found.append(start)


def _month_before(start: int) -> int:
    local = from_micros(start)
    return month_start(local.year - (local.month == 1), 12 if local.month == 1 else local.month - 1)


__all__ = ["Part", "Sweep", "day_of"]
