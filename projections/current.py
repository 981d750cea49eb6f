"""The current view (现状视图): what each record implies as known now, kept as rows per record.

The fact projections keep facts, and every answer folds them (``projections.history``): exact for any
``as_of`` / ``known_at``, but a district's open triggers then cost a fold of every year of its history.
The supervisors' everyday questions are about now, so this view keeps, per case, petition and person,
the items the fold derives from that record's own facts with no business-time limit: its deductions,
commendations and triggers (each with the business time it falls on) and its row on the petition board.
An answer about now reads the territory's rows, keeps those whose time has come (a deadline counts once
it has passed, as in the fold), and adds what depends on the clock or on other records — missed
receptions (R17), R4 for the unit's leaders, decisions — with the same ``Known`` methods the fold
uses. So an answer from this view equals the fold's answer at ``as_of = known_at = now``.

R6 (a target agreement's year closed below the pass score) depends on every deduction of the agreement's
territory in its year, so it is kept per agreement: after the records of a batch, the agreements above
every unit whose rows changed (and the agreements just signed) are derived again from the territory's
stored rows, as the fold would tally them once the year is over. Likewise each district's rows of the
quota ledger and of R4's deductions (``projections.quota``) are kept per year, derived again when a major
case of its territory changes or one of its units is given quota or uses land.

Questions about a past ``as_of`` as known now (an auditor's usual question) read the same rows for most records:
an item counts when its time had come by ``as_of``, and a record's items dated by ``as_of`` are what the fold at
``as_of`` derives unless a later fact revises them (an extension moves a petition's deadline, a removal closes an
officer's R7). Such records are folded at ``as_of`` instead; each record's ``span`` row (its first business time
and its last revising one, per unit it was ever filed under) finds them. The petition board is read the same way,
a petition with any event after ``as_of`` being folded (a petition's span ends at its last event). Asked as known
at a past moment too, the records with a fact recorded after it are folded as well (``projections.late``).

The view follows the fact projections, never the log: after they have applied a batch, the records it
touched are derived again and their rows replaced, and a policy amendment (which may change any
record's numbers) derives every record again. Its tracking row (``current``) says how far it is.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import orjson

from domain.vocabulary import LEADER_POSTS, Post
from projections import quota
from projections.catalog import from_micros, micros
from projections.db import Db
from projections.history import (
    FOLD_LIMIT,
    IN_LIST,
    Case,
    Ev,
    Known,
    Leader,
    MajorCase,
    Occurrence,
    PetitionState,
    Rec,
    case_flags,
    iso,
    year_bounds,
)

TABLE = "proj_current_items"
#: The fact projections whose facts the items come from (accountability: the agreements, for R6, its decisions
#: being read when answering; units: the quota events, the tree being read when answering).
SOURCES = ("cases", "people", "petitions", "policy", "accountability", "units")
#: Records derived per fold: bounded memory whatever the size of the history.
CHUNK = 500
#: How many of a past question's folded petitions a page of the board folds at first (then twice as many).
FOLDED_BATCH = 8
#: "No business-time limit": every known fact counts; deadlines are stored and compared when read.
FOREVER = datetime(9999, 1, 1, tzinfo=UTC)
FOREVER_MICROS = micros(FOREVER)
#: Deductions and triggers that fall on a deadline count only once it has passed (``deadline < as_of``).
DEADLINE_INDICATORS = frozenset({"case_not_investigated", "overdue_petition"})
#: Per fact projection, the event types that never change an item dated before them (each adds items at its own
#: time, or decides one dated later): a record's later events of other types make it "live" (:func:`live`).
#: Not here: a petition's extension (its deadline); an officer's removal (R7). A petition's ownership is: an owner
#: is the one who had taken it by the business time asked about; so is an officer's report: a finding takes effect
#: once its report is made (``history.findings``).
SELF_DATED = {
    "cases": frozenset({"filed", "declared_major", "supervised", "closed", "wrongful"}),
    "petitions": frozenset(
        {"owned", "replied", "return_visit", "escalated", "nail_case", "nail_check", "ceased", "diverted", "closed"}
    ),
    "people": frozenset({"reported", "finding", "referred", "commended", "reception"}),
}
#: The rows' format: a view without this marker, or with another number (derived by an older engine), is derived
#: afresh once, and past questions fold until it is. Stored as the ``at`` of the row ``FORMAT_ROW``. 3: span rows,
#: and an officer's commendations ranked by the officer's position alone; 4: a petition's span ends at its last event;
#: 5: a case's span is a kind apart, and beside each quota and R4 row what dates its figures (:data:`DATED`); 6: every
#: trigger names its policy version (R20), R7 is answered by a removal before the finding, and a petition's owner is
#: whoever had taken it by business time (its ownership no longer revises what came before); 7: a petition's flags
#: name a key petition and one without a leader owning it (R9: ``key``, ``unowned``), an officer's report no
#: longer revises what came before it (R7 counts a finding from its report on), and each person has a row in the
#: officer registry (``officer``); its reports count the open key petitions without an owner; 8: a board row keeps
#: its ``status`` and ``overdue`` in their place, empty, to be set when read; 9: R14's and R18's evidence names the
#: ownership, extension and diversions they rest on, and R4 holds the leaders in post by business time (kept
#: reports count its triggers); 10: a missed deadline (有案不查, an overdue petition) is priced by the policy that set
#: it, as its trigger names, a trigger names its unit beside its subject (``unit_id``), and R6's evidence names the
#: commendations its score counts; 11: a quota row names the policy versions of its deductions, and the city has one
#: when R4 deducted from it; 12: each case has its row on the case board (``case``, ``case_closed``); 13: a case's span
#: ends at its last event (the case board of a past moment folds the cases with an event after it), and R6 of an
#: agreement signed after its year opens when it was signed. A new number also means the reports kept were folded
#: by an older engine: they are issued again (``engine.derive_current``).
FORMAT = 13
#: Per kind of stored quota or R4 row (by district and year), the kind of the row beside it that dates its figures.
DATED = {"quota": "quota_dated", "deductions": "deductions_dated"}
#: The fact projections whose records have a board row (the petition board, the case board): their spans end at their
#: last event of any kind, a board row changing with each (:func:`_span_rows`).
BOARDED = frozenset({"petitions", "cases"})
#: The kinds of the rows that find the records a past question folds (:func:`live`), and change no item.
SPANS = "('span', 'petition_span', 'case_span')"
#: The fact projection of each kind of span row (:func:`_span_rows`), the kinds :data:`SPANS` lists.
SPAN_OF = {"span": "people", "petition_span": "petitions", "case_span": "cases"}
#: The kinds of the rows that are no item of a score or a trigger (a record's span, board row, registry row): derived
#: again, they change no agreement's R6 and no district's quota.
ITEMLESS = (*SPAN_OF, "petition", "petition_closed", "case", "case_closed", "officer")
FORMAT_ROW = "format:current"


def ddl(big: str) -> list[str]:
    return [
        f"CREATE TABLE IF NOT EXISTS {TABLE} (uuid TEXT NOT NULL, kind TEXT NOT NULL, unit_id TEXT,"
        f" at {big} NOT NULL, visible_from {big} NOT NULL, seq {big} NOT NULL, data TEXT NOT NULL)",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_uuid ON {TABLE} (uuid)",
        *lookups(),
    ]


def lookups() -> list[str]:
    """The indexes answers read the rows by (a territory's, a kind's, by time); deriving reads by uuid alone."""
    return [
        f"CREATE INDEX IF NOT EXISTS {TABLE}_unit ON {TABLE} (kind, unit_id, at)",
        # By time; covering for the board's past question (:data:`LIVE`: every petition with an event after
        # ``as_of``, registered by then), which read a row for each of the ~25,000 petition spans ending after a
        # month's end at 1M events to find its ~2,000 (12.5 of a page's 22 ms on SQLite).
        f"CREATE INDEX IF NOT EXISTS {TABLE}_at ON {TABLE} (kind, at, visible_from, uuid)",
        # The petition board's pages, in registration order (a petition's row keeps its position as ``seq``); and
        # the records a past question folds, found by their span rows alone (:func:`revised`).
        f"CREATE INDEX IF NOT EXISTS {TABLE}_seq ON {TABLE} (kind, seq, visible_from, uuid)",
    ]


def drop_lookups(db: Db) -> None:
    """Before every record is derived afresh: the rows go in by uuid, each lookup index is then built once
    from sorted keys instead of grown row by row (:func:`lookups`)."""
    for name in ("unit", "at", "seq"):
        db.execute(f"DROP INDEX IF EXISTS {TABLE}_{name}")


# --- deriving ---------------------------------------------------------------------------------

Row = tuple[str, str, str | None, int, int, int, str]
COLUMNS = ("uuid", "kind", "unit_id", "at", "visible_from", "seq", "data")


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _occurrence_rows(uuid: str, kind: str, occurrences: list[Occurrence], seq: int | None = None) -> Iterator[Row]:
    """Rows of a record's occurrences, each ranked (``seq``) by its place in the record's list, or all at ``seq``
    when given (then read back in evidence order)."""
    for n, o in enumerate(occurrences):
        late = 1 if o.indicator in DEADLINE_INDICATORS else 0
        yield uuid, kind, o.unit_id, o.at, o.at + late, n if seq is None else seq, _json(list(o))


def _trigger_rows(uuid: str, triggers: list[dict[str, Any]]) -> Iterator[Row]:
    for t in triggers:
        late = 1 if t["rule"] == "R18" or t["id"].endswith(".unfiled") else 0
        at = t["opened_at"]
        # Stored as answered (RFC 3339): converting a district's thousand times was a third of the answer.
        yield uuid, "trigger", t["subject"]["unit_id"], at, at + late, 0, _json({**t, "opened_at": iso(at)})


def _span_rows(projection: str, uuid: str, units: set[str | None], first: int, evs: list[Ev]) -> Iterator[Row]:
    """The record's span, once per unit: ``visible_from`` its first business time, ``at`` and ``seq`` its last
    revising one (an event not :data:`SELF_DATED`), so the unit index finds the spans that end after a moment. A
    petition's span (``petition_span``) and a case's (``case_span``) end at their last event of any kind instead,
    their board rows changing with each, and keep the last revising one as ``seq`` (0 when nothing revises: the
    spans of the many records live for their boards alone then lie outside every range :data:`LIVE` reads by
    ``seq``); a case's is a kind apart, so the quota questions find their few without walking the officers'. None
    when nothing later revises (or, for a petition or case, happens to) the record: it is never live."""
    revised = max([first, *(e.occurred_at for e in evs if e.type not in SELF_DATED[projection])])
    last = max([first, *(e.occurred_at for e in evs)]) if projection in BOARDED else revised
    if last == first:
        return
    kind = {"petitions": "petition_span", "cases": "case_span"}.get(projection, "span")
    seq = revised if revised > first else 0
    for unit in sorted(u for u in units if u is not None):
        yield uuid, kind, unit, last, first, seq, "[]"


def _petition_row(p: PetitionState) -> Row:
    row = p.board_row()
    row["status"] = row["overdue"] = None  # judged against the clock when read (kept in their place: no re-ordering)
    row["_deadline"], row["_closed_in_time"] = p.deadline, p.closed_in_time
    at = p.rec.occurred_at
    # Closed petitions are a kind apart: the open board (the usual question) never reads them.
    kind = "petition_closed" if p.closed_at is not None else "petition"
    return p.rec.uuid, kind, p.unit_id, at, at, p.rec.position, _json(row)


def _case_row(case: Case) -> Row:
    """A case's row on the case board, derived as of for ever: its flags that a moment decides (a deadline
    passed: 有案不查, 督办逾期) are judged when read (:func:`cases`) from what is kept beside it."""
    row = case.board_row(None)  # its flags judged when read (kept in their place: no re-ordering)
    row["_major"], row["_wrongful"] = case.major_at is not None, case.wrongful
    row["_deadlines"], row["_filing_deadline"] = case.supervision_deadlines, case.filing_deadline
    row["_filed_in_time"] = case.filed_in_time
    at = case.rec.occurred_at
    kind = "case_closed" if row["status"] == "closed" else "case"
    return case.rec.uuid, kind, case.rec.unit_id, at, at, case.rec.position, _json(row)


def derive(db: Db, uuids: list[str], *, changes: bool = True) -> set[tuple[str, int]]:
    """Replace the rows of these records (at most :data:`CHUNK`) with what their facts now imply; with
    ``changes``, the units whose rows changed (before or after) with the years the rows fall in: the
    agreements' R6 and the districts' quota rows above them may change with them."""
    if not uuids:
        return set()
    k = Known(db, FOREVER, FOREVER, uuids=uuids)
    rows: list[Row] = []
    for case in k.cases:
        uuid = case.rec.uuid
        rows += _occurrence_rows(uuid, "deduction", k.case_occurrences(case))
        triggers, majors = k.case_triggers(case)
        rows += _trigger_rows(uuid, triggers)
        rows += [(uuid, "major", m.unit_id, m.at, m.at, 0, _json(list(m))) for m in majors]
        rows += _span_rows("cases", uuid, {case.rec.unit_id}, case.rec.occurred_at, case.events)
        rows.append(_case_row(case))
    for p in k.petitions:
        rows += _occurrence_rows(p.rec.uuid, "deduction", k.petition_occurrences(p))
        rows += _trigger_rows(p.rec.uuid, k.petition_triggers(p))
        rows.append(_petition_row(p))
        units = {p.rec.unit_id} | {e.data["to_unit_id"] for e in p.events if e.type == "diverted"}
        rows += _span_rows("petitions", p.rec.uuid, units, p.rec.occurred_at, p.events)
    for person in k.people.values():
        evs = k.person_events.get(person.uuid, [])
        rows += _occurrence_rows(person.uuid, "deduction", k.person_occurrences(person, evs))
        # Commendations keep the fold's order: by person (position), then by event (evidence, when read).
        rows += _occurrence_rows(person.uuid, "commendation", k.person_commendations(person, evs), person.position)
        rows += _trigger_rows(person.uuid, k.person_triggers(person, evs))
        at = person.occurred_at
        rows.append(
            (person.uuid, "officer", person.unit_id, at, at, person.position, _json(k.officer_row(person, evs)))
        )
        if person.data["post"] in LEADER_POSTS:
            leader = k.leader(person, evs)
            rows.append(
                (person.uuid, "leader", leader.unit_id, leader.registered, 0, leader.position, _json(list(leader)))
            )
        rows += _span_rows("people", person.uuid, {person.unit_id}, person.occurred_at, evs)
    marks = ", ".join("?" * len(uuids))
    # Spans, board and registry rows change no agreement's or district's rows: a record's items do.
    itemless = ", ".join("?" * len(ITEMLESS))
    sql = f"SELECT DISTINCT unit_id, at FROM {TABLE} WHERE uuid IN ({marks}) AND kind NOT IN ({itemless})"
    before = db.query(sql, [*uuids, *ITEMLESS]) if changes else []
    db.execute(f"DELETE FROM {TABLE} WHERE uuid IN ({marks})", uuids)
    db.insert_many(TABLE, COLUMNS, rows)
    if not changes:
        return set()
    changed = {(r[0], int(r[1])) for r in before} | {(row[2], row[3]) for row in rows if row[1] not in ITEMLESS}
    return {(unit, from_micros(at).year) for unit, at in changed if unit is not None}


def agreements(db: Db, units: set[tuple[str, int]] | None, after: int, upto: int) -> Iterator[list[Rec]]:
    """The target agreements (目标责任书) whose R6 must be derived again, grouped by city and year: those above
    any of ``units`` and those signed in positions (after, upto] (every agreement when ``units`` is ``None``).
    A group's agreements are tallied from one read of their city's rows for the year."""
    k = Known(db, FOREVER, FOREVER)
    if units is None:
        found = k.records("accountability", "agreement", scoped=False)
    else:
        k.scope = {a for u, _ in units for a in k.ancestors(u)}
        found = k.records("accountability", "agreement")
        sql = "SELECT uuid FROM proj_accountability_records WHERE type = 'agreement' AND position > ? AND position <= ?"
        signed = [r[0] for r in db.query(sql, (after, upto))]
        for i in range(0, len(signed), IN_LIST):
            found += Known(db, FOREVER, FOREVER, uuids=signed[i : i + IN_LIST]).agreements
    groups: dict[tuple[str, int], dict[str, Rec]] = {}
    for rec in found:
        city = k.root(rec.unit_id) if rec.unit_id else ""
        groups.setdefault((city, int(rec.data["year"])), {})[rec.uuid] = rec
    for key in sorted(groups):
        yield sorted(groups[key].values(), key=lambda rec: rec.position)


def derive_agreements(db: Db, group: list[Rec]) -> None:
    """Replace the R6 rows of one city's agreements for one year (a group of :func:`agreements`).

    The trigger falls on the year's end, so it is tallied as the fold tallies it at any ``as_of`` after that:
    every deduction and commendation of the territory in the year (deadline ones included, their deadlines
    being inside it), the missed receptions of all its months; it shows once the year is over."""
    if not group:
        return
    start, end = year_bounds(int(group[0].data["year"]))
    k = Known(db, from_micros(end), FOREVER, lean=True)
    city = k.root(group[0].unit_id) if group[0].unit_id else ""
    k.scope = k.subtree(city) | {city}
    prepare(k, (start, end))
    rows: list[Row] = []
    for agreement in group:
        k.__dict__["agreements"] = [agreement]
        rows += _trigger_rows(agreement.uuid, k.agreement_triggers())
    uuids = [agreement.uuid for agreement in group]
    for i in range(0, len(uuids), IN_LIST):
        some = uuids[i : i + IN_LIST]
        db.execute(f"DELETE FROM {TABLE} WHERE uuid IN ({', '.join('?' * len(some))})", some)
    db.insert_many(TABLE, COLUMNS, rows)


def quota_keys(db: Db, changed: set[tuple[str, int]] | None, after: int, upto: int) -> dict[int, set[str] | None]:
    """Per year, the districts (or cities) whose quota rows must be derived again (``None``: all of them): those
    above a changed unit, and those of units given quota or using land in positions (after, upto]. With
    ``changed`` ``None``, every year any major case or quota event falls in."""
    json_year = db.json_number("data", "year")
    quota_facts = "FROM proj_units_events WHERE type IN ('allocated', 'approved')"
    if changed is None:
        years = {int(r[0]) for r in db.query(f"SELECT DISTINCT {json_year} {quota_facts}")}
        rows = db.query(f"SELECT MIN(at), MAX(at) FROM {TABLE} WHERE kind = 'major'")
        if rows and rows[0][0] is not None:
            years |= set(range(from_micros(int(rows[0][0])).year, from_micros(int(rows[0][1])).year + 1))
        return dict.fromkeys(sorted(years))
    k = Known(db, FOREVER, FOREVER)
    by_uuid = {u.uuid: u.record_id for u in k.units.values()}
    pairs = set(changed)
    sql = f"SELECT uuid, {json_year} {quota_facts} AND position > ? AND position <= ?"
    for uuid, year in db.query(sql, (after, upto)):
        if uuid in by_uuid:
            pairs.add((by_uuid[uuid], int(year)))
    keys: dict[int, set[str]] = defaultdict(set)
    for unit, year in pairs:
        keys[year].add(unit)  # a unit given quota has a row of its own
        district = k.district_of(unit)
        if district is not None:
            keys[year].add(district)
    return dict(keys)


def derive_quota(db: Db, year: int, keys: set[str] | None) -> None:
    """Replace the quota ledger's and R4's deduction rows of these districts (all: ``None``) for one year, each
    built from the facts of its territory only, as a page of the answer is."""
    k = Known(db, FOREVER, FOREVER)
    if keys is not None:
        k = k.within(set().union(*(k.subtree(u) | {u} for u in keys)))
    start, end = year_bounds(year)
    found = majors(k, start, end)
    built = quota.stored_rows(k, year, found, k.quota_events(year))
    rows: list[Row] = []
    for kind, answer in built.items():
        for row, dating in answer:
            unit = row["unit_id"]
            # A row with no evidence has no figures: answers make it up (every district has one), none is stored.
            if (keys is None or unit in keys) and row["evidence" if kind == "quota" else "items"]:
                rows.append((f"{kind}:{year}:{unit}", kind, unit, start, 0, 0, _json(row)))
                rows.append((f"{DATED[kind]}:{year}:{unit}", DATED[kind], unit, start, 0, 0, _json(dating)))
    kinds = [*DATED, *DATED.values()]
    if keys is None:
        db.execute(f"DELETE FROM {TABLE} WHERE kind IN ({', '.join('?' * len(kinds))}) AND at = ?", (*kinds, start))
    else:
        ids = [f"{kind}:{year}:{unit}" for kind in kinds for unit in sorted(keys)]
        for i in range(0, len(ids), IN_LIST):
            some = ids[i : i + IN_LIST]
            db.execute(f"DELETE FROM {TABLE} WHERE uuid IN ({', '.join('?' * len(some))})", some)
    db.insert_many(TABLE, COLUMNS, rows)


def formatted(db: Db) -> bool:
    """Whether the view's rows are in this engine's :data:`FORMAT` (its marker is written by a full derivation)."""
    rows = db.query(f"SELECT at FROM {TABLE} WHERE uuid = ? AND kind = 'format'", (FORMAT_ROW,))
    return bool(rows) and int(rows[0][0]) == FORMAT


def mark_formatted(db: Db) -> None:
    """After a full derivation: every record's rows are in this engine's format."""
    db.execute(f"DELETE FROM {TABLE} WHERE uuid = ?", (FORMAT_ROW,))
    db.insert_many(TABLE, COLUMNS, [(FORMAT_ROW, "format", None, FORMAT, 0, 0, "[]")])


def touched(db: Db, after: int, upto: int) -> list[str] | None:
    """The records with facts in positions (after, upto], sorted; ``None`` when every record must be derived
    again (the first run, or a policy fact in the range)."""
    if after == 0 or db.query(
        "SELECT 1 FROM proj_policy_records WHERE position > ? AND position <= ?"
        " UNION ALL SELECT 1 FROM proj_policy_events WHERE position > ? AND position <= ? LIMIT 1",
        (after, upto, after, upto),
    ):
        return None
    found: set[str] = set()
    for name in ("cases", "people", "petitions"):
        for table in (f"proj_{name}_records", f"proj_{name}_events"):
            found.update(
                r[0] for r in db.query(f"SELECT uuid FROM {table} WHERE position > ? AND position <= ?", (after, upto))
            )
    return sorted(found)


def every_record(db: Db) -> Iterator[list[str]]:
    """Every record, in chunks of :data:`CHUNK` read page by page (by the uuid index): memory stays flat."""
    for name in ("cases", "people", "petitions"):
        last = ""
        while True:
            sql = f"SELECT uuid FROM proj_{name}_records WHERE uuid > ? ORDER BY uuid LIMIT {CHUNK}"
            page = [r[0] for r in db.query(sql, (last,))]
            if not page:
                break
            yield page
            last = page[-1]


def chunked(uuids: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(uuids), CHUNK):
        yield uuids[i : i + CHUNK]


# --- answering --------------------------------------------------------------------------------


def _where(k: Known, kinds: tuple[str, ...]) -> tuple[str, list[Any]]:
    sql = f" WHERE kind IN ({', '.join('?' * len(kinds))}) AND visible_from <= ?"
    params: list[Any] = [*kinds, k.as_of]
    if k.scope is not None:
        units = sorted(k.scope)
        sql += f" AND unit_id IN ({', '.join('?' * len(units)) or 'NULL'})"
        params += units
    return sql, params


#: Per question, the span rows of the records it folds rather than reads (:func:`live`): any record revised after
#: ``as_of`` (a petition's or case's span ends at its last event, its last revising one kept as ``seq``); for the
#: petition board, a petition with any event after it, and for the case board a case; for the quota questions'
#: major cases, a case revised after it (a case is major from its report or first declaration, whatever follows).
LIVE = {
    # seq > as_of means at > as_of too (a span's last event is at or after its last revising one): left out, so
    # the (kind, seq, visible_from, uuid) index answers alone (the city's month's end: 7-11 -> 0.3-0.8 ms).
    "records": f"kind IN {SPANS} AND seq > ?",
    "board": "kind = 'petition_span' AND at > ?",
    "cases": "kind = 'case_span' AND seq > ?",
    "case_board": "kind = 'case_span' AND at > ?",
}


def live(k: Known, late: Iterable[str] = (), *, of: str = "records") -> Known | None:
    """The fold, at ``k``'s moment, of the territory's records that existed at ``k.as_of`` and that the question
    ``of`` (:data:`LIVE`) cannot read from their rows: revised after it (:data:`SELF_DATED`) or, for the board,
    with any event after it; and of the ``late`` ones (facts recorded after ``k.known_at``, ``projections.late``).
    ``None`` when they are more than :data:`FOLD_LIMIT`: fold everything then."""
    spans = revised(k, of)
    late = set(late)
    uuids = sorted({uuid for uuid, _ in spans} | late)
    if len(uuids) > FOLD_LIMIT:
        return None
    folded = k.narrowed(None, uuids)
    if not late:  # each record's projection is its span's: a projection with none of them is not read
        folded.projections = {}
        for uuid, kind in sorted(spans):
            folded.projections.setdefault(SPAN_OF[kind], []).append(uuid)
    return folded


def revised(k: Known, of: str = "records") -> list[tuple[str, str]]:
    """The territory's records that existed at ``k.as_of`` and whose rows the question ``of`` (:data:`LIVE`) cannot
    read as they stood then (revised after it, or for the board with any event after it), each with its span's
    kind."""
    sql = f"SELECT DISTINCT uuid, kind FROM {TABLE} WHERE visible_from <= ? AND {LIVE[of]}"
    params: list[Any] = [k.as_of] + [k.as_of] * LIVE[of].count("?")
    if k.scope is not None:
        units = sorted(k.scope)
        sql += f" AND unit_id IN ({', '.join('?' * len(units)) or 'NULL'})"
        params += units
    return [(r[0], r[1]) for r in k.db.query(sql, params)]


def _skipped(folded: Known | None) -> frozenset[str]:
    """The records a past question folds rather than reads (none for a question about now)."""
    return frozenset(folded.uuids or ()) if folded is not None else frozenset()


def _occurrences(
    k: Known, kind: str, window: tuple[int, int] | None = None, folded: Known | None = None
) -> list[tuple[int, Occurrence]]:
    sql, params = _where(k, (kind,))
    if window:
        sql += " AND at >= ? AND at < ?"
        params += list(window)
    skip = _skipped(folded)
    rows = k.db.query(f"SELECT uuid, seq, data FROM {TABLE}{sql}", params)
    return [(int(seq), Occurrence(*orjson.loads(data))) for uuid, seq, data in rows if uuid not in skip]


def deduction_counts(k: Known, units: Collection[str], window: tuple[int, int]) -> dict[str, int]:
    """How many deductions of the ``window`` (a year) up to ``k.as_of`` each of the ``units`` has stored (its own,
    not those of the units below it): what a scores page weighs its rows by before working them out. Rows not yet
    visible at ``k.as_of`` are counted too, so the (kind, unit_id, at) index answers alone (the city's 2,162 units
    on SQLite at a million events: 3.6 ms, against 21 reading each row's visibility): an estimate as of a past
    moment. Nothing from a store without the view."""
    ordered = sorted(units)
    span = [window[0], min(window[1], k.as_of + 1)]
    found: dict[str, int] = {}
    for i in range(0, len(ordered), IN_LIST):
        some = ordered[i : i + IN_LIST]
        sql = (
            f"SELECT unit_id, COUNT(*) FROM {TABLE} WHERE kind = 'deduction' AND at >= ? AND at < ?"
            f" AND unit_id IN ({', '.join('?' * len(some))}) GROUP BY unit_id"
        )
        try:
            found.update((unit, int(n)) for unit, n in k.db.query(sql, [*span, *some]))
        except k.db.errors:
            return {}
    return found


def prepare(k: Known, window: tuple[int, int] | None = None, folded: Known | None = None) -> None:
    """Fill the fold's leaders, occurrences and commendations from the stored rows (plus the missed receptions
    worked out up to ``k.as_of``), so ``k.score`` and R6 answer from them. With a ``window``, only that
    year's occurrences. For a past ``as_of``, the records of ``folded`` (:func:`live`) come from its fold."""
    _leaders(k, folded)
    deductions = _occurrences(k, "deduction", window, folded)
    commendations = _occurrences(k, "commendation", window, folded)
    if folded is not None:
        start, end = window or (0, FOREVER_MICROS)
        found: list[tuple[int, Occurrence]] = []
        for case in folded.cases:
            found += enumerate(folded.case_occurrences(case))
        for p in folded.petitions:
            found += enumerate(folded.petition_occurrences(p))
        for person in folded.people.values():
            evs = folded.person_events.get(person.uuid, [])
            found += enumerate(folded.person_occurrences(person, evs))
            # Ranked by the person's position, as the view stores them.
            commendations += [
                (person.position, o) for o in folded.person_commendations(person, evs) if start <= o.at < end
            ]
        deductions += [(n, o) for n, o in found if start <= o.at < end]
    # A year's score needs that year's months alone: every month since each leader's registration was 193 of
    # a page's 299 ms at 1M events (the page of the 47 cities' rows, profiled on SQLite).
    deductions += [(0, o) for o in k.missed_receptions(window)]
    deductions.sort(key=lambda pair: (pair[1].at, pair[1].evidence, pair[0]))
    k.__dict__["occurrences"] = [o for _, o in deductions]
    commendations.sort(key=lambda pair: (pair[0], pair[1].evidence))
    k.__dict__["commendations"] = [o for _, o in commendations]


