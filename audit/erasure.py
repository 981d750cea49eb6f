"""Personal data destroyed outside the ledger (个人信息被擅自删除).

A record's personal fields are sealed with its own data key, stored wrapped in ``ledger_personal_keys`` in the
transaction of its first sealed event; erasure (crypto-shredding) records ``PersonalDataErased`` and then deletes
that key. The keys table is no event table, so the chain cannot vouch for it: deleting a key by hand makes the
record's personal data read as erased, as a lawful erasure's does, with nothing in the log to say who did it.
``ledger verify`` asks this module for the first such record.
"""

from __future__ import annotations

from eventsourcing.utils import get_topic

from audit.db import AuditDB
from domain.people import Person
from domain.petitions import Petition
from store.recorders import KEYS_TABLE

#: The events that seal personal data (each stores its record's data key in the same transaction), and the events
#: that alone may destroy that key.
SEALING = tuple(get_topic(cls) for cls in (Petition.Registered, Person.MisconductReported))
ERASURES = tuple(get_topic(cls) for cls in (Petition.PersonalDataErased, Person.PersonalDataErased))


def unlogged_erasure(db: AuditDB) -> tuple[int, str] | None:
    """The first record (by its first sealed event's position) whose data key is gone with no erasure recorded for
    it, and why; None when there is none. One query: the store's indexes (events by originator, keys by subject)
    answer it, nothing is held in memory."""
    if not db.table_exists(KEYS_TABLE):
        return None
    pos, events = db.position_column, db.events_table
    sealing, erasures = ", ".join("?" * len(SEALING)), ", ".join("?" * len(ERASURES))
    rows = db.query(
        f"SELECT MIN(e.{pos}) FROM {events} e WHERE e.topic IN ({sealing})"
        f" AND NOT EXISTS (SELECT 1 FROM {KEYS_TABLE} k WHERE k.subject = {db.subject_of_originator('e.')})"
        f" AND NOT EXISTS (SELECT 1 FROM {events} x WHERE x.originator_id = e.originator_id"
        f" AND x.topic IN ({erasures}))",
        (*SEALING, *ERASURES),
    )
    if rows[0][0] is None:
        return None
    position = int(rows[0][0])
    return position, (
        f"the personal-data key of the record whose sealed event is at position {position} is gone, and no erasure "
        "of it is recorded: its personal data was destroyed outside the ledger"
    )
