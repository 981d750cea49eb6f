"""The world the acceptance steps act on (验收测试环境): an HTTP client, tokens, and the names in the specs.

Every step goes through the HTTP API. In-process (the default) the client is Starlette's
``TestClient`` on ``api.app.create_app(url)`` over a fresh store; with ``LEDGER_BASE_URL`` set it is
a plain HTTP client on a running server. The one thing done beside the API is the in-process
bootstrap: the first admin token is issued with ``api.auth.issue_token`` on the app's own ledger
(a running server gets it from ``LEDGER_ADMIN_TOKEN`` instead); every other token is granted over
``POST /v1/tokens``. In-process, queries first run ``projections.engine.catch_up(url)``, because
no projection worker runs inside the test; both modes also send ``X-Ledger-Position`` (read your
writes), which is all a running server needs.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx2
import pytest

from domain.base import BUREAU_TZ

BASE_URL_ENV = "LEDGER_BASE_URL"
ADMIN_TOKEN_ENV = "LEDGER_ADMIN_TOKEN"
#: When the specs' units and people come into being: the start of the assessed year 2024.
SETUP_AT = "2024-01-01T00:00:00+08:00"
#: A bare date in a spec means 09:00 that day, Beijing time (a working morning).
WORKING_HOUR = 9

ROLES = {
    "信访工作人员": "clerk",
    "执法人员": "officer",
    "督查人员": "supervisor",
    "审计人员": "auditor",
    "管理员": "admin",
}
UNIT_KINDS = {
    "市": "city",
    "区": "district",
    "乡镇": "township",
    "街道": "township",
    "市局": "city_bureau",
    "分局": "branch_bureau",
    "土管所": "land_station",
}
POSTS = {
    "主要负责人": "principal_leader",
    "分管领导": "leader_in_charge",
    "执法人员": "enforcement_officer",
    "信访工作人员": "petition_clerk",
}
LEADER_POSTS = {"principal_leader", "leader_in_charge"}
VIOLATIONS = {
    "违法用地": "illegal_land_use",
    "未批先占": "occupation_before_approval",
    "非法买卖、租赁集体土地": "illegal_collective_land_trade",
    "非法无证开采": "unlicensed_mining",
    "非法转让": "illegal_mining_right_transfer",
    "乱采滥挖": "indiscriminate_digging",
}
SOURCES = {"巡查": "patrol", "举报": "report", "信访": "petition", "上级交办": "assigned"}
AGENCIES = {"公安": "police", "监察": "discipline", "司法机关": "judiciary"}
ASSIGNED_FROM = {"无": None, "市": "city", "省": "province", "中央": "central"}
FLAGS = {
    "越级": "skip_level",
    "重复": "repeat",
    "集体": "collective",
    "省以上交办": "assigned",
    "初信初访": "initial",
    "钉子案": "nail_case",
    "已上访": "escalated",
    "重点": "key",
    "未包案": "unowned",
}
MEETINGS = {"与领导见面": "leader", "与承办单位见面": "handling_unit", "与信访人见面": "petitioner"}
NAIL_CHECKS = {
    "原因已查清": "cause_found",
    "错误已纠正": "error_corrected",
    "上访已停止": "petitioning_stopped",
    "群众已满意": "petitioner_satisfied",
}
ESCALATIONS = {
    "赴京上访": ("beijing", False),
    "进省上访": ("province", False),
    "来市上访": ("city", False),
    "赴京集体上访": ("beijing", True),
    "进省集体上访": ("province", True),
    "来市集体上访": ("city", True),
}
MISCONDUCT = {
    "吃": "eating",
    "拿": "taking",
    "卡": "obstructing",
    "要": "demanding",
    "报": "claiming",
    "有案不查": "case_not_investigated",
    "执纪不严": "lax_discipline",
    "失职": "dereliction",
    "滥用职权": "abuse_of_power",
}
COMMENDATIONS = {"执法业务标兵": "law_enforcement_model", "国土资源卫士": "land_resources_guardian"}
OUTCOMES = {"表彰": "commend", "合格": "pass", "通报批评": "criticise", "待定": "pending"}
DECISIONS = {
    "警告": "warning",
    "通报批评": "circulated_criticism",
    "记过": "demerit",
    "调离": "removal",
    "不予追究": "dismissed",
}
INDICATORS = {
    "重大案件": "major_case",
    "有案不查": "case_not_investigated",
    "越级访": "skip_level_petition",
    "重复访": "repeat_petition",
    "集体访": "collective_petition",
    "上访": "escalation",
    "超期": "overdue_petition",
    "违纪属实": "misconduct",
    "未公开接访": "missed_reception",
}
BOARD_STATUSES = {"在办": "open", "超期": "overdue", "已办结": "closed"}
REPORTS = {"日调度": ("daily", "date"), "周汇报": ("weekly", "week"), "月通报": ("monthly", "month")}
YES = {"是": True, "有": True, "已经": True, "不是": False, "否": False, "没有": False}


def code(table: dict[str, Any], word: str) -> Any:
    """The API's value for a Chinese word of the specs; an unknown word goes through as it is (to be refused)."""
    return table.get(word.strip(), word.strip())