def _leaders(
    k: Known, folded: Known | None = None, units: Collection[str] | None = None, post: str | None = None
) -> None:
    """Fill the fold's leaders from the stored rows (registered by ``as_of``), and from ``folded``'s fold; of the
    ``units`` and (at least) the ``post`` only, when named (a leader's row holds every month of receptions:
    decoding the city's is tens of ms)."""
    sql, params = _where(k, ("leader",))
    sql = f"SELECT seq, uuid, data FROM {TABLE}{sql} AND at <= ?"
    params.append(k.as_of)
    if post is not None:
        # A text match, not a JSON one (PostgreSQL parsed every row: 3x slower): a superset of the post's rows,
        # as an id could hold the word; Known.principals keeps the post's own.
        sql += " AND data LIKE ?"
        params.append(f'%"{post}"%')
    if units is None:
        rows = k.db.query(sql, params)
    else:
        ordered = sorted(units)
        rows = []
        for i in range(0, len(ordered), IN_LIST):
            some = ordered[i : i + IN_LIST]
            rows += k.db.query(f"{sql} AND unit_id IN ({', '.join('?' * len(some))})", [*params, *some])
    skip = _skipped(folded)
    rows.sort(key=lambda row: row[0])
    leaders = [Leader(*orjson.loads(data)) for _, uuid, data in rows if uuid not in skip]
    if folded is not None:
        more = [
            leader
            for leader in folded.leaders
            if (units is None or leader.unit_id in units) and (post is None or leader.post == post)
        ]
        leaders = sorted([*leaders, *more], key=lambda leader: leader.position)
    k.__dict__["leaders"] = leaders
    k.__dict__.pop("principals", None)  # derived from the leaders just replaced


