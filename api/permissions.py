"""Who may do what (权限矩阵): one table, role × route, that the API enforces and the tests iterate.

Decisions:
- ``admin`` is the superuser: every route is open to it (it sets up units, people, policy,
  agreements and tokens, and a demo's admin token can drive everything). It is still bound by
  territory if its token names units, and it does NOT see personal data (below).
- ``clerk`` records petitions and public receptions; ``officer`` records cases; ``supervisor``
  queries the projections, decides triggers, supervises cases, finds them wrongful and records
  the conduct steps (reports, findings, sanctions, commendations, trainings); ``auditor`` reads
  everything, including the audit endpoints, and records nothing.
- Record reads (units, people, cases, petitions, agreements, policy) are open to every role; what a role sees
  of personal data is decided by ``PERSONAL_DATA`` below.
- ``GET /healthz`` needs no token and is not in the matrix.
"""

from __future__ import annotations

from domain.vocabulary import Role

CLERK, OFFICER, SUPERVISOR, AUDITOR, ADMIN = Role.CLERK, Role.OFFICER, Role.SUPERVISOR, Role.AUDITOR, Role.ADMIN
EVERYONE = frozenset(Role)
#: Every route in the matrix lives under this prefix (the router's own paths omit it).
API_PREFIX = "/v1"


def only(*roles: Role) -> frozenset[Role]:
    """These roles, and the admin (the superuser)."""
    return frozenset({*roles, ADMIN})


QUERIES = only(SUPERVISOR, AUDITOR)

#: (method, path template) → the roles allowed. A route missing here is refused to everyone.
MATRIX: dict[tuple[str, str], frozenset[Role]] = {
    # units, people, policy, agreements, tokens: the admin's set-up work
    ("POST", "/v1/units"): only(),
    ("POST", "/v1/units/{unit_id}/quota-allocations"): only(),
    ("POST", "/v1/units/{unit_id}/land-approvals"): only(),
    ("POST", "/v1/people"): only(),
    ("POST", "/v1/people/{person_id}/misconduct-reports"): only(SUPERVISOR),
    ("POST", "/v1/people/{person_id}/findings"): only(SUPERVISOR),
    ("POST", "/v1/people/{person_id}/removal"): only(SUPERVISOR),
    ("POST", "/v1/people/{person_id}/criminal-referral"): only(SUPERVISOR),
    ("POST", "/v1/people/{person_id}/commendations"): only(SUPERVISOR),
    ("POST", "/v1/people/{person_id}/trainings"): only(SUPERVISOR),
    ("POST", "/v1/people/{person_id}/receptions"): only(CLERK, SUPERVISOR),
    ("POST", "/v1/agreements"): only(),
    ("POST", "/v1/policy/amendments"): only(),
    ("POST", "/v1/tokens"): only(),
    ("POST", "/v1/tokens/{grant_id}/revocation"): only(),
    ("GET", "/v1/tokens/{grant_id}"): only(AUDITOR),
    # enforcement cases: officers; supervision and wrongful findings also by supervisors
    ("POST", "/v1/cases"): only(OFFICER),
    **{
        ("POST", f"/v1/cases/{{case_id}}/{step}"): only(OFFICER)
        for step in (
            "filing",
            "joint-handling",
            "major",
            "report-upward",
            "record-filing",
            "joint-review",
            "penalty",
            "transfer",
            "closure",
        )
    },
    ("POST", "/v1/cases/{case_id}/supervision"): only(OFFICER, SUPERVISOR),
    ("POST", "/v1/cases/{case_id}/wrongful-finding"): only(OFFICER, SUPERVISOR),
    # petitions: clerks
    ("POST", "/v1/petitions"): only(CLERK),
    **{
        ("POST", f"/v1/petitions/{{petition_id}}/{step}"): only(CLERK)
        for step in (
            "ownership",
            "on-site-ownership",
            "meetings",
            "extension",
            "reply",
            "return-visit",
            "escalations",
            "nail-case",
            "nail-checks",
            "cessation",
            "diversion",
            "closure",
        )
    },
    # accountability decisions: supervisors
    ("POST", "/v1/triggers/{trigger_id}/decision"): only(SUPERVISOR),
    # record reads: everyone (personal data filtered by PERSONAL_DATA)
    ("GET", "/v1/units"): EVERYONE,
    ("GET", "/v1/units/{unit_id}"): EVERYONE,
    ("GET", "/v1/people/{person_id}"): EVERYONE,
    ("GET", "/v1/cases/{case_id}"): EVERYONE,
    ("GET", "/v1/petitions/{petition_id}"): EVERYONE,
    ("GET", "/v1/agreements/{agreement_id}"): EVERYONE,
    ("GET", "/v1/policy"): EVERYONE,
    ("GET", "/v1/policy/versions"): EVERYONE,
    # projections: supervisors and auditors; the petition board is also the clerks' work list
    ("GET", "/v1/scores"): QUERIES,
    ("GET", "/v1/triggers"): QUERIES,
    ("GET", "/v1/quota-deductions"): QUERIES,
    ("GET", "/v1/quota"): QUERIES,
    ("GET", "/v1/petitions"): only(CLERK, SUPERVISOR, AUDITOR),
    ("GET", "/v1/cases"): only(OFFICER, SUPERVISOR, AUDITOR),
    ("GET", "/v1/officers"): QUERIES,
    ("GET", "/v1/triggers/{trigger_id}"): QUERIES,
    ("GET", "/v1/reports/daily"): QUERIES,
    ("GET", "/v1/reports/weekly"): QUERIES,
    ("GET", "/v1/reports/monthly"): QUERIES,
    ("GET", "/v1/projections/status"): EVERYONE,
    # audit: auditors
    **{
        ("GET", f"/v1/audit/{what}"): only(AUDITOR)
        for what in (
            "events",
            "verify",
            "checkpoints/latest",
            "keys",
            "proofs/inclusion",
            "proofs/consistency",
            "export",
            "late-entries",
            "access-log",
        )
    },
}

#: Who sees personal data (个人信息), and why: the petitioner's name to the clerks who answer
#: the petition and the auditors who check the handling; the reporter's name to the supervisors
#: who investigate the report and the auditors. Nobody else, the admin included; every read of
#: it is logged (ledger.log_personal_data_read), and the reported person never sees the reporter.
PERSONAL_DATA: dict[str, frozenset[Role]] = {
    "petitioner": frozenset({CLERK, AUDITOR}),
    "reporter": frozenset({SUPERVISOR, AUDITOR}),
}


def allowed(role: Role, method: str, path: str) -> bool:
    return role in MATRIX.get((method, path), frozenset())
