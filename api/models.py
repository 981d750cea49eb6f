"""Shared request and response models (公共模型): the command envelope, receipts, lists.

Request models refuse unknown fields (``extra="forbid"``) and bound every string; times must
carry a UTC offset (a naive time is ambiguous across the bureau's and the server's zones); flags,
counts and amounts must be JSON booleans and numbers (``StrictBool``, ``StrictInt``, :data:`AmountIn`),
never a string or a boolean read as one.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, StringConstraints

from domain.base import Record

#: A public id (slug), as domain.base.check_id accepts.
RecordId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=4000)]
Note = Annotated[str, StringConstraints(max_length=4000)]
#: Areas and sums travel as JSON numbers (exact decimals inside the ledger).
Amount = Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")]


def json_number(value: Any) -> Any:
    """A JSON number and nothing else: pydantic would read ``true`` or ``"1e3"`` as an amount."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError("must be a JSON number")
    return value


AmountIn = Annotated[Decimal, BeforeValidator(json_number), Field(ge=0, le=Decimal(10) ** 12, allow_inf_nan=False)]


class CommandIn(BaseModel):
    """What every command body may carry: when it happened (业务时间) and a note (备注)."""

    model_config = ConfigDict(extra="forbid")

    occurred_at: AwareDatetime | None = Field(
        default=None, description="business time, RFC 3339 with offset; default now"
    )
    note: Note = ""


class Receipt(BaseModel):
    """A command's answer: the record, its new version and the event's place in the global log."""

    id: str
    version: int
    position: int


class MisconductReceipt(Receipt):
    """A misconduct report's receipt, naming the new report (举报编号)."""

    report_id: str


class RecordMeta(BaseModel):
    """What every record read shows: id, version and when it was opened (立卷)."""

    id: str
    version: int
    opened_at: datetime
    closed: bool


def meta(record: Record) -> dict[str, Any]:
    """A record's :class:`RecordMeta` fields, for the read models built on it."""
    return {"id": record.record_id, "version": record.version, "opened_at": record.opened_at, "closed": record.closed}


class QueryAnswer(BaseModel):
    """A projection's answer (查询结果): rows, plus how far the projections had read the log."""

    model_config = ConfigDict(extra="allow")

    items: list[dict[str, Any]] = Field(default_factory=list)
    position: int = Field(description="the log position the projections had reached")
    lag: int = Field(description="how many log positions the projections were behind the head")
    next_after: str | None = Field(
        default=None, description="when rows follow the page: `after` for the next page (null on the last)"
    )