def _leader_triggers(k: Known, folded: Known | None, majors: list[MajorCase]) -> list[dict[str, Any]]:
    """R4 for the principal leaders of these major cases' units (:meth:`Known.leader_triggers`), the principal
    leaders of those units (and of the governments they lie in) read for them alone."""
    if not majors:
        return []
    units = {m.unit_id for m in majors} | {g for m in majors if (g := k.structure.government_of(m.unit_id))}
    _leaders(k, folded, units, Post.PRINCIPAL_LEADER)
    return k.leader_triggers(majors)


def triggers(
    k: Known,
    folded: Known | None = None,
    stale: Collection[int] = (),
    *,
    start: int | None = None,
    batch: int | None = None,
    after: tuple[str, str] | None = None,
) -> Iterator[dict[str, Any]]:
    """The triggers as of ``k.as_of``, in the order they opened (:meth:`Known.decided`): the stored ones whose time
    had come (R6 among them) and R4 for the leaders of major cases' units, with decisions; for a past ``as_of``,
    those of ``folded``'s records (:func:`live`) from its fold, and R6 of the agreements of the ``stale`` years
    folded from their territories' facts.

    For a page, the triggers opened from ``start`` (micros) on, the stored rows read in time order ``batch`` at a
    time (twice as many each time): a page of the city's ~90,000 reads a few hundred rows, as the caller stops
    taking once it has its page. A batch holds a moment whole (a year's end opens ~1,900 R6 triggers at once):
    its triggers after the cursor ``after`` (``opened_at``, ``id``) are decided :data:`DECIDED_AT_ONCE` at a time."""
    skip = _skipped(folded)
    if stale:  # R6 of the years with facts recorded after known_at: folded again below
        skip |= {a.uuid for a in k.agreements if int(a.data["year"]) in stale}
    extra: list[dict[str, Any]] = []  # triggers not read from rows, merged into the batch of their moment
    if folded is not None:
        majors: list[MajorCase] = []
        for case in folded.cases:
            some, major = folded.case_triggers(case)
            extra += some
            majors += major
        extra += _leader_triggers(k, folded, majors)
        for p in folded.petitions:
            extra += folded.petition_triggers(p)
        for person in folded.people.values():
            extra += folded.person_triggers(person, folded.person_events.get(person.uuid, []))
        for year in sorted(stale):
            extra += _agreement_triggers(k, folded, year)
    extra.sort(key=lambda t: t["opened_at"], reverse=True)  # micros still (decided() writes them out): popped
    for rows, upto in _trigger_batches(k, start, batch):
        found: list[tuple[str | None, dict[str, Any]]] = []  # (the agreement of an R6 to check, trigger)
        majors = []
        for uuid, kind, data in rows:
            if uuid in skip:
                continue
            if kind == "major":
                majors.append(MajorCase(*orjson.loads(data)))
                continue
            trigger = orjson.loads(data)
            found.append((uuid if folded is not None and trigger["rule"] == "R6" else None, trigger))
        found += [(None, t) for t in _leader_triggers(k, folded, majors)]
        while extra and (upto is None or extra[-1]["opened_at"] <= upto):
            found.append((None, extra.pop()))
        if batch is None:
            yield from k.decided(_signed(k, found))
        else:
            yield from _decided_in_turn(k, found, after)


