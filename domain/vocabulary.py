"""The bureau's vocabulary (术语): the closed lists of kinds, posts, channels and steps.

Values are the English nouns of API.md; the Chinese term is beside each.
"""

from __future__ import annotations

from enum import StrEnum


class UnitKind(StrEnum):
    """Kinds of unit (单位)."""

    CITY = "city"  # 市
    DISTRICT = "district"  # 区
    TOWNSHIP = "township"  # 乡镇、街道
    CITY_BUREAU = "city_bureau"  # 市局
    BRANCH_BUREAU = "branch_bureau"  # 分局
    LAND_STATION = "land_station"  # 土管所


class Post(StrEnum):
    """A person's post (职务)."""

    PRINCIPAL_LEADER = "principal_leader"  # 主要负责人
    LEADER_IN_CHARGE = "leader_in_charge"  # 分管领导
    ENFORCEMENT_OFFICER = "enforcement_officer"  # 执法人员
    PETITION_CLERK = "petition_clerk"  # 信访工作人员


LEADER_POSTS = frozenset({Post.PRINCIPAL_LEADER, Post.LEADER_IN_CHARGE})


class Violation(StrEnum):
    """The six violation kinds (违法类型, R1); the first three concern land, the rest minerals."""

    ILLEGAL_LAND_USE = "illegal_land_use"  # 违法用地
    OCCUPATION_BEFORE_APPROVAL = "occupation_before_approval"  # 未批先占
    ILLEGAL_COLLECTIVE_LAND_TRADE = "illegal_collective_land_trade"  # 非法买卖、租赁集体土地
    UNLICENSED_MINING = "unlicensed_mining"  # 非法无证开采
    ILLEGAL_MINING_RIGHT_TRANSFER = "illegal_mining_right_transfer"  # 非法转让
    INDISCRIMINATE_DIGGING = "indiscriminate_digging"  # 乱采滥挖

    @property
    def resource(self) -> str:
        """``land`` (土地) or ``minerals`` (矿产) — R1 counts them separately."""
        return "land" if self in LAND_VIOLATIONS else "minerals"


LAND_VIOLATIONS = frozenset(
    {Violation.ILLEGAL_LAND_USE, Violation.OCCUPATION_BEFORE_APPROVAL, Violation.ILLEGAL_COLLECTIVE_LAND_TRADE}
)


class ClueSource(StrEnum):
    """Where a case's clue came from (线索来源)."""

    PATROL = "patrol"  # 巡查
    REPORT = "report"  # 举报
    PETITION = "petition"  # 信访
    ASSIGNED = "assigned"  # 上级交办


class Agency(StrEnum):
    """Agencies that handle a case jointly (联合办案, R3) or receive a transfer (移送)."""

    POLICE = "police"  # 公安
    DISCIPLINE = "discipline"  # 监察、纪检
    JUDICIARY = "judiciary"  # 司法机关


JOINT_AGENCIES = frozenset({Agency.POLICE, Agency.DISCIPLINE})


class Channel(StrEnum):
    """How a petition arrived (信访形式)."""

    LETTER = "letter"  # 来信
    VISIT = "visit"  # 来访
    ONLINE = "online"  # 网上信访
    PHONE = "phone"  # 电话


class PetitionCategory(StrEnum):
    """What a petition is about (信访类别)."""

    LAND_EXPROPRIATION = "land_expropriation"  # 征地
    ILLEGAL_LAND_USE = "illegal_land_use"  # 违法用地
    MINING = "mining"  # 矿产
    COMPENSATION = "compensation"  # 补偿
    OTHER = "other"  # 其他


class AssignedFrom(StrEnum):
    """The level that assigned a petition (交办单位); province and central are 省以上交办 (R9)."""

    CITY = "city"
    PROVINCE = "province"
    CENTRAL = "central"


class Meeting(StrEnum):
    """The three meetings (三见面, R16)."""

    LEADER = "leader"  # 与领导见面
    HANDLING_UNIT = "handling_unit"  # 与承办单位见面
    PETITIONER = "petitioner"  # 与写信人见面


class EscalationLevel(StrEnum):
    """Where the petitioner went over our heads (R14)."""

    BEIJING = "beijing"  # 赴京
    PROVINCE = "province"  # 进省
    CITY = "city"  # 来市


class NailCheck(StrEnum):
    """The four checks a nail case (钉子案) needs before closing (R12: 四个不放过)."""

    CAUSE_FOUND = "cause_found"  # 原因不查清不放过
    ERROR_CORRECTED = "error_corrected"  # 错误不纠正不放过
    PETITIONING_STOPPED = "petitioning_stopped"  # 上访不停止不放过
    PETITIONER_SATISFIED = "petitioner_satisfied"  # 群众不满意不放过


class MisconductKind(StrEnum):
    """What an officer is reported for (违纪类型, R7, R8)."""

    EATING = "eating"  # 吃
    TAKING = "taking"  # 拿
    OBSTRUCTING = "obstructing"  # 卡
    DEMANDING = "demanding"  # 要
    CLAIMING = "claiming"  # 报
    CASE_NOT_INVESTIGATED = "case_not_investigated"  # 有案不查
    LAX_DISCIPLINE = "lax_discipline"  # 执纪不严
    DERELICTION = "dereliction"  # 失职
    ABUSE_OF_POWER = "abuse_of_power"  # 滥用职权


class Commendation(StrEnum):
    """Titles an outstanding officer can earn (R8)."""

    LAW_ENFORCEMENT_MODEL = "law_enforcement_model"  # 执法业务标兵
    LAND_RESOURCES_GUARDIAN = "land_resources_guardian"  # 国土资源卫士


class DecisionOutcome(StrEnum):
    """What a supervisor decided on an accountability trigger (责任追究决定)."""

    WARNING = "warning"  # 警告
    CIRCULATED_CRITICISM = "circulated_criticism"  # 通报批评
    DEMERIT = "demerit"  # 记过
    REMOVAL = "removal"  # 调离、免职
    DISMISSED = "dismissed"  # 不予追究


class Role(StrEnum):
    """Who a bearer token speaks for (角色)."""

    CLERK = "clerk"  # 信访工作人员
    OFFICER = "officer"  # 执法人员
    SUPERVISOR = "supervisor"  # 督查
    AUDITOR = "auditor"  # 审计、纪检监察
    ADMIN = "admin"  # 管理员
