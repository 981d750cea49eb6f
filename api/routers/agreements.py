"""Target-responsibility agreements (目标考核责任书, R5, R6): signing, and their reads."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import Field, StrictInt

from api.deps import AuthorizedDep, CommandDep, LedgerDep, ReadAtDep, answer, covers_agreement, require_territory
from api.models import CommandIn, Receipt, RecordId, RecordMeta, meta
from domain.agreements import TargetAgreement

router = APIRouter(prefix="/agreements", tags=["agreements"])


class AgreementCreate(CommandIn):
    """An agreement the issuer signs with the responsible unit for a year (签订责任书)."""

    year: StrictInt = Field(ge=2000, le=2100)
    issuer_unit_id: RecordId
    responsible_unit_id: RecordId
    targets: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=500)]], Field(max_length=50, default_factory=list)
    ]


class AgreementPublic(RecordMeta):
    """An agreement as it stands (or stood)."""

    year: int
    issuer_unit_id: str
    responsible_unit_id: str
    unit_id: str = Field(description="the responsible unit, whose year's score judges the agreement (R6)")
    targets: list[str]


@router.post("", status_code=201, response_model=Receipt)
def sign_agreement(body: AgreementCreate, cmd: CommandDep, response: Response) -> Receipt:
    """Sign a target-responsibility agreement; its id is `<year>.<issuer>.<responsible>`."""
    cmd.guard_unit(body.issuer_unit_id, f"issuer unit {body.issuer_unit_id}")
    receipt = cmd.ledger.sign_agreement(
        body.year, body.issuer_unit_id, body.responsible_unit_id, body.targets, **cmd.create(body)
    )
    return answer(receipt, response, "/v1/agreements")


@router.get("/{agreement_id}", response_model=AgreementPublic)
def read_agreement(
    agreement_id: str, ledger: LedgerDep, principal: AuthorizedDep, read_at: ReadAtDep
) -> AgreementPublic:
    """An agreement, current, at `version` or as of a business time (as known at a recording time)."""
    agreement = read_at.load(ledger, TargetAgreement, agreement_id)
    if not covers_agreement(ledger, principal, agreement):
        require_territory(ledger, principal, agreement.responsible_unit_id, f"agreement {agreement_id}")
    return AgreementPublic(
        **meta(agreement),
        year=agreement.year,
        issuer_unit_id=agreement.issuer_unit_id,
        responsible_unit_id=agreement.responsible_unit_id,
        unit_id=agreement.responsible_unit_id,
        targets=list(agreement.targets),
    )