#: How many of a page's batch's triggers are decided (and R6 checked) at a time.
DECIDED_AT_ONCE = 128


def _decided_in_turn(
    k: Known, found: list[tuple[str | None, dict[str, Any]]], after: tuple[str, str] | None
) -> Iterator[dict[str, Any]]:
    """A batch's triggers after the cursor ``after`` in their order, decided :data:`DECIDED_AT_ONCE` at a time: a
    page starting at a year's end decides the hundred it shows, not the moment's ~1,900 R6 triggers (28 ms warm
    at 1M events)."""
    keyed = [(_opened_iso(pair[1]), pair[1]["id"], pair) for pair in found]
    keyed.sort(key=lambda entry: (entry[0], entry[1]))
    if after is not None:
        keyed = [entry for entry in keyed if (entry[0], entry[1]) > after]
    for i in range(0, len(keyed), DECIDED_AT_ONCE):
        yield from k.decided(_signed(k, [pair for _, _, pair in keyed[i : i + DECIDED_AT_ONCE]]))


def _opened_iso(trigger: dict[str, Any]) -> str:
    """A trigger's ``opened_at`` as the answer writes it (a stored row's is written out; a fold's is micros)."""
    opened = trigger["opened_at"]
    return opened if isinstance(opened, str) else iso(opened)


