"""The demo's storylines: each tells one record's life through the policy documents' workflows.

Who does what follows SPEC §1: members propose and report, managers review and evaluate,
leadership approves, finance reviews budgets, customer service takes requests in, the analyst
sets indicators and targets — and nobody checks their own work. A storyline stops where its
record should be left (every project, service-request, risk and budget state appears), so the
department looks like one in the middle of its year.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from domain.budget import Budget
from domain.customer import Customer
from domain.indicators import IndicatorTarget
from domain.project import Project
from domain.risk import Risk, suggest_strategy
from domain.service_request import ServiceRequest
from service.demo.seeder import AGENTS, FINANCE, LEADERSHIP, MANAGERS, MEMBERS, PEOPLE, Story

DEPARTMENT = "ops"
ESCALATION_DEPARTMENT = "tech"


@dataclass(frozen=True)
class Made:
    record_type: str
    id: str
    status: str


@dataclass(frozen=True)
class CustomerMade(Made):
    name: str


@dataclass(frozen=True)
class ProjectMade(Made):
    pass


# -- sizes ------------------------------------------------------------------------------------

PROJECT_STATES = ("draft", "submitted", "awaiting_approval", "rejected", "initiated", "planning",
                  "plan_review", "in_execution", "in_execution", "in_execution",
                  "acceptance_review", "accepted", "closed", "closed", "closed", "cancelled")
CUSTOMER_STATES = ("active", "active", "prospect", "active", "dormant", "lost", "active",
                   "reactivated")
REQUEST_FLOWS = ("closed_direct", "closed_escalated", "closed_after_complaint", "open",
                 "acknowledged", "escalated", "resolved", "complaint_investigation",
                 "complaint_resolved", "complaint_reopened")
RISK_CASES = (
    # (likelihood, impact, status the story ends in)
    (1, 2, "identified"), (3, 3, "assessed"), (4, 3, "responding"), (5, 5, "monitoring"),
    (2, 4, "responding"), (2, 2, "closed"), (4, 4, "monitoring"), (3, 2, "closed"),
    (4, 5, "reopened"), (3, 4, "warned"),
)
BUDGETS = ("ops-previous", "ops-current", "ops-next", "tech-current", "tech-next")


def customer_count(scale: int) -> int:
    return len(CUSTOMER_STATES) * scale


def project_count(scale: int) -> int:
    return len(PROJECT_STATES) * scale


def request_count(scale: int) -> int:
    return len(REQUEST_FLOWS) * 2 * scale


def risk_count(scale: int) -> int:
    return len(RISK_CASES) * scale


def estimated_commands(scale: int) -> int:
    """For the progress bar: roughly how many commands a run takes."""
    return (customer_count(scale) * 6 + project_count(scale) * 13 + request_count(scale) * 5
            + risk_count(scale) * 9 + 40 + 40 * scale + 8)


# -- names ------------------------------------------------------------------------------------

SURNAMES = "王李張劉陳楊趙黃周吳徐孫馬朱胡郭何林高羅"
GIVEN = ("偉", "芳", "娜", "敏", "靜", "麗", "強", "磊", "軍", "洋", "勇", "艷", "傑", "娟", "濤",
         "明", "超", "秀英", "霞", "平", "剛", "桂英")
PINYIN = ("wei", "fang", "na", "min", "jing", "li", "qiang", "lei", "jun", "yang", "yong", "yan",
          "jie", "juan", "tao", "ming", "chao", "xiuying", "xia", "ping", "gang", "guiying")
COMPANIES = ("華信科技", "東方物流", "恒泰製造", "安康醫療器械", "新興零售", "遠航電子商務",
             "鼎盛建材", "海瀾紡織", "金橋能源", "藍天教育", "瑞豐食品", "正和諮詢")
INDUSTRIES = ("manufacturing", "logistics", "retail", "healthcare", "finance", "education",
              "energy", "e-commerce")
CHANNELS = ("referral", "trade show", "website", "cold call", "partner")
PROJECT_NAMES = ("客戶服務熱線升級", "運營數據平台建設", "供應商管理流程優化", "年度客戶滿意度調查",
                 "倉儲自動化試點", "線上商城改版", "新員工培訓體系", "成本核算系統對接",
                 "會員積分計劃", "應急響應機制建設", "物流配送路線優化", "社交媒體營銷活動",
                 "合同管理電子化", "售後服務標準化", "區域市場拓展", "辦公流程數字化")
CODE_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def _person_name(story: Story) -> tuple[str, str]:
    i = story.rng.randrange(len(GIVEN))
    return story.pick(SURNAMES) + GIVEN[i], PINYIN[i]


def _money(value: int | str) -> Decimal:
    return Decimal(value).quantize(Decimal("0.01"))


def _day(story: Story, first_month: int = 1, last_month: int = 6) -> date:
    return date(story.year, story.rng.randint(first_month, last_month), story.rng.randint(1, 28))


def _moment(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


# -- customers (客戶信息檔案) --------------------------------------------------------------------

def customer(story: Story, i: int) -> CustomerMade:
    target = CUSTOMER_STATES[i % len(CUSTOMER_STATES)]
    individual = i % 5 == 4
    registrar = story.pick([*AGENTS, *MEMBERS[:2]])
    manager = story.pick(MANAGERS)
    if individual:
        name, _ = _person_name(story)
        extra: dict[str, Any] = {"kind": "individual"}
    else:
        name = f"{COMPANIES[i % len(COMPANIES)]}有限公司" + (
            f"（第{i // len(COMPANIES) + 1}分公司）" if i >= len(COMPANIES) else "")
        extra = {"kind": "company",
                 "credit_code": "91" + "".join(story.pick(CODE_CHARS) for _ in range(16))}
    made = story.do(registrar, Customer, "register", department=DEPARTMENT, name=name,
                    industry=story.pick(INDUSTRIES), acquisition_channel=story.pick(CHANNELS),
                    needs="穩定的服務響應與定期業務回顧", preferences="電話溝通，工作日上午",
                    segment=story.pick(("A", "B", "B", "C")), **extra)
    cid = made["id"]
    story.do(manager, Customer, "assign_owner", cid, account_owner=story.pick(MEMBERS).user_id)
    for n in range(1 if individual else story.rng.randint(1, 2)):
        contact, pinyin = (name, "customer") if individual else _person_name(story)
        story.do(registrar, Customer, "add_contact", cid, name=contact,
                 phone=f"+86 13{story.rng.randint(0, 9)} {story.rng.randint(1000, 9999)} "
                       f"{story.rng.randint(1000, 9999)}",
                 email=f"{pinyin}.{i}{n}@example.com",
                 title=None if individual else story.pick(("採購經理", "運營總監", "IT 主管")))
    for _ in range(story.rng.randint(1, 3)):
        day = _day(story)
        story.do(story.pick(MEMBERS), Customer, "record_interaction", cid, date=day,
                 channel=story.pick(("phone", "email", "online_chat", "visit", "meeting")),
                 summary="回顧服務使用情況，確認下季度需求",
                 follow_up_date=day + timedelta(days=14))
    agent = story.pick(AGENTS)
    path = {"prospect": [], "active": ["active"], "dormant": ["active", "dormant"],
            "lost": ["active", "lost"], "reactivated": ["active", "dormant", "active"]}[target]
    reasons = {"active": "簽訂首份服務合同", "dormant": "連續兩季度無訂單",
               "lost": "客戶轉向競爭對手"}
    for step, status in enumerate(path):
        reason = "客戶恢復合作，重新下單" if step == 2 else reasons[status]
        story.do(agent, Customer, "change_status", cid, to=status, reason=reason)
    if target in ("active", "reactivated") and story.rng.random() < 0.6:
        story.do(agent, Customer, "record_feedback", cid, subject="售後服務",
                 text="響應及時，希望增加線上自助查詢功能", rating=story.rng.randint(3, 5))
    status = "active" if target == "reactivated" else target
    return CustomerMade("customer", cid, status, name)


# -- service requests (業務受理) ---------------------------------------------------------------

def service_request(story: Story, arg: tuple[int, CustomerMade]) -> Made:
    i, cust = arg
    flow = REQUEST_FLOWS[i % len(REQUEST_FLOWS)]
    agent = story.pick(AGENTS)
    worker = story.pick([PEOPLE["song.yu"], PEOPLE["tang.hui"]])
    category = {"closed_after_complaint": "complaint", "complaint_reopened": "complaint"}.get(
        flow, story.pick(("inquiry", "application", "suggestion", "inquiry")))
    made = story.do(agent, ServiceRequest, "open", customer_id=cust.id, department=DEPARTMENT,
                    channel=story.pick(("phone", "email", "online_chat", "visit")),
                    category=category, priority=story.pick(("low", "normal", "normal", "high",
                                                            "urgent")),
                    description="客戶來電反映訂單狀態查詢不到，請協助核實並回覆")
    rid = made["id"]
    if flow == "open":
        return Made("service_request", rid, "open")
    if flow in ("acknowledged", "escalated", "closed_escalated") or story.rng.random() < 0.5:
        story.do(agent, ServiceRequest, "acknowledge", rid, note="已致電客戶確認收到，正在處理")
    if flow == "acknowledged":
        return Made("service_request", rid, "open")
    if flow in ("escalated", "closed_escalated"):
        story.do(agent, ServiceRequest, "escalate", rid, to_department=ESCALATION_DEPARTMENT,
                 assignee=worker.user_id, note="涉及系統數據核對，轉技術部處理")
        story.do(worker, ServiceRequest, "record_progress", rid, note="已定位到數據同步延遲")
        if flow == "escalated":
            return Made("service_request", rid, "escalated")
        story.do(worker, ServiceRequest, "record_result", rid, result="修復同步任務，數據已更正")
    else:
        story.do(agent, ServiceRequest, "resolve_directly", rid,
                 resolution="核實後向客戶說明處理進度並提供查詢方式")
    if flow == "resolved":
        return Made("service_request", rid, "resolved")
    if flow in ("closed_direct", "closed_escalated"):
        story.do(agent, ServiceRequest, "record_satisfaction", rid,
                 score=story.rng.randint(4, 5), note="客戶表示滿意")
        return Made("service_request", rid, "closed")
    # The complaint process (投訴): an unsatisfied customer.
    story.do(agent, ServiceRequest, "record_satisfaction", rid, score=story.rng.randint(1, 2),
             note="客戶對處理時長不滿意")
    if flow == "complaint_investigation":
        return Made("service_request", rid, "complaint_investigation")
    story.do(agent, ServiceRequest, "investigate_complaint", rid,
             findings="首次響應超過承諾時限，原因為值班人手不足")
    story.do(agent, ServiceRequest, "resolve_complaint", rid,
             resolution="向客戶致歉並贈送一個月增值服務，調整排班")
    if flow == "complaint_resolved":
        return Made("service_request", rid, "complaint_resolved")
    story.do(agent, ServiceRequest, "record_satisfaction", rid, score=4, note="接受處理方案")
    if flow == "complaint_reopened":
        story.do(agent, ServiceRequest, "reopen_complaint", rid,
                 reason="客戶再次來電，問題復現")
        return Made("service_request", rid, "complaint_investigation")
    return Made("service_request", rid, "closed")


# -- projects (項目) ---------------------------------------------------------------------------

def project(story: Story, arg: tuple[int, list[CustomerMade]]) -> ProjectMade:
    i, customers = arg
    target = PROJECT_STATES[i % len(PROJECT_STATES)]
    proposer = story.pick(MEMBERS)
    reviewer = story.pick(MANAGERS)
    approver = story.pick(LEADERSHIP)
    start = _day(story, 1, 4)
    end = start + timedelta(days=story.rng.randint(120, 300))
    name = PROJECT_NAMES[i % len(PROJECT_NAMES)] + (
        f"（第{i // len(PROJECT_NAMES) + 1}期）" if i >= len(PROJECT_NAMES) else "")
    linked = story.pick(customers).id if customers and story.rng.random() < 0.4 else None
    budget = _money(story.rng.randrange(50, 500) * 1000)
    pid = story.do(proposer, Project, "propose", department=DEPARTMENT, name=name,
                   background="現行流程依賴人工，效率低且難以追溯", objectives="提升效率 30%，"
                   "實現全流程線上化", scope="流程梳理、系統配置、培訓與推廣",
                   requested_budget=budget, expected_revenue=_money(int(budget) // 2),
                   start_date=start, end_date=end, customer_id=linked)["id"]

    def made(status: str) -> ProjectMade:
        return ProjectMade("project", pid, status)

    if target == "draft":
        return made("draft")
    story.do(proposer, Project, "submit", pid)
    if target == "submitted":
        return made("submitted")
    if story.rng.random() < 0.3:  # the manager sends it back once (初審退回)
        story.do(reviewer, Project, "return_application", pid,
                 reason="預算依據不足，請補充成本測算")
        story.do(proposer, Project, "edit_application", pid,
                 requested_budget=budget - _money(10000),
                 background="現行流程依賴人工，效率低且難以追溯；已補充成本測算")
        story.do(proposer, Project, "submit", pid)
    story.do(reviewer, Project, "pass_preliminary_review", pid, comment="符合部門年度重點")
    if target == "awaiting_approval":
        return made("awaiting_approval")
    if target == "rejected":
        story.do(approver, Project, "reject", pid, reason="與公司年度戰略重點不符")
        return made("rejected")
    story.do(approver, Project, "approve", pid, comment="同意立項")
    if target == "initiated":
        return made("initiated")
    lead = story.pick([m for m in MEMBERS if m is not proposer])
    manager = story.pick(MANAGERS)
    story.do(manager, Project, "appoint_lead", pid, user_id=lead.user_id, name=lead.name)
    team = [m for m in MEMBERS if m is not lead]
    story.rng.shuffle(team)
    helpers = team[:2]
    for helper in helpers:
        story.do(manager, Project, "add_team_member", pid, user_id=helper.user_id,
                 name=helper.name, role=story.pick(("analyst", "developer", "coordinator")))
    if target == "cancelled":
        story.do(approver, Project, "cancel", pid, reason="業務調整，項目暫停")
        return made("cancelled")
    if target == "planning":
        if story.rng.random() < 0.5:
            story.do(lead, Project, "submit_plan", pid, **_plan(story, start, lead, helpers))
            story.do(manager, Project, "return_plan", pid, reason="里程碑過於集中，請重新分解")
        return made("planning")
    story.do(lead, Project, "submit_plan", pid, **_plan(story, start, lead, helpers))
    if target == "plan_review":
        return made("plan_review")
    story.do(manager, Project, "approve_plan", pid, comment="計劃合理，同意執行並報備")
    _execute(story, pid, lead, helpers, manager, start, budget)
    if target == "in_execution":
        return made("in_execution")
    story.do(lead, Project, "request_acceptance", pid, report="各項目標已達成，交付物齊備")
    if target == "acceptance_review":
        return made("acceptance_review")
    reviewer_of_acceptance = story.pick(LEADERSHIP)
    criteria: dict[str, Any] = {"objectives_met": True, "deliverable_quality": True,
                                "cost_control": True, "documentation_complete": True}
    if story.rng.random() < 0.3:  # failed once: rectification, then accepted
        story.do(reviewer_of_acceptance, Project, "review_acceptance", pid,
                 **{**criteria, "documentation_complete": False},
                 findings="操作手冊不完整", rectification_items=["補充操作手冊", "完善培訓記錄"])
        story.do(lead, Project, "report_progress", pid, period=f"{story.year}-07",
                 percent_complete=100, work_done="已補充操作手冊和培訓記錄")
        story.do(lead, Project, "request_acceptance", pid, report="整改項已完成")
    story.do(reviewer_of_acceptance, Project, "review_acceptance", pid, **criteria,
             findings="達到驗收標準")
    if target == "accepted":
        return made("accepted")
    story.do(lead, Project, "close", pid, summary="項目按計劃完成，達成主要目標",
             lessons_learned="需求確認階段應更早引入一線員工")
    return made("closed")


def _plan(story: Story, start: date, lead: Any, helpers: list[Any]) -> dict[str, Any]:
    milestones = [{"name": name, "due_date": start + timedelta(days=days),
                   "budget": _money(story.rng.randrange(10, 60) * 1000)}
                  for name, days in (("需求確認", 30), ("方案實施", 90), ("驗收準備", 120))]
    owners = [lead, *helpers]
    tasks = [
        {"name": "現狀調研", "owner": owners[1 % len(owners)].user_id, "start_date": start,
         "due_date": start + timedelta(days=20), "milestone": "需求確認"},
        {"name": "需求說明書", "owner": lead.user_id, "start_date": start + timedelta(days=10),
         "due_date": start + timedelta(days=30), "milestone": "需求確認",
         "depends_on": ["現狀調研"]},
        {"name": "系統配置", "owner": owners[2 % len(owners)].user_id,
         "start_date": start + timedelta(days=31), "due_date": start + timedelta(days=80),
         "milestone": "方案實施", "depends_on": ["需求說明書"]},
        {"name": "用戶培訓", "owner": owners[1 % len(owners)].user_id,
         "start_date": start + timedelta(days=81), "due_date": start + timedelta(days=110),
         "milestone": "驗收準備", "depends_on": ["系統配置"]},
    ]
    resources = [{"milestone": m["name"], "people": [o.user_id for o in owners],
                  "amount": m["budget"]} for m in milestones]
    return {"milestones": milestones, "tasks": tasks, "resources": resources,
            "summary": "三個里程碑，四項任務"}


def _execute(story: Story, pid: str, lead: Any, helpers: list[Any], manager: Any,
             start: date, budget: Decimal) -> None:
    """Execution (執行): tasks move, a milestone is reached, progress reported, a meeting held,
    the manager evaluates (監控與評估)."""
    tasks = {t["name"]: t for t in story.load(Project, pid).tasks}
    first = tasks["現狀調研"]
    owner = next(p for p in (lead, *helpers) if p.user_id == first["owner"])
    story.do(owner, Project, "update_task_status", pid, task_id=first["id"], status="doing")
    story.do(owner, Project, "update_task_status", pid, task_id=first["id"], status="done")
    story.do(lead, Project, "update_task_status", pid, task_id=tasks["需求說明書"]["id"],
             status="doing")
    milestone = story.load(Project, pid).milestones[0]
    late = story.rng.random() < 0.3
    story.do(lead, Project, "complete_milestone", pid, milestone_id=milestone["id"],
             completed_on=milestone["due_date"] + timedelta(days=7 if late else -2))
    story.do(lead, Project, "report_progress", pid, period=f"{start.year}-{start.month:02d}",
             percent_complete=story.rng.randint(25, 60), work_done="完成現狀調研，需求說明書編寫中",
             problems="部分部門需求變化頻繁" if late else "",
             measures="每週需求確認會" if late else "", next_period_plan="完成系統配置")
    story.do(lead, Project, "record_meeting", pid, date=start + timedelta(days=35),
             attendees=[lead.name, *(h.name for h in helpers), manager.name],
             decisions="確認需求範圍凍結，下週啟動系統配置")
    verdict = "at_risk" if late else "on_track"
    quarter = f"{start.year}-Q{(start.month - 1) // 3 + 1}"
    story.do(manager, Project, "evaluate", pid, period=quarter,
             schedule_note="第一個里程碑延遲一週" if late else "進度符合計劃",
             quality_note="交付文檔質量良好", quality_rating=story.rng.randint(3, 5),
             actual_cost=_money(int(budget) * story.rng.randint(20, 45) // 100), verdict=verdict,
             adjustments="增加一名配置人員" if late else "")
    story.do(lead, Project, "update_task_status", pid, task_id=tasks["需求說明書"]["id"],
             status="done")


# -- risks (風險) ------------------------------------------------------------------------------

def risk(story: Story, arg: tuple[int, list[ProjectMade], list[CustomerMade]]) -> Made:
    i, projects, customers = arg
    likelihood, impact, target = RISK_CASES[i % len(RISK_CASES)]
    owner = story.pick(MEMBERS)
    manager = story.pick(MANAGERS)
    scope = ("department", "project", "customer", "company")[i % 4]
    linked = None
    if scope == "project" and projects:
        linked = story.pick(projects).id
    elif scope == "customer" and customers:
        linked = story.pick(customers).id
    else:
        scope = "department" if scope != "company" else scope
    title, category = story.pick((("核心供應商交付延遲", "operational"),
                                  ("客戶數據洩露", "data_security"),
                                  ("主要客戶流失", "customer"), ("原材料價格上漲", "financial"),
                                  ("新規合規要求", "legal_compliance"),
                                  ("系統升級失敗", "technical"), ("競爭對手降價", "competition")))
    rid = story.do(owner, Risk, "identify", title=title, description=f"{title}可能影響部門運營",
                   category=category, scope=scope, department=DEPARTMENT,
                   owner=owner.user_id, owner_name=owner.name, linked_id=linked)["id"]
    if target == "identified":
        return Made("risk", rid, "identified")
    exposure = _money(likelihood * impact * 20000) if likelihood * impact >= 10 else None
    story.do(owner, Risk, "assess", rid, likelihood=likelihood, impact=impact,
             rationale="根據近兩年同類事件頻率與影響評估", financial_exposure=exposure)
    if target == "assessed":
        return Made("risk", rid, "assessed")
    strategy = suggest_strategy(likelihood, impact)  # the policy's suggestion (SPEC §4)
    if strategy == "reduce" and story.rng.random() < 0.3:
        story.do(owner, Risk, "choose_response", rid, strategy="transfer",
                 justification="已有保險覆蓋此類損失")
    else:
        story.do(owner, Risk, "choose_response", rid, strategy=strategy)
    helper = story.pick(MEMBERS)
    for action, days in (("制定備選供應方案", 30), ("每月風險回顧", 60)):
        story.do(owner, Risk, "add_action", rid, action=action, owner=helper.user_id,
                 due_date=date(story.year, 6, 30) - timedelta(days=90 - days))
    actions = story.load(Risk, rid).actions
    story.do(helper, Risk, "update_action", rid, action_id=actions[0]["id"], status="in_progress",
             percent=50, progress_note="已聯繫兩家備選供應商")
    if likelihood * impact >= 10:  # high and critical risks have an emergency plan (應急預案)
        story.do(owner, Risk, "set_emergency_plan", rid,
                 trigger_conditions="關鍵指標連續兩週超過閾值",
                 steps=["啟動應急小組", "通知受影響客戶", "切換備選方案"],
                 responsible=[owner.user_id, manager.user_id])
    if target == "responding":
        return Made("risk", rid, "responding")
    story.do(owner, Risk, "start_monitoring", rid)
    if target in ("monitoring", "warned", "reopened"):
        story.do(PEOPLE["lin.na"], Risk, "define_indicator", rid, name="每週客訴量",
                 unit="件", threshold=Decimal("20"), direction="above")
        indicator = story.load(Risk, rid).indicators[0]["id"]
        for week, value in enumerate((12, 17, 26) if target != "monitoring" else (8, 11)):
            story.do(owner, Risk, "record_reading", rid, indicator_id=indicator,
                     value=Decimal(value),
                     observed_at=_moment(date(story.year, 5, 1) + timedelta(weeks=week)))
    if target == "warned":  # early warning (預警) → acknowledged → re-assessed
        warning = story.load(Risk, rid).warnings[-1]["id"]
        story.do(owner, Risk, "acknowledge_warning", rid, warning_id=warning,
                 note="已召集應急小組評估")
        story.do(owner, Risk, "assess", rid, likelihood=min(5, likelihood + 1), impact=impact,
                 rationale="預警觸發後重新評估，可能性上調")
        return Made("risk", rid, "assessed")
    if target == "monitoring":
        return Made("risk", rid, "monitoring")
    if target == "reopened":
        story.do(manager, Risk, "close", rid, outcome="materialised",
                 impact_note="客訴量激增，損失約五萬元")
        story.do(manager, Risk, "reopen", rid, reason="同類問題再次出現")
        return Made("risk", rid, "assessed")
    story.do(helper, Risk, "update_action", rid, action_id=actions[0]["id"], status="done")
    story.do(owner, Risk, "close", rid, outcome="mitigated" if likelihood > 2 else "accepted")
    return Made("risk", rid, "closed")


# -- budgets (預算) ----------------------------------------------------------------------------

def _lines(story: Story, department: str) -> list[dict[str, Any]]:
    base = 1 if department == DEPARTMENT else 0.6
    amounts = {"personnel": 1_200_000, "materials": 300_000, "marketing": 250_000,
               "travel": 60_000, "management_admin": 120_000, "other": 50_000}
    names = {"personnel": "人員成本", "materials": "物料採購", "marketing": "市場推廣",
             "travel": "差旅費", "management_admin": "行政管理費", "other": "其他費用"}
    lines: list[dict[str, Any]] = [
        {"kind": "cost" if cat in ("personnel", "materials") else "expense", "category": cat,
         "name": names[cat], "amount": _money(int(amount * base))}
        for cat, amount in amounts.items()]
    revenue = _money(int(2_400_000 * base))
    lines.append({"kind": "revenue", "category": "other", "name": "服務收入", "amount": revenue,
                  "monthly": [revenue / 12] * 12})
    return lines


def budget(story: Story, arg: tuple[str, list[ProjectMade]]) -> Made:
    name, projects = arg
    department = DEPARTMENT if name.startswith("ops") else ESCALATION_DEPARTMENT
    year = story.year + {"previous": -1, "current": 0, "next": 1}[name.split("-")[1]]
    manager = PEOPLE["wang.min"] if department == DEPARTMENT else PEOPLE["xu.hao"]
    finance, issuer = FINANCE
    approver = story.pick(LEADERSHIP)
    policy = "block" if department == ESCALATION_DEPARTMENT else "warn"
    bid = story.do(manager, Budget, "compile", department=department, fiscal_year=year,
                   lines=_lines(story, department), overspend_policy=policy)["id"]
    story.do(manager, Budget, "submit", bid)
    if name == "tech-next":
        return Made("budget", bid, "submitted")
    if name == "ops-current":  # finance returns it once (退回修改)
        story.do(finance, Budget, "return_for_revision", bid, reason="市場推廣預算缺少測算依據")
        lines = _lines(story, department)
        lines[2]["amount"] = _money(220_000)
        story.do(manager, Budget, "revise_draft", bid, lines=lines)
        story.do(manager, Budget, "submit", bid)
    story.do(finance, Budget, "pass_finance_review", bid)
    if name == "ops-next":
        return Made("budget", bid, "finance_reviewed")
    story.do(approver, Budget, "approve", bid)
    story.do(issuer, Budget, "issue", bid, comment="預算下達")
    story.do(manager, Budget, "start_execution", bid)
    state = story.load(Budget, bid)
    line_of = {line["category"]: line["id"] for line in state.lines if line["kind"] != "revenue"}
    revenue_line = next(line["id"] for line in state.lines if line["kind"] == "revenue")
    recorders = [*MEMBERS[:3], manager] if department == DEPARTMENT else [PEOPLE["song.yu"]]
    executing = [p.id for p in projects if p.status in ("in_execution", "acceptance_review",
                                                        "accepted", "closed")]
    n = 0

    def actual(category: str, amount: int, month: int, who: Any = None, **extra: Any) -> None:
        nonlocal n
        n += 1
        line = revenue_line if category == "revenue" else line_of[category]
        project_id = (story.pick(executing) if department == DEPARTMENT and executing
                      and category in ("materials", "marketing") and story.rng.random() < 0.5
                      else None)
        story.do(who or story.pick(recorders), Budget, "record_actual", bid, line_id=line,
                 amount=_money(amount), date=date(year, month, story.rng.randint(1, 28)),
                 reference=f"{department.upper()}-{year}-{n:04d}", project_id=project_id,
                 **extra)

    # Routine spending stays under 80 % of each line (the warnings come from travel below).
    routine = ("personnel", "materials", "marketing", "management_admin")
    count = 10 * story.seeder.scale
    per_line = -(-count // len(routine))
    amount_of = {line["category"]: int(line["amount"]) for line in state.lines}
    for k in range(count):
        category = routine[k % len(routine)]
        share = amount_of[category] * 0.6 / per_line * story.rng.uniform(0.7, 1.3)
        actual(category, int(share) // 100 * 100, 1 + k % 6)
        if k % 3 == 0:
            actual("revenue", story.rng.randrange(50, 250) * 1000, 1 + k % 6)
    if name == "ops-current":
        # Travel runs over: 80 % and 100 % warnings (預警), then an adjustment (預算調整).
        for amount, month in ((30_000, 2), (20_000, 3), (12_000, 4)):
            actual("travel", amount, month)
        story.do(manager, Budget, "request_adjustment", bid, reason="新增華南區域客戶拜訪計劃",
                 changes=[{"line_id": line_of["travel"], "kind": "expense",
                           "category": "travel", "name": "差旅費", "amount": _money(90_000)},
                          {"kind": "expense", "category": "other", "name": "數據服務",
                           "amount": _money(40_000)}])
        adjustment = story.load(Budget, bid).adjustments[-1]["id"]
        story.do(finance, Budget, "pass_adjustment_finance_review", bid,
                 adjustment_id=adjustment)
        story.do(story.pick(LEADERSHIP), Budget, "approve_adjustment", bid,
                 adjustment_id=adjustment)
        actual("travel", 8_000, 5)
        story.do(manager, Budget, "request_adjustment", bid, reason="行政管理費轉入市場推廣",
                 changes=[{"line_id": line_of["marketing"], "kind": "expense",
                           "category": "marketing", "name": "市場推廣",
                           "amount": _money(260_000)}])
        second = story.load(Budget, bid).adjustments[-1]["id"]
        story.do(finance, Budget, "return_adjustment", bid, adjustment_id=second,
                 reason="請先說明行政管理費的節餘來源")
    if name == "tech-current":  # under the block policy leadership overrides, with a reason
        actual("travel", 30_000, 3)
        actual("travel", 10_000, 4, PEOPLE["ma.jun"],
               override_reason="重大故障現場支援，特批超支")
    if name.endswith("previous"):
        story.do(finance, Budget, "close_year", bid, reason="年度結算完成")
        return Made("budget", bid, "closed")
    return Made("budget", bid, "in_execution")


# -- indicator targets (運營指標) --------------------------------------------------------------

def targets(story: Story, _arg: None) -> Made:
    analyst = PEOPLE["lin.na"]
    last = ""
    for indicator, target in (("satisfaction", "4.2"), ("complaint_rate", "8"),
                              ("first_response_hours", "4"), ("handling_hours", "48"),
                              ("on_time_milestone_rate", "85"), ("budget_utilisation", "60"),
                              ("open_high_risks", "3")):
        last = story.do(analyst, IndicatorTarget, "define", department=DEPARTMENT,
                        indicator=indicator, target=Decimal(target))["id"]
    story.do(analyst, IndicatorTarget, "revise", last, target=Decimal("2"),
             comment="管理層要求收緊")
    return Made("indicator_target", last, "active")

