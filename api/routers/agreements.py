"""Target-responsibility agreements (目标考核责任书, R5, R6)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import Field

from api.deps import CommandDep, answer
from api.models import CommandIn, Receipt, RecordId

router = APIRouter(prefix="/agreements", tags=["agreements"])


class AgreementCreate(CommandIn):
    """An agreement the issuer signs with the responsible unit for a year (签订责任书)."""

    year: int = Field(ge=2000, le=2100)
    issuer_unit_id: RecordId
    responsible_unit_id: RecordId
    targets: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=500)]], Field(max_length=50, default_factory=list)
    ]


@router.post("", status_code=201, response_model=Receipt)
def sign_agreement(body: AgreementCreate, cmd: CommandDep, response: Response) -> Receipt:
    """Sign a target-responsibility agreement; its id is `<year>.<issuer>.<responsible>`."""
    cmd.guard_unit(body.issuer_unit_id, f"issuer unit {body.issuer_unit_id}")
    receipt = cmd.ledger.sign_agreement(
        body.year, body.issuer_unit_id, body.responsible_unit_id, body.targets, **cmd.create(body)
    )
    return answer(receipt, response, "/v1/agreements")