def role_code(word: str) -> str:
    """The API role of a post named in the specs (信访工作人员 → clerk)."""
    role = ROLES.get(word.strip())
    assert role, f"unknown role {word!r} (one of {', '.join(ROLES)})"
    return role


def words(text: str) -> list[str]:
    """A list in the specs: ``甲、乙、丙`` (``无`` is the empty list)."""
    text = text.strip()
    return [] if text in ("", "无") else [w.strip() for w in text.split("、") if w.strip()]


def business_time(day: str) -> str:
    """``2024-03-01`` → 09:00 that day in the bureau's zone; a full RFC 3339 time passes through."""
    if "T" in day:
        return day
    d = date.fromisoformat(day)
    return datetime(d.year, d.month, d.day, WORKING_HOUR, tzinfo=BUREAU_TZ).isoformat()


def day_start(day: str) -> str:
    """``2024-07-01`` → midnight that day in the bureau's zone (effective dates, ``as_of``)."""
    d = date.fromisoformat(day)
    return datetime(d.year, d.month, d.day, tzinfo=BUREAU_TZ).isoformat()


def local_date(moment: str) -> str:
    """The bureau's calendar date of an RFC 3339 time."""
    return datetime.fromisoformat(moment).astimezone(BUREAU_TZ).date().isoformat()


def number(text: str) -> int | float:
    value = Decimal(text)
    return int(value) if value == value.to_integral_value() else float(value)