def _signed(k: Known, found: list[tuple[str | None, dict[str, Any]]]) -> list[dict[str, Any]]:
    """These triggers, of the stored R6 ones among them (those paired with their agreements' uuids) only those of
    agreements signed as ``k`` asks: R6 is stored once an agreement's year is over, and a past question counts only
    the agreements known by then."""
    agreed = sorted({uuid for uuid, _ in found if uuid is not None})
    signed = k.of_records(agreed).known_ids("accountability", "agreement") if agreed else set()
    return [trigger for uuid, trigger in found if uuid is None or uuid in signed]


def _trigger_batches(
    k: Known, start: int | None, batch: int | None
) -> Iterator[tuple[list[tuple[str, str, str]], int | None]]:
    """The stored trigger and major-case rows (``uuid, kind, data``) of ``k``'s territory from ``start`` on, in
    batches of whole moments (``at``), each with the last moment it holds (``None``: all the rest). Without a
    ``batch`` size, all of them at once, unordered."""
    if batch is None:
        sql, params = _where(k, ("trigger", "major"))
        yield k.db.query(f"SELECT uuid, kind, data FROM {TABLE}{sql}{_from(start, params)}", params), None
        return
    low = start
    while True:
        sql, params = _where(k, ("trigger",))
        sql += _from(low, params)
        rows = k.db.query(f"SELECT uuid, kind, data, at FROM {TABLE}{sql} ORDER BY at LIMIT ?", [*params, batch])
        upto = int(rows[-1][3]) if len(rows) == batch else None
        if upto is not None:  # the last moment read may hold more rows than the batch had room for: read it whole
            rows = [row for row in rows if row[3] < upto]
            rows += k.db.query(f"SELECT uuid, kind, data, at FROM {TABLE}{sql} AND at = ?", [*params, upto])
        sql, params = _where(k, ("major",))
        sql += _from(low, params)
        if upto is not None:
            sql += " AND at <= ?"
            params.append(upto)
        majors = k.db.query(f"SELECT uuid, kind, data FROM {TABLE}{sql}", params)
        yield [(uuid, kind, data) for uuid, kind, data, _ in rows] + majors, upto
        if upto is None:
            return
        low, batch = upto + 1, batch * 2


