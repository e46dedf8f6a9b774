"""Customer KPIs per department and UTC month (SPEC §3, §6), computed by one SQL statement.

Every fact counts in the UTC calendar month in which it happened, for the request's intake
department (the department that owns the request and answers for it to the customer):

- ``requests``: requests opened in the month;
- ``complaints``: requests whose complaint process was opened in the month (a request enters it
  once, from a satisfaction of 2 or less / "not satisfied"); ``complaintsReopened`` counts the
  reopenings separately; ``complaintRate`` = complaints / requests of the same month
  (4 places, half up; null without requests). Requests taken in with category ``complaint`` are
  counted in ``complaintCategoryRequests`` and are not part of the rate: the rate measures how
  often our handling left the customer dissatisfied;
- ``satisfaction``: every recorded score counts in the month it was recorded — a score asked
  again after a complaint counts too, so the distribution shows the first (bad) answer and the
  later one; average over those scores (2 places, half up);
- ``firstResponse``: requests first answered in the month, time from opening (PostgreSQL
  ``percentile_cont`` over the intervals, continuous p50/p90, reported in seconds);
- ``resolution``: requests first resolved in the month, time from opening, likewise;
- ``breached``: of those, how many missed their priority's SLA target (settings).

As of a past moment (``asOf``) the same statement runs over the request tables rebuilt, in
temporary tables, from the requests as they stood then (``fetch_as_of``): facts after the
moment are not there yet.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import strawberry
from strawberry.types import Info

from projections.customers import ServiceRequestsTable
from service.graphql.audit import fetch_as_of
from service.graphql.context import GraphQLContext, ReadError
from service.graphql.service_requests import sla_values

RATE_PLACES = Decimal("0.0001")
AVERAGE_PLACES = Decimal("0.01")
SCORES = range(1, 6)
_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


@strawberry.type
class ScoreCount:
    score: int
    count: int


@strawberry.type
class SatisfactionStats:
    count: int
    average: Decimal | None
    distribution: list[ScoreCount] = strawberry.field(description="Scores 1 to 5, each listed.")


@strawberry.type
class DurationStats:
    count: int
    p50_seconds: Decimal | None
    p90_seconds: Decimal | None
    breached: int = strawberry.field(description="How many missed the SLA target.")


@strawberry.type(description="Customer KPIs of one intake department in one UTC month.")
class CustomerKpi:
    department: str
    month: str = strawberry.field(description="YYYY-MM (UTC).")
    requests: int
    complaints: int
    complaints_reopened: int
    complaint_rate: Decimal | None
    complaint_category_requests: int
    satisfaction: SatisfactionStats
    first_response: DurationStats
    resolution: DurationStats


def _month_start(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    if not _MONTH.fullmatch(value):
        raise ReadError(f"'{name}' must be a month as YYYY-MM", "BAD_MONTH")
    return datetime.strptime(value + "-01", "%Y-%m-%d")


def _kpi_sql(departments: list[str] | None, first: datetime | None,
             last: datetime | None, settings: Any) -> tuple[str, list[Any]]:
    values, params = sla_values(settings)
    dept = " AND department = ANY(%s)" if departments else ""
    dept_params = [departments] if departments else []
    month = "date_trunc('month', {} AT TIME ZONE 'UTC')"
    facts = f"""
      WITH sla_target AS (SELECT * FROM {values}),
      r AS (SELECT s.department, s.category, s.opened_at, s.first_response_at, s.resolved_at,
                   t.response_h, t.resolution_h
            FROM service_requests s LEFT JOIN sla_target t USING (priority)
            WHERE true{dept}),
      facts AS (
        SELECT department, {month.format('opened_at')} AS month,
               CASE WHEN category = 'complaint' THEN 'opened_complaint' ELSE 'opened' END
                   AS kind, NULL::interval AS took, NULL::int AS score, false AS breached
          FROM r
        UNION ALL
        SELECT department, {month.format('first_response_at')}, 'responded',
               first_response_at - opened_at, NULL,
               first_response_at - opened_at > response_h * interval '1 hour'
          FROM r WHERE first_response_at IS NOT NULL
        UNION ALL
        SELECT department, {month.format('resolved_at')}, 'resolved', resolved_at - opened_at,
               NULL, resolved_at - opened_at > resolution_h * interval '1 hour'
          FROM r WHERE resolved_at IS NOT NULL
        UNION ALL
        SELECT department, {month.format('opened_at')},
               CASE WHEN seq = 0 THEN 'complaint' ELSE 'complaint_reopened' END, NULL, NULL,
               false
          FROM service_request_complaints WHERE true{dept}
        UNION ALL
        SELECT department, {month.format('recorded_at')}, 'satisfaction', NULL, score, false
          FROM service_request_satisfaction WHERE true{dept})"""
    params += dept_params * 3
    where = " WHERE true"
    if first is not None:
        where += " AND month >= %s"
        params.append(first)
    if last is not None:
        where += " AND month <= %s"
        params.append(last)
    scores = ", ".join(f"count(*) FILTER (WHERE kind = 'satisfaction' AND score = {n}) AS s{n}"
                       for n in SCORES)
    durations = ", ".join(
        f"count(*) FILTER (WHERE kind = '{k}') AS {k}_n,"
        f" count(*) FILTER (WHERE kind = '{k}' AND breached) AS {k}_breached,"
        f" extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY took)"
        f" FILTER (WHERE kind = '{k}')) AS {k}_p50,"
        f" extract(epoch FROM percentile_cont(0.9) WITHIN GROUP (ORDER BY took)"
        f" FILTER (WHERE kind = '{k}')) AS {k}_p90" for k in ("responded", "resolved"))
    sql = f"""{facts}
      SELECT department, to_char(month, 'YYYY-MM') AS month,
             count(*) FILTER (WHERE kind IN ('opened', 'opened_complaint')) AS requests,
             count(*) FILTER (WHERE kind = 'opened_complaint') AS complaint_category,
             count(*) FILTER (WHERE kind = 'complaint') AS complaints,
             count(*) FILTER (WHERE kind = 'complaint_reopened') AS reopened,
             {scores}, {durations}
      FROM facts{where}
      GROUP BY department, month ORDER BY month, department"""
    return sql, params


def _duration(row: dict[str, Any], kind: str) -> DurationStats:
    return DurationStats(count=row[f"{kind}_n"], p50_seconds=row[f"{kind}_p50"],
                         p90_seconds=row[f"{kind}_p90"], breached=row[f"{kind}_breached"])


def _kpi(row: dict[str, Any]) -> CustomerKpi:
    counts = {n: row[f"s{n}"] for n in SCORES}
    scored = sum(counts.values())
    average = (Decimal(sum(n * c for n, c in counts.items())) / scored).quantize(
        AVERAGE_PLACES, ROUND_HALF_UP) if scored else None
    rate = (Decimal(row["complaints"]) / row["requests"]).quantize(
        RATE_PLACES, ROUND_HALF_UP) if row["requests"] else None
    return CustomerKpi(
        department=row["department"], month=row["month"], requests=row["requests"],
        complaints=row["complaints"], complaints_reopened=row["reopened"],
        complaint_rate=rate, complaint_category_requests=row["complaint_category"],
        satisfaction=SatisfactionStats(
            count=scored, average=average,
            distribution=[ScoreCount(score=n, count=c) for n, c in counts.items()]),
        first_response=_duration(row, "responded"), resolution=_duration(row, "resolved"))


async def customer_kpis(info: Info[GraphQLContext, None], departments: list[str] | None,
                        from_month: str | None, to_month: str | None,
                        wait_for_position: int | None,
                        as_of: datetime | None = None) -> list[CustomerKpi]:
    """The KPIs; as of a moment, the same statement over the request tables rebuilt as of
    then (requests opened by then, with what had happened to them by then)."""
    ctx = info.context
    ctx.require_actor()
    first = _month_start(from_month, "fromMonth")
    last = _month_start(to_month, "toMonth")
    await ctx.wait_for_position(None if as_of else wait_for_position)
    sql, params = _kpi_sql(departments, first, last, ctx.container.settings)
    [rows] = await fetch_as_of(info, as_of, [ServiceRequestsTable()], [(sql, params)])
    return [_kpi(row) for row in rows]
