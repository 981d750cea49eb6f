"""Policy (政策参数): amendments with effective dates, and the policy in force at any time."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import AwareDatetime, BaseModel, Field, StrictFloat, StrictInt

from api.deps import AuthorizedDep, CommandDep, LedgerDep, ReadAtDep, answer
from api.models import Amount, CommandIn, Receipt
from api.problems import InvalidParameter
from domain.policy import Amendment, Policy, in_force

router = APIRouter(prefix="/policy", tags=["policy"])
#: A JSON number only: ``true`` or ``"30"`` is refused, not read as 1 or 30.
Number = StrictInt | Annotated[StrictFloat, Field(allow_inf_nan=False)]


class AmendmentCreate(CommandIn):
    """An amendment (政策修订): the parameters that change from `effective_from` (names in DOMAIN.md)."""

    effective_from: AwareDatetime
    params: Annotated[dict[Annotated[str, Field(max_length=64)], Number], Field(min_length=1, max_length=40)]


class PolicyPublic(BaseModel):
    """The policy in force at a business time, as known at a recording time."""

    version: int = Field(description="the amendment that last changed what is in force")
    effective_from: datetime
    params: dict[str, Amount | int]
    at: datetime
    record_version: int = Field(description="the policy record's version the answer was computed from")


class AmendmentPublic(BaseModel):
    """One version of the policy as recorded."""

    version: int
    effective_from: datetime
    changes: dict[str, Amount | int]
    recorded_at: datetime = Field(description="when the event that made this version was recorded")
    known_from: datetime = Field(
        description="from when answers as known at a time count it: its recording, but the ledger's epoch for "
        "version 1 (the documented defaults)"
    )


class AmendmentList(BaseModel):
    items: list[AmendmentPublic]


@router.post("/amendments", response_model=Receipt)
def amend_policy(body: AmendmentCreate, cmd: CommandDep, response: Response) -> Receipt:
    """Amend the policy from an effective date (政策修订); the whole city's policy, so no bound token."""
    cmd.guard_unit(None, "the city-wide policy")
    receipt = cmd.ledger.amend_policy(body.effective_from, dict(body.params), **cmd.change(body))
    return answer(receipt, response)


def _amendments(ledger: LedgerDep, read_at: ReadAtDep) -> tuple[Policy, list[Amendment]]:
    """The amendments known at the requested policy version (default: all)."""
    policy = ledger.policy() if read_at.version is None else ledger.get(Policy, Policy.ID, version=read_at.version)
    return policy, policy.versions()


@router.get("", response_model=PolicyPublic)
def read_policy(
    ledger: LedgerDep,
    _: AuthorizedDep,
    read_at: ReadAtDep,
    at: Annotated[datetime | None, Query(description="business time; default now (as_of is a synonym)")] = None,
) -> PolicyPublic:
    """The policy in force at `at` (or `as_of`), as known at `known_at`, with its version."""
    if at is not None and at.utcoffset() is None:
        raise InvalidParameter("at must carry a UTC offset", "query", "at")
    moment = at or read_at.as_of or ledger.clock()
    policy, amendments = _amendments(ledger, read_at)
    version = in_force(amendments, moment, read_at.known_at)
    return PolicyPublic(
        version=version.version,
        effective_from=version.effective_from,
        params=dict(version.params),
        at=moment,
        record_version=policy.version,
    )


@router.get("/versions", response_model=AmendmentList)
def policy_versions(ledger: LedgerDep, _: AuthorizedDep, read_at: ReadAtDep) -> AmendmentList:
    """Every version of the policy; `as_of` keeps those effective by then, `known_at` those known by then."""
    _policy, amendments = _amendments(ledger, read_at)
    items = [
        AmendmentPublic(
            version=a.version,
            effective_from=a.effective_from,
            changes=dict(a.changes),
            recorded_at=a.recorded_at,
            known_from=a.known_from,
        )
        for a in amendments
        if (read_at.as_of is None or a.effective_from <= read_at.as_of)
        and (read_at.known_at is None or a.known_from <= read_at.known_at)
    ]
    return AmendmentList(items=items)