def _from(start: int | None, params: list[Any]) -> str:
    """The condition ``at >= start`` (none without one), its parameter added to ``params``."""
    if start is None:
        return ""
    params.append(start)
    return " AND at >= ?"


def _agreement_triggers(k: Known, folded: Known, year: int) -> list[dict[str, Any]]:
    """R6 of ``k``'s agreements of one year at ``k``'s moment, tallied as a score is (:func:`prepare`: the stored rows
    and ``folded``'s fold) over ``k``'s territory, which holds every such agreement's territory."""
    window = year_bounds(year)
    agreements = [a for a in k.agreements if int(a.data["year"]) == year]
    if not agreements or k.as_of < window[1]:
        return []
    part = Known(k.db, from_micros(k.as_of), from_micros(k.known_at), lean=True, window=window)
    part.scope = k.scope
    prepare(part, window, folded)
    part.__dict__["agreements"] = agreements
    return part.agreement_triggers()


def majors(k: Known, start: int, end: int, folded: Known | None = None) -> list[MajorCase]:
    """The cases that became major in [start, end) (R4's quota deductions), in the order they were reported; for a
    past ``as_of``, those of ``folded``'s cases (:func:`live` of ``cases``) from its fold."""
    sql, params = _where(k, ("major",))
    sql += " AND at >= ? AND at < ?"
    skip = _skipped(folded)
    rows = k.db.query(f"SELECT uuid, data FROM {TABLE}{sql}", [*params, start, end])
    found = [MajorCase(*orjson.loads(data)) for uuid, data in rows if uuid not in skip]
    if folded is not None:
        found += [m for m in folded.majors(start, end) if k.scope is None or m.unit_id in k.scope]
    found.sort(key=lambda m: m.evidence[0])
    return found