@dataclass
class World:
    """What a scenario knows: the client, its tokens, the ids behind the specs' names, the last answer."""

    client: httpx2.Client
    admin_token: str
    store_url: str | None  # None when driving a running server
    suffix: str = ""
    tokens: dict[str, str] = field(default_factory=dict)
    ids: dict[tuple[str, str], str] = field(default_factory=dict)
    posts: dict[str, str] = field(default_factory=dict)
    created_at: dict[str, int] = field(default_factory=dict)
    position: int = 0
    first_position: int | None = None
    last: httpx2.Response | None = None
    answer: dict[str, Any] = field(default_factory=dict)
    found: dict[str, Any] = field(default_factory=dict)
    saved: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)

    @property
    def remote(self) -> bool:
        return self.store_url is None

    # --- names → ids ------------------------------------------------------------------------

    def id(self, kind: str, name: str) -> str:
        """The public id behind a name in the specs (unique per scenario, so a shared server stays clean)."""
        key = (kind, name.strip())
        if key not in self.ids:
            count = sum(1 for k in self.ids if k[0] == kind) + 1
            self.ids[key] = f"{kind}-{count}{self.suffix}"
        return self.ids[key]

    def known(self, kind: str, name: str) -> str:
        key = (kind, name.strip())
        assert key in self.ids, f"the spec names {kind} {name!r} before it is set up"
        return self.ids[key]

    def name_of(self, kind: str, record_id: str) -> str:
        return next((n for (k, n), i in self.ids.items() if k == kind and i == record_id), record_id)

    # --- tokens -----------------------------------------------------------------------------

    def token(self, role: str) -> str:
        """A city-wide token for the role, granted over the API by the admin on first use."""
        if role == "admin":
            return self.admin_token
        if role not in self.tokens:
            subject = f"{role}-features{self.suffix}"
            self.tokens[role] = self.grant(subject, role, [])
        return self.tokens[role]

    def grant(self, subject: str, role: str, unit_ids: list[str]) -> str:
        response = self.client.post(
            "/v1/tokens",
            json={"subject": subject, "role": role, "unit_ids": unit_ids},
            headers=self._auth(self.admin_token),
        )
        assert response.status_code == 201, f"granting a {role} token failed: {response.text}"
        token: str = response.json()["token"]
        return token

    def subject(self, role: str) -> str:
        return f"{role}-features{self.suffix}"

    @staticmethod
    def _auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    # --- commands ---------------------------------------------------------------------------

    def command(self, role: str, path: str, body: dict[str, Any] | None = None) -> httpx2.Response:
        """POST a command as ``role``; remember the answer and the log position it reached."""
        response = self.client.post(path, json=body or {}, headers=self._auth(self.token(role)))
        self.last = response
        if response.status_code in (200, 201):
            position = int(response.json().get("position", 0))
            self.position = max(self.position, position)
            if self.first_position is None:
                self.first_position = position
        return response

    def must(self, role: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """A set-up command that has to succeed."""
        response = self.command(role, path, body)
        assert response.status_code in (200, 201), f"POST {path} → {response.status_code}: {response.text}"
        answer: dict[str, Any] = response.json()
        return answer

    # --- reads ------------------------------------------------------------------------------

    def read(self, role: str, path: str, params: dict[str, Any] | None = None) -> httpx2.Response:
        """GET as ``role``, after the projections have caught up with everything this scenario wrote."""
        if self.store_url is not None:
            from projections.engine import catch_up

            catch_up(self.store_url)
        headers = {**self._auth(self.token(role)), "X-Ledger-Position": str(self.position)}
        response = self.client.get(
            path, params={k: v for k, v in (params or {}).items() if v is not None}, headers=headers
        )
        self.last = response
        return response

    def get(self, role: str, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.read(role, path, params)
        assert response.status_code == 200, f"GET {path} → {response.status_code}: {response.text}"
        answer: dict[str, Any] = response.json()
        return answer

    def items(self, role: str, path: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get(role, path, params)["items"]
        return items

    def require_route(self, method: str, path: str, why: str) -> None:
        """Fail the scenario, naming the route, when the API does not offer it (a lost route is a regression)."""
        spec = self.client.get("/openapi.json").json()
        if method.lower() not in spec.get("paths", {}).get(path, {}):
            pytest.fail(f"route {method} {path} is missing from the API ({why})")

    # --- derived lookups --------------------------------------------------------------------

    def triggers(self, rule: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        found = self.items("supervisor", "/v1/triggers", {"status": status})
        mine = set(self.ids.values())
        return [
            t
            for t in found
            if (rule is None or t["rule"] == rule) and (t["subject"].get("unit_id") in mine or not self.remote)
        ]

    def trigger_for(self, rule: str, who: str) -> list[dict[str, Any]]:
        """Triggers of ``rule`` whose subject is the person ``who`` or, if ``who`` is a unit, the unit itself."""
        if ("person", who) in self.ids:
            person = self.ids[("person", who)]
            return [t for t in self.triggers(rule) if t["subject"].get("person_id") == person]
        unit = self.known("unit", who)
        return [
            t for t in self.triggers(rule) if t["subject"].get("unit_id") == unit and not t["subject"].get("person_id")
        ]

    def leaders(self) -> list[str]:
        return [pid for pid, post in self.posts.items() if post in LEADER_POSTS]


def now_plus(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


@contextmanager
def open_world(store_url: str | None) -> Iterator[World]:
    """A world on a fresh in-process store, or on the running server named by ``LEDGER_BASE_URL``."""
    base_url = os.environ.get(BASE_URL_ENV)
    if base_url:
        token = os.environ.get(ADMIN_TOKEN_ENV)
        if not token:
            pytest.fail(f"{BASE_URL_ENV} is set but {ADMIN_TOKEN_ENV} is not")
        with httpx2.Client(base_url=base_url, timeout=30) as client:
            yield World(client, token, None, suffix=f"-{secrets.token_hex(3)}")
        return
    assert store_url is not None
    from starlette.testclient import TestClient

    from api.app import create_app
    from api.auth import issue_token

    app = create_app(store_url)
    with TestClient(app) as client:
        # The one step beside the API: bootstrap an admin on the app's own ledger (as `ledger token create` does).
        admin = issue_token(app.state.ledger, "admin-features", "admin", actor="features")
        yield World(client, admin, store_url)
