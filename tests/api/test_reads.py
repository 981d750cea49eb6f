"""Record reads as known at a recording time (按登记时间回看), the policy's recording times, agreement reads.

The history below is recorded on a clock the test moves, so every recording time (登记时间) is known
exactly; several entries are back-dated (迟录), so a business time (业务时间) alone cannot tell what
was known when.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.auth import issue_token
from domain.application import Ledger
from domain.base import LEDGER_EPOCH
from domain.errors import RuleViolation
from domain.vocabulary import (
    Channel,
    ClueSource,
    EscalationLevel,
    Meeting,
    PetitionCategory,
    Post,
    Role,
    UnitKind,
    Violation,
)
from projections.engine import catch_up
from projections.queries import Queries
from tests.api.conftest import auth
from tests.projections.conftest import Clock, at

#: What an auditor asks: as known on 3 January, before the back-dated entries were recorded.
JAN_3 = at("2025-01-03").isoformat()
JULY = at("2025-07-01").isoformat()


@pytest.fixture
def history(ledger: Ledger) -> Clock:
    """莱芜市 and 钢城区 registered on 1 January; a case, a petition and a person's record opened by 2 January;
    then, recorded weeks or months later but dated 2 January: a quota allocation to the city (15 Jan), the
    case declared major, a meeting on the petition, a training (1 Feb), and 审计镇 with its agreement (1 Jun)."""
    clock = Clock(at("2025-01-01T09:00"))
    ledger.clock = clock
    jan_2 = at("2025-01-02T10:00")
    ledger.register_unit("laiwu", "莱芜市", UnitKind.CITY, None, actor="setup", occurred_at=clock.now)
    ledger.register_unit("gangcheng", "钢城区", UnitKind.DISTRICT, "laiwu", actor="setup", occurred_at=clock.now)
    ledger.register_person("王执法", "gangcheng", Post.ENFORCEMENT_OFFICER, person_id="p1", actor="setup")
    clock.now = at("2025-01-02T11:00")
    ledger.report_clue("gangcheng", Violation.ILLEGAL_LAND_USE, ClueSource.PATROL, case_id="c1", actor="o")
    ledger.register_petition(
        "gangcheng", Channel.VISIT, 1, "赵大娘", "补偿", PetitionCategory.COMPENSATION, petition_id="x1", actor="c"
    )
    clock.now = at("2025-01-15")
    ledger.allocate_quota("laiwu", 2025, Decimal(100), actor="admin", occurred_at=jan_2)
    clock.now = at("2025-02-01")
    ledger.declare_major("c1", "面积大", actor="o", occurred_at=at("2025-01-02T12:00"))
    ledger.hold_meeting("x1", Meeting.HANDLING_UNIT, actor="c", occurred_at=at("2025-01-02T12:00"))
    ledger.record_training("p1", "执法规范", actor="s", occurred_at=jan_2)
    clock.now = at("2025-06-01")
    ledger.register_unit("aud-town", "审计镇", UnitKind.TOWNSHIP, "gangcheng", actor="setup", occurred_at=jan_2)
    ledger.sign_agreement(2025, "gangcheng", "aud-town", actor="admin", occurred_at=jan_2)
    clock.now = at("2025-08-01")
    return clock


def read(client: TestClient, token: str, path: str, **params: str) -> Any:
    return client.get(path, params=params, headers=auth(token))


def test_known_at_alone_reads_each_record_as_then_known(client: TestClient, ledger: Ledger, history: Clock) -> None:
    auditor = issue_token(ledger, "auditor-1", Role.AUDITOR, actor="setup")

    assert read(client, auditor, "/v1/units/aud-town", known_at=JAN_3).status_code == 404  # not recorded yet
    assert read(client, auditor, "/v1/units/aud-town", as_of=JAN_3).status_code == 200  # though dated before
    assert read(client, auditor, "/v1/units/aud-town", known_at=JULY).json()["version"] == 1
    laiwu = read(client, auditor, "/v1/units/laiwu", known_at=JAN_3).json()
    assert laiwu["version"] == 1 and laiwu["allocated"] == {}
    assert read(client, auditor, "/v1/units/laiwu").json()["allocated"] == {"2025": 100}
    both = read(client, auditor, "/v1/units/laiwu", as_of=JAN_3, known_at=at("2025-01-20").isoformat()).json()
    assert both["version"] == 2  # recorded by 20 January, dated 2 January

    case = read(client, auditor, "/v1/cases/c1", known_at=JAN_3).json()
    assert case["version"] == 1 and not case["declared_major"]
    assert read(client, auditor, "/v1/cases/c1").json()["declared_major"]
    assert read(client, auditor, "/v1/cases/c1", known_at=at("2025-01-02").isoformat()).status_code == 404

    petition = read(client, auditor, "/v1/petitions/x1", known_at=JAN_3).json()
    assert petition["version"] == 1 and petition["meetings"] == []
    assert read(client, auditor, "/v1/petitions/x1").json()["meetings"] == ["handling_unit"]

    person = read(client, auditor, "/v1/people/p1", known_at=JAN_3).json()
    assert person["version"] == 1 and person["trainings"] == []
    assert read(client, auditor, "/v1/people/p1").json()["trainings"] == ["执法规范"]

    refused = read(client, auditor, "/v1/units/laiwu", version="1", known_at=JAN_3)
    assert refused.status_code == 422 and refused.json()["errors"][0]["loc"] == ["query", "version"]


def test_the_unit_list_as_known_at_shows_each_row_as_then_known(
    client: TestClient, ledger: Ledger, history: Clock
) -> None:
    auditor = issue_token(ledger, "auditor-1", Role.AUDITOR, actor="setup")

    then = read(client, auditor, "/v1/units", known_at=JAN_3).json()["items"]
    assert [(u["id"], u["version"], u["allocated"]) for u in then] == [("laiwu", 1, {}), ("gangcheng", 1, {})]
    now = read(client, auditor, "/v1/units").json()["items"]
    assert [(u["id"], u["version"]) for u in now] == [("laiwu", 2), ("gangcheng", 1), ("aud-town", 1)]


def test_each_policy_version_shows_when_its_event_was_recorded(
    client: TestClient, ledger: Ledger, history: Clock
) -> None:
    admin, auditor = (issue_token(ledger, f"{r.value}-1", r, actor="setup") for r in (Role.ADMIN, Role.AUDITOR))
    amendment = {"effective_from": at("2025-03-01").isoformat(), "params": {"handling_days": 50}}
    assert client.post("/v1/policy/amendments", json=amendment, headers=auth(admin)).status_code == 200

    events = read(client, auditor, "/v1/audit/events", kind="policy", id="bureau").json()["items"]
    versions = read(client, auditor, "/v1/policy/versions").json()["items"]
    recorded = [datetime.fromisoformat(e["recorded_at"]) for e in events]
    assert [datetime.fromisoformat(v["recorded_at"]) for v in versions] == recorded
    assert datetime.fromisoformat(versions[0]["recorded_at"]) != LEDGER_EPOCH  # set up with the store, not in 2000
    assert datetime.fromisoformat(versions[1]["recorded_at"]) == history.now
    # The documented defaults still count as known from the ledger's epoch: an answer as known at any time has a
    # policy, though the store (and its version 1) was set up later.
    assert datetime.fromisoformat(versions[0]["known_from"]) == LEDGER_EPOCH
    before = read(client, auditor, "/v1/policy/versions", known_at=JAN_3).json()["items"]
    assert [v["version"] for v in before] == [1]
    assert read(client, auditor, "/v1/policy", at=JULY, known_at=JAN_3).json()["version"] == 1
    assert read(client, auditor, "/v1/policy", at=JULY).json()["version"] == 2


def test_an_agreements_location_reads_it_back_within_the_territory(
    client: TestClient, ledger: Ledger, history: Clock
) -> None:
    admin = issue_token(ledger, "admin-1", Role.ADMIN, actor="setup")
    body = {"year": 2026, "issuer_unit_id": "gangcheng", "responsible_unit_id": "aud-town", "targets": ["零违法"]}
    signed = client.post("/v1/agreements", json=body, headers=auth(admin))
    assert signed.status_code == 201
    location = signed.headers["location"]
    assert location == "/v1/agreements/2026.gangcheng.aud-town"

    for role in Role:  # a record read, open to every role
        answer = client.get(location, headers=auth(issue_token(ledger, f"{role.value}-x", role, actor="setup")))
        assert answer.status_code == 200, (role, answer.text)
    agreement = answer.json()
    assert agreement["issuer_unit_id"] == "gangcheng" and agreement["responsible_unit_id"] == "aud-town"
    assert agreement["unit_id"] == "aud-town" and agreement["year"] == 2026 and agreement["targets"] == ["零违法"]
    assert agreement["version"] == 1

    earlier = "/v1/agreements/2025.gangcheng.aud-town"  # recorded 1 June, dated 2 January
    assert read(client, admin, earlier, known_at=JAN_3).status_code == 404
    assert read(client, admin, earlier, as_of=JAN_3).status_code == 200
    assert read(client, admin, earlier, known_at=JULY).json()["version"] == 1
    assert read(client, admin, earlier, version="1").json()["year"] == 2025
    assert read(client, admin, earlier, version="2").status_code == 404
    assert read(client, admin, "/v1/agreements/2025.laiwu.nowhere").status_code == 404

    town = issue_token(ledger, "clerk-town", Role.CLERK, ["aud-town"], actor="setup")
    assert read(client, town, location).status_code == 200  # the responsible unit's own token
    district = issue_token(ledger, "clerk-gc", Role.CLERK, ["gangcheng"], actor="setup")
    assert read(client, district, location).status_code == 200  # the issuer's token
    ledger.register_unit("laicheng", "莱城区", UnitKind.DISTRICT, "laiwu", actor="setup")
    elsewhere = issue_token(ledger, "clerk-lc", Role.CLERK, ["laicheng"], actor="setup")
    assert read(client, elsewhere, location).status_code == 403


def test_a_retroactive_amendment_rejudges_a_records_read_as_it_does_the_board(
    client: TestClient, ledger: Ledger, history: Clock, store_url: str
) -> None:
    """A petition's collective flag and handling deadline (集体访, 办理期限) and a case's size (重大案件) are judged
    by the policy in force when the record began, as known at the read: an amendment recorded later with an
    earlier effective date (追溯修订) changes them in the record's read, in the board and in R18's extension
    alike; read as known before the amendment, they are as first recorded."""
    auditor = issue_token(ledger, "auditor-1", Role.AUDITOR, actor="setup")
    registered = history.now  # 1 August
    ledger.register_petition(
        "gangcheng", Channel.VISIT, 3, "三人", "补偿", PetitionCategory.COMPENSATION, petition_id="x2", actor="c"
    )
    ledger.report_clue(
        "gangcheng", Violation.ILLEGAL_LAND_USE, ClueSource.PATROL, case_id="c2", area_mu=Decimal(6), actor="o"
    )
    history.now = at("2025-08-05")
    before = history.now.isoformat()
    history.now = at("2025-08-06")
    changes = {
        "collective_threshold": 3,
        "handling_days": 40,
        "max_extension_days": 10,
        "major_case_area_mu": 5,
        "acceptance_days": 10,
    }
    ledger.amend_policy(at("2025-07-01"), changes, actor="admin")

    then = read(client, auditor, "/v1/petitions/x2", known_at=before).json()
    assert (then["collective"], then["policy_version"]) == (False, 1)
    assert datetime.fromisoformat(then["handling_deadline"]) == registered + timedelta(days=60)
    assert datetime.fromisoformat(then["acceptance_deadline"]) == registered + timedelta(days=15)  # 受理期限
    assert "collective" not in then["flags"]
    now = read(client, auditor, "/v1/petitions/x2").json()
    assert (now["collective"], now["policy_version"]) == (True, 2)
    assert datetime.fromisoformat(now["handling_deadline"]) == registered + timedelta(days=40)
    assert datetime.fromisoformat(now["acceptance_deadline"]) == registered + timedelta(days=10)
    assert {"collective", "key", "unowned"} <= set(now["flags"])
    case_then = read(client, auditor, "/v1/cases/c2", known_at=before).json()
    assert (case_then["major_by_size"], case_then["major"], case_then["policy_version"]) == (False, False, 1)
    case_now = read(client, auditor, "/v1/cases/c2").json()
    assert (case_now["major_by_size"], case_now["major"], case_now["policy_version"]) == (True, True, 2)
    untouched = read(client, auditor, "/v1/petitions/x1").json()  # registered on 2 January, before it took effect
    assert (untouched["collective"], untouched["policy_version"]) == (False, 1)

    with pytest.raises(RuleViolation, match="1 to 10 days"):  # the amended R18 limit, not the 30 recorded
        ledger.extend_petition("x2", 20, actor="c")
    ledger.extend_petition("x2", 10, actor="c")
    extended = read(client, auditor, "/v1/petitions/x2").json()
    assert datetime.fromisoformat(extended["handling_deadline"]) == registered + timedelta(days=50)

    ledger.escalate("x2", EscalationLevel.CITY, False, actor="c")
    extended = read(client, auditor, "/v1/petitions/x2").json()

    catch_up(store_url)
    board = {row["id"]: row for row in Queries(store_url).petitions()}
    assert datetime.fromisoformat(board["x2"]["deadline"]) == registered + timedelta(days=50)
    assert board["x2"]["policy_version"] == extended["policy_version"] == 2
    assert board["x2"]["flags"] == extended["flags"] and "escalated" in extended["flags"]  # the board's, as read


def test_a_record_as_of_a_date_counts_a_late_entry_dated_before_it(
    client: TestClient, ledger: Ledger, history: Clock
) -> None:
    """As of 15 August a case is as everything dated by then makes it, as known at the read: its declaration as
    major, dated the 10th but entered on 1 September after a filing dated the 20th, counts (as R4's trigger and the
    quota deduction count it); the filing does not. As known on 25 August, the declaration was not yet known."""
    auditor = issue_token(ledger, "auditor-1", Role.AUDITOR, actor="setup")
    ledger.report_clue("gangcheng", Violation.ILLEGAL_LAND_USE, ClueSource.PATROL, case_id="c3", actor="o")
    history.now = at("2025-08-20")
    ledger.file_case("c3", ["p1"], actor="o")
    history.now = at("2025-09-01")
    ledger.declare_major("c3", "面积大", actor="o", occurred_at=at("2025-08-10"))
    mid_august = at("2025-08-15").isoformat()

    now_known = read(client, auditor, "/v1/cases/c3", as_of=mid_august).json()
    assert (now_known["declared_major"], now_known["major"], now_known["filed"]) == (True, True, False)
    assert now_known["version"] == 3  # the last event applied; the filing (version 2) left out
    then_known = read(client, auditor, "/v1/cases/c3", as_of=mid_august, known_at=at("2025-08-25").isoformat()).json()
    assert (then_known["declared_major"], then_known["filed"], then_known["version"]) == (False, False, 1)
    current = read(client, auditor, "/v1/cases/c3").json()
    assert (current["declared_major"], current["filed"], current["version"]) == (True, True, 3)
    early = read(client, auditor, "/v1/cases/c3", as_of=at("2025-07-31").isoformat())
    assert early.status_code == 404  # not yet reported then