def district_units(k: Known, kind: str, year: int) -> set[str]:
    """The districts (and other units) with a stored quota or deduction row for the year."""
    sql = f"SELECT unit_id FROM {TABLE} WHERE kind = ? AND at = ?"
    return {r[0] for r in k.db.query(sql, (kind, year_bounds(year)[0]))}


def district_rows(
    k: Known, kind: str, year: int, keys: list[str] | None = None, *, dated: bool = False
) -> dict[str, dict[str, Any]]:
    """The stored quota (``kind`` ``quota``) or R4 deduction (``deductions``) rows of a year, by district; ``dated``,
    each with what dates its figures (``quota.stored_rows``, kept apart: an answer about now never decodes it)."""
    kinds = [kind, DATED[kind]] if dated else [kind]
    sql = f"SELECT unit_id, data FROM {TABLE} WHERE kind IN ({', '.join('?' * len(kinds))}) AND at = ?"
    params: list[Any] = [*kinds, year_bounds(year)[0]]
    if keys is not None:
        sql += f" AND unit_id IN ({', '.join('?' * len(keys)) or 'NULL'})"
        params += keys
    rows: dict[str, dict[str, Any]] = {}
    for unit, data in k.db.query(sql, params):
        rows.setdefault(unit, {}).update(orjson.loads(data))
    return rows


def petitions(
    k: Known,
    status: str | None = None,
    folded: Known | None = None,
    *,
    start: int | None = None,
    batch: int | None = None,
) -> Iterator[dict[str, Any]]:
    """The board as of ``k.as_of``, in registration order, each row's status judged against it; for a past
    ``as_of``, the rows of ``folded``'s petitions (:func:`live` of the ``board``) from its fold. For a page, the
    rows registered after position ``start``, read ``batch`` at a time per kind of row (open, closed)."""
    kinds = {"open": ("petition",), "overdue": ("petition",), "closed": ("petition_closed",)}
    wanted = kinds.get(status or "", ("petition", "petition_closed"))
    return _board(
        k, wanted, _board_rows, folded, "petitions", lambda part: (p.board_row() for p in part.petitions), start, batch
    )


#: How a board's stored rows (``uuid, kind, data``) become its rows, those of the records folded skipped.
StoredRows = Callable[[Known, Iterable[tuple[str, str, str]], frozenset[str]], Iterator[dict[str, Any]]]


