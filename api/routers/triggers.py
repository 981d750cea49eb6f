"""Accountability decisions (责任追究决定) on the triggers the projections open."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from pydantic import Field

from api import projections_link
from api.deps import AsOf, AuthorizedDep, CommandDep, KnownAt, LedgerDep, answer, asked, require_territory
from api.models import CommandIn, Receipt
from domain.errors import RecordNotFound
from domain.vocabulary import DecisionOutcome

router = APIRouter(prefix="/triggers", tags=["triggers"])


class DecisionCreate(CommandIn):
    """A supervisor's decision on a trigger (责任追究决定)."""

    outcome: DecisionOutcome
    reason: Annotated[str, Field(min_length=1, max_length=4000)]


@router.get("/{trigger_id}")
def read_trigger(
    trigger_id: str,
    request: Request,
    principal: AuthorizedDep,
    ledger: LedgerDep,
    as_of: AsOf = None,
    known_at: KnownAt = None,
) -> dict[str, Any]:
    """One accountability trigger with its evidence and, once decided, its decision, as the list shows it: as of
    `as_of`, as known at `known_at` (404 for a trigger not open by then)."""
    with projections_link.queries(request.app.state) as queries:
        trigger = queries.trigger(trigger_id, as_of=asked(as_of, "as_of"), known_at=asked(known_at, "known_at"))
    if not trigger:
        raise RecordNotFound("trigger", trigger_id)
    require_territory(ledger, principal, (trigger.get("subject") or {}).get("unit_id"), f"trigger {trigger_id}")
    return dict(trigger)


@router.post("/{trigger_id}/decision", status_code=201, response_model=Receipt)
def decide_trigger(
    trigger_id: str, body: DecisionCreate, cmd: CommandDep, request: Request, response: Response
) -> Receipt:
    """Decide an open trigger; one decision per trigger (its id is the trigger's id)."""
    with projections_link.queries(request.app.state) as queries:
        trigger = queries.trigger(trigger_id)
    if not trigger:
        raise RecordNotFound("trigger", trigger_id)
    subject = trigger.get("subject") or {}
    cmd.guard_unit(subject.get("unit_id"), f"trigger {trigger_id}")
    cmd.recuse(subject.get("person_id"), f"trigger {trigger_id}")
    opened_at = datetime.fromisoformat(str(trigger["opened_at"]))
    receipt = cmd.ledger.decide_trigger(
        trigger_id, str(trigger["rule"]), body.outcome, body.reason, opened_at=opened_at, **cmd.create(body)
    )
    return answer(receipt, response, "/v1/triggers")
