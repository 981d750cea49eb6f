"""Domain errors (业务规则错误): every refusal names the rule that refused it."""

from __future__ import annotations


class DomainError(Exception):
    """A command the rules refuse. ``rule`` is the R-number (or a short rule name) that refused it."""

    def __init__(self, message: str, rule: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.rule = rule

    def __str__(self) -> str:
        return f"{self.rule}: {self.message}" if self.rule else self.message


class RuleViolation(DomainError):
    """The action breaks a rule of DOMAIN.md (e.g. R12 nail-case checks) — HTTP 409."""


class InvalidValue(DomainError):
    """A value is out of range or of the wrong kind — HTTP 422.

    ``field`` names the value: a name, or the parts of the path to it (``("params", "handling_days")``).
    Where the value came from (a request's body, its query string, …) is for the caller to say.
    """

    def __init__(self, message: str, field: str | tuple[str, ...] | None = None) -> None:
        super().__init__(message)
        self.field_path: tuple[str, ...] = (field,) if isinstance(field, str) else tuple(field or ())

    @property
    def field(self) -> str | None:
        """The value's name, its path's parts joined by dots (for messages and lookups)."""
        return ".".join(self.field_path) or None


class RecordNotFound(DomainError):
    """No record of that kind with that id (记录不存在) — HTTP 404."""

    def __init__(self, kind: str, record_id: str) -> None:
        super().__init__(f"no {kind} with id {record_id!r}")
        self.kind = kind
        self.record_id = record_id


class RecordExists(DomainError):
    """A record with that id was already registered — HTTP 409."""

    def __init__(self, kind: str, record_id: str) -> None:
        super().__init__(f"a {kind} with id {record_id!r} already exists", rule="unique-id")
        self.kind = kind
        self.record_id = record_id


class StaleVersion(DomainError):
    """The record moved on since the version the caller saw (乐观并发) — HTTP 412."""

    def __init__(self, kind: str, record_id: str, expected: int, actual: int) -> None:
        super().__init__(f"{kind} {record_id!r} is at version {actual}, not {expected}", rule="optimistic-concurrency")
        self.expected = expected
        self.actual = actual