def _board(
    k: Known,
    kinds: tuple[str, ...],
    stored_rows: StoredRows,
    folded: Known | None,
    projection: str,
    board: Callable[[Known], Iterable[dict[str, Any]]],
    start: int | None,
    batch: int | None,
) -> Iterator[dict[str, Any]]:
    """A board's stored rows of these ``kinds`` and, for a past moment, the ``board`` rows of ``folded``'s records
    (of this fact ``projection``) from its fold, merged in registration order; after ``start``, read ``batch`` at a
    time per kind (two ranges of the (kind, seq) index, merged here rather than sorted by the store)."""
    skip = _skipped(folded)
    if batch is None:
        stored = [stored_rows(k, _in_seq(k, kinds, start), skip)]
    else:
        stored = [stored_rows(k, _by_seq(k, kind, start, batch), skip) for kind in kinds]
    if folded is None:
        return heapq.merge(*stored, key=_registered)
    if batch is None:
        rows = sorted(board(folded), key=_registered)  # as the fold lists them
        return heapq.merge(*stored, rows, key=_registered)
    return heapq.merge(*stored, _folded_board(folded, projection, board, start, batch), key=_registered)


def _folded_board(
    folded: Known, projection: str, board: Callable[[Known], Iterable[dict[str, Any]]], start: int | None, batch: int
) -> Iterator[dict[str, Any]]:
    """The ``board`` rows of ``folded``'s records registered after position ``start``, in registration order, folded
    ``batch`` records at a time: a page folds those it may show, not the ~2,000 a month's end has revised."""
    found: list[tuple[int, str]] = []
    uuids = folded.uuids or []
    for i in range(0, len(uuids), IN_LIST):
        some = uuids[i : i + IN_LIST]
        sql = f"SELECT position, uuid FROM proj_{projection}_records WHERE uuid IN ({', '.join('?' * len(some))})"
        found += [(int(position), uuid) for position, uuid in folded.db.query(sql, some)]
    ordered = [uuid for position, uuid in sorted(found) if start is None or position > start]
    # A few at first: they are a few percent of the board, so a page shows a handful of them.
    size = min(batch, FOLDED_BATCH)
    while ordered:
        part = folded.of_records(ordered[:size])
        del ordered[:size]
        size = min(2 * size, batch)
        yield from sorted(board(part), key=_registered)


def cases(
    k: Known,
    status: str | None = None,
    folded: Known | None = None,
    *,
    start: int | None = None,
    batch: int | None = None,
) -> Iterator[dict[str, Any]]:
    """The case board as of ``k.as_of``, from the stored rows, in registration order, each row's flags judged
    against it; for a past ``as_of``, the rows of ``folded``'s cases (:func:`live` of the ``case_board``) from its
    fold. For a page, the rows registered after position ``start``, read ``batch`` at a time per kind (open,
    closed)."""
    kinds = {"open": ("case",), "closed": ("case_closed",)}.get(status or "", ("case", "case_closed"))
    return _board(
        k, kinds, _case_rows, folded, "cases", lambda part: (c.board_row(k.as_of) for c in part.cases), start, batch
    )


def _case_rows(k: Known, rows: Iterable[tuple[str, str, str]], skip: frozenset[str]) -> Iterator[dict[str, Any]]:
    for uuid, kind, data in rows:
        if uuid in skip:
            continue
        row = orjson.loads(data)
        major, wrongful, deadlines = row.pop("_major"), row.pop("_wrongful"), row.pop("_deadlines")
        filing_deadline, in_time = row.pop("_filing_deadline"), row.pop("_filed_in_time")
        unfiled = filing_deadline < k.as_of and not in_time
        row["flags"] = case_flags(major, deadlines, kind == "case", unfiled, wrongful, k.as_of)
        yield row


def officers(k: Known, start: int | None = None, batch: int | None = None) -> Iterator[dict[str, Any]]:
    """The officer registry about now, from the stored rows, in registration order: those registered after position
    ``start``, read ``batch`` at a time (all at once without one)."""
    rows = _in_seq(k, ("officer",), start) if batch is None else _by_seq(k, "officer", start, batch)
    return (orjson.loads(data) for _, _, data in rows)


def _in_seq(k: Known, kinds: tuple[str, ...], start: int | None) -> list[tuple[str, str, str]]:
    """The stored rows (``uuid, kind, data``) of these kinds in ``k``'s territory, in ``seq`` order (a board or
    registry row's registration position), all of those after ``start`` at once."""
    sql, params = _where(k, kinds)
    if start is not None:
        sql += " AND seq > ?"
        params.append(start)
    return k.db.query(f"SELECT uuid, kind, data FROM {TABLE}{sql} ORDER BY {_seq_order(k)}", params)


def _seq_order(k: Known) -> str:
    """How the board's rows are ordered: by the ``(kind, seq)`` index for the city; for a territory, by its units'
    index and a sort (``+seq``: SQLite walked the city's rows in order to find a district's, 19 ms against 1.2)."""
    return "seq" if k.scope is None else "+seq"


def _registered(row: dict[str, Any]) -> int:
    position: int = row["evidence"][0]
    return position


def _by_seq(k: Known, kind: str, start: int | None, batch: int) -> Iterator[tuple[str, str, str]]:
    """The stored rows (``uuid, kind, data``) of one kind in ``k``'s territory in ``seq`` order after ``start``, read
    ``batch`` at a time (twice as many each time)."""
    low = start
    while True:
        sql, params = _where(k, (kind,))
        if low is not None:
            sql += " AND seq > ?"
            params.append(low)
        query = f"SELECT uuid, kind, data, seq FROM {TABLE}{sql} ORDER BY {_seq_order(k)} LIMIT ?"
        rows = k.db.query(query, [*params, batch])
        for uuid, found, data, _ in rows:
            yield uuid, found, data
        if len(rows) < batch:
            return
        low, batch = int(rows[-1][3]), batch * 2


def _board_rows(k: Known, rows: Iterable[tuple[str, str, str]], skip: frozenset[str]) -> Iterator[dict[str, Any]]:
    """Board rows from stored ones, their status judged against ``k.as_of``."""
    for uuid, kind, data in rows:
        if uuid in skip:
            continue
        row = orjson.loads(data)
        deadline, in_time = row.pop("_deadline"), row.pop("_closed_in_time")
        overdue = deadline < k.as_of and not in_time
        row["status"] = "closed" if kind == "petition_closed" else "overdue" if overdue else "open"
        row["overdue"] = overdue
        yield row
