"""Territory filtering of answers (属地管理): rows outside a unit-bound token's units dropped at any depth."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from api.auth import Principal
from api.routers.queries import _unit_of, _within
from domain.errors import RecordNotFound
from domain.vocabulary import Role

#: A unit tree: city c, districts d1 and d2, towns t1 (in d1) and t2 (in d2).
PARENTS = {"c": None, "d1": "c", "d2": "c", "t1": "d1", "t2": "d2"}


class Tree:
    """The one thing the filter asks of the ledger: a unit's lineage (itself, then its ancestors)."""

    def lineage(self, unit_id: str) -> tuple[str, ...]:
        if unit_id not in PARENTS:
            raise RecordNotFound("unit", unit_id)
        chain, unit = [], unit_id
        while unit is not None:
            chain.append(unit)
            unit = PARENTS[unit]
        return tuple(chain)


def rebuilt(value: Any, ledger: Any, principal: Principal) -> Any:
    """The rule, stated plainly: every list and dict rebuilt, each row naming a unit (its own or its subject's)
    kept only when the token covers it."""
    if isinstance(value, list):
        return [
            rebuilt(v, ledger, principal)
            for v in value
            if not (isinstance(v, dict) and (_unit_of(v) is not None or "unit_id" in v))
            or principal.covers(ledger, _unit_of(v))
        ]
    if isinstance(value, dict):
        return {k: rebuilt(v, ledger, principal) for k, v in value.items()}
    return value


units = st.sampled_from([*PARENTS, "elsewhere"]) | st.none()
scalars = st.none() | st.booleans() | st.integers(-5, 10**6) | st.text(max_size=3) | st.floats(allow_nan=False)
evidence = st.lists(st.integers(0, 10**6), max_size=3)
rows = st.fixed_dictionaries({"unit_id": units}, optional={"points": st.integers(0, 5), "evidence": evidence}) | (
    st.fixed_dictionaries({"subject": st.fixed_dictionaries({"unit_id": units}), "evidence": evidence})
)
answers = st.recursive(
    scalars | rows,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.sampled_from(["items", "deductions", "by_unit", "x"]), inner, max_size=3)
        | st.fixed_dictionaries({"unit_id": units, "rows": st.lists(inner, max_size=4)})
    ),
    max_leaves=40,
)


@given(answer=answers, bound=st.lists(st.sampled_from(list(PARENTS)), min_size=1, max_size=2, unique=True))
def test_a_bound_answer_is_the_rule_applied_and_what_holds_nothing_outside_is_not_copied(
    answer: Any, bound: list[str]
) -> None:
    principal = Principal("g", "s", Role.SUPERVISOR, tuple(bound))
    before = copy.deepcopy(answer)
    filtered = _within(answer, Tree(), principal)
    assert filtered == rebuilt(answer, Tree(), Principal("g", "s", Role.SUPERVISOR, tuple(bound)))
    assert answer == before  # the answer read is never changed in place
    if filtered == answer:  # nothing dropped at any depth: handed back as it is
        assert filtered is answer
