"""Reads for settlement and the month-to-date estimate.

Each reader takes a batch of account ids (settlement reads a batch of
accounts with one query per table); the single-account forms used by the
console are thin wrappers.
"""
from __future__ import annotations

import bisect
import copy
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from django.db.models import Count, F, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce

from accounts.models import Account
from core.money import ZERO, ZERO_MONEY, round_money
from core.periods import Period, PeriodError
from usage.models import DailyUsage, EmailPack, Price

from .calculation import (
    Calculation,
    PackState,
    PriceFn,
    UsageRow,
    lines_compute,
    plan_step,
    usage_periods,
)
from .models import Bill, BillLine, LineStatus, PackDeduction


class PeriodOutOfRange(PeriodError):
    """A well-formed period the account has nothing for (in the future, or
    before its first usage or bill)."""


PriorDataFlow = dict[tuple[Period, str], tuple[Decimal, Decimal, Decimal]]


def latest_due_period(now: dt.datetime) -> Period:
    """The most recent period whose bill time has passed at ``now``."""
    candidate = Period.current(now).previous()
    return candidate if candidate.is_billable(now) else candidate.previous()


def usage_unbilled_by_account(*, account_ids: Iterable[int], before: dt.date,
                              for_update: bool = False) -> dict[int, list[UsageRow]]:
    """Daily usage on days before ``before`` not yet covered by a bill, per
    account, in day order. ``for_update`` locks the rows (settlement marks
    exactly what it read as billed)."""
    qs = DailyUsage.objects.filter(account_id__in=list(account_ids), day__lt=before,
                                   quantity__gt=F("billed_quantity"))
    if for_update:
        qs = qs.select_for_update()
    out: dict[int, list[UsageRow]] = defaultdict(list)
    for pk, account_id, service, region, result, day, quantity, billed in qs.order_by(
        "account_id", "day", "id"
    ).values_list("id", "account_id", "service_id", "region_id", "result", "day", "quantity", "billed_quantity"):
        out[account_id].append(UsageRow(id=pk, service=service, region=region, result=result, day=day,
                                        quantity=quantity - billed, row_quantity=quantity))
    return out


def usage_unbilled(*, account: Account, before: dt.date, for_update: bool = False) -> list[UsageRow]:
    """Daily usage of ``account`` on days before ``before`` not yet covered by a bill."""
    return usage_unbilled_by_account(account_ids=[account.pk], before=before, for_update=for_update)[account.pk]


def packs_state_by_account(*, account_ids: Iterable[int]) -> dict[int, list[PackState]]:
    """Email packs with what each still holds (its quantity less its deductions), per account."""
    packs = (EmailPack.objects.filter(account_id__in=list(account_ids))
             .annotate(used=Coalesce(Sum("deductions__quantity"), 0))
             .values_list("id", "account_id", "reference", "region_id", "valid_from", "valid_until",
                          "quantity", "used"))
    out: dict[int, list[PackState]] = defaultdict(list)
    for pk, account_id, reference, region, valid_from, valid_until, quantity, used in packs:
        out[account_id].append(PackState(id=pk, reference=reference, region=region, valid_from=valid_from,
                                         valid_until=valid_until, remaining=quantity - used))
    return out


def packs_state(*, account: Account) -> list[PackState]:
    """The account's email packs with what each still holds."""
    return packs_state_by_account(account_ids=[account.pk])[account.pk]


def price_lookup(*, currency: str) -> PriceFn:
    """``price_for(service, region, period)``: the unit price in effect on
    the period's first day (latest ``effective_from`` on or before it)."""
    table: dict[tuple[str, str], tuple[list[dt.date], list[Decimal]]] = {}
    for service, region, day, unit_price in (
        Price.objects.filter(currency=currency)
        .order_by("service_id", "region_id", "effective_from")
        .values_list("service_id", "region_id", "effective_from", "unit_price")
    ):
        days, prices = table.setdefault((service, region), ([], []))
        days.append(day)
        prices.append(unit_price)

    def price_for(service: str, region: str, period: Period) -> Decimal | None:
        entry = table.get((service, region))
        if not entry:
            return None
        i = bisect.bisect_right(entry[0], period.first_day)
        return entry[1][i - 1] if i else None

    return price_for


def prior_data_flow_by_account(*, periods: dict[int, set[Period]]) -> dict[int, PriorDataFlow]:
    """For billed periods (``periods[account id]``): (traffic, emails, free GB
    deducted) that their lines, regular and adjustment, covered per region."""
    wanted = {account_id: {str(p) for p in ps} for account_id, ps in periods.items() if ps}
    out: dict[int, dict[tuple[Period, str], list[Decimal]]] = defaultdict(
        lambda: defaultdict(lambda: [ZERO, ZERO, ZERO]))
    if not wanted:
        return {}
    lines = BillLine.objects.filter(bill__account_id__in=list(wanted), service_id__in=["email", "data_flow"])
    for account_id, bill_period, adjustment_for, service, region, quantity, deducted in lines.values_list(
        "bill__account_id", "bill__period", "adjustment_for", "service_id", "region_id", "usage_quantity",
        "deducted_quantity",
    ):
        original = adjustment_for or bill_period
        if original not in wanted[account_id]:
            continue
        acc = out[account_id][(Period.parse(original), region)]
        if service == "data_flow":
            acc[0] += quantity
            acc[2] += deducted
        else:
            acc[1] += quantity
    return {account_id: {k: tuple(v) for k, v in per.items()} for account_id, per in out.items()}


def prior_data_flow(*, account: Account, periods: set[Period]) -> PriorDataFlow:
    """For billed periods: (traffic, emails, free GB deducted) their lines covered, per region."""
    return prior_data_flow_by_account(periods={account.pk: periods}).get(account.pk, {})


def billed_periods_by_account(*, account_ids: Iterable[int]) -> dict[int, set[str]]:
    out: dict[int, set[str]] = defaultdict(set)
    for account_id, period in Bill.objects.filter(account_id__in=list(account_ids)).values_list(
        "account_id", "period"
    ):
        out[account_id].add(period)
    return out


def billed_periods(*, account: Account) -> set[str]:
    return billed_periods_by_account(account_ids=[account.pk])[account.pk]


@dataclass(frozen=True)
class UnbilledInputs:
    """What a dry run of settlement reads for one account, read once
    (``unbilled_inputs``) so that the estimates and the forecast of one page
    share it: unbilled usage of days before ``before`` in day order, the
    billed periods, the packs as they stand, the prices and the data flow
    already billed for the periods the late usage falls in."""

    account_id: int
    before: dt.date
    rows: list[UsageRow]
    billed: frozenset[str]
    packs: tuple[PackState, ...]
    price_for: PriceFn
    prior: PriorDataFlow

    def rows_before(self, end: dt.date) -> list[UsageRow]:
        if end > self.before:
            raise ValueError(f"inputs read before {self.before} cannot answer for days up to {end}")
        if end == self.before:
            return self.rows
        return [r for r in self.rows if r.day < end]

    def periods(self) -> set[Period]:
        """The periods with unbilled usage (before ``before``)."""
        return usage_periods(self.rows)


def unbilled_inputs(*, account: Account, before: dt.date) -> UnbilledInputs:
    """Read once what ``billing_estimate`` and ``billing_forecast`` need for
    periods ending on or before ``before`` (four queries, five with late usage of billed periods)."""
    rows = usage_unbilled(account=account, before=before)
    billed = billed_periods(account=account)
    late = {p for p in usage_periods(rows) if str(p) in billed}
    return UnbilledInputs(account_id=account.pk, before=before, rows=rows, billed=frozenset(billed),
                          packs=tuple(packs_state(account=account)), price_for=price_lookup(currency=account.currency),
                          prior=prior_data_flow(account=account, periods=late))


@dataclass(frozen=True)
class _DryRun:
    calculation: Calculation  # the lines of the period asked for
    earlier_total: Decimal  # the lines of earlier unsettled periods, settled first
    packs: list[PackState]  # the packs after the period's deductions
    packs_before: dict[int, int]  # pack id → emails left before the period's deductions


def _dry_run(*, account: Account, period: Period, rows: list[UsageRow], inputs: UnbilledInputs) -> _DryRun:
    """Settlement of ``period`` simulated on ``rows``: earlier periods that
    would be settled first (usage and no bill) are computed first, in order,
    so packs are drawn down as settlement will draw them. Nothing is written."""
    if inputs.account_id != account.pk:
        raise ValueError(f"inputs of account {inputs.account_id} given for account {account.pk}")
    billed = set(inputs.billed)
    packs = [copy.copy(p) for p in inputs.packs]
    earlier = ZERO_MONEY
    while True:
        step = plan_step(rows=rows, billed=billed, latest=period)
        settling = step.decision.period
        before = {p.id: p.remaining for p in packs}
        result = lines_compute(period=settling, usage=step.covered, packs=packs, price_for=inputs.price_for,
                               currency=account.currency, prior_data_flow=inputs.prior)
        if settling == period:
            return _DryRun(calculation=result, earlier_total=earlier, packs=packs, packs_before=before)
        earlier += result.total
        rows = step.rest
        billed.add(str(settling))


def billing_estimate(*, account: Account, period: Period, inputs: UnbilledInputs | None = None) -> Calculation:
    """Dry run of settlement for a period that has no bill yet (the Pending,
    month-to-date view): the lines its bill would have if the data stayed as
    it is. Earlier periods that would be settled first (they have usage and
    no bill) are simulated first, in order, so packs are drawn down as
    settlement will draw them. Nothing is written. ``inputs`` (read for this
    period's end or later) saves reading them again."""
    inputs = inputs or unbilled_inputs(account=account, before=period.end_day)
    return _dry_run(account=account, period=period, rows=inputs.rows_before(period.end_day),
                    inputs=inputs).calculation


# --- the periods the console and its downloads offer ----------------------

def console_periods(*, account: Account, now: dt.datetime) -> list[Period]:
    """The periods the console offers, newest first: from the month of the
    account's first usage or bill to the current month."""
    current = Period.current(now)
    first_day, first_bill = (
        Account.objects.filter(pk=account.pk)
        .annotate(
            first_day=Subquery(DailyUsage.objects.filter(account=OuterRef("pk")).order_by("day").values("day")[:1]),
            first_bill=Subquery(Bill.objects.filter(account=OuterRef("pk")).order_by("period").values("period")[:1]),
        )
        .values_list("first_day", "first_bill")
        .get()
    )
    candidates = [current]
    if first_day is not None:
        candidates.append(Period.of_day(first_day))
    if first_bill:
        candidates.append(Period.parse(first_bill))
    first = min(candidates)
    out = [current]
    while out[-1] > first:
        out.append(out[-1].previous())
    return out


def console_period_check(*, account: Account, period: Period, periods: list[Period]) -> None:
    """PeriodOutOfRange, saying which periods exist, unless ``period`` is offered."""
    if period in periods:
        return
    newest, oldest = periods[0], periods[-1]
    available = f"{oldest} to {newest}" if oldest != newest else f"only {newest}"
    if period > newest:
        raise PeriodOutOfRange(
            f"{period} has not started yet. Periods available for {account.name}: {available} "
            f"({newest} is the current month)."
        )
    raise PeriodOutOfRange(
        f"{account.name} has no usage or bills before {oldest}, so {period} has nothing to show. "
        f"Periods available: {available}."
    )


# --- history: the bills list and the packs page (issue #17) ---------------

@dataclass(frozen=True)
class BillSummary:
    """A settled bill as the bills list shows it; money in the bill's currency."""

    period: str
    total: Decimal  # sum of line amounts
    paid: Decimal  # funds applied + repayments, over its lines
    balance: Decimal  # total − paid
    overdrawn: bool  # any line Overdrawn
    funds_applied: Decimal  # at settlement
    settled_at: dt.datetime
    statement_number: str  # '' until the statement is issued
    emailed_at: dt.datetime | None


def bill_list(*, account: Account) -> list[BillSummary]:
    """Every settled bill of ``account``, newest period first, with paid and
    balance summed over its lines: one query whatever the number of bills."""
    rows = (
        Bill.objects.filter(account=account)
        .values("period", "total_amount", "funds_applied", "settled_at", "statement__number", "statement__emailed_at")
        .annotate(paid=Sum("lines__paid"), balance=Sum("lines__balance"),
                  overdrawn=Count("lines", filter=Q(lines__status=LineStatus.OVERDRAWN)))
        .order_by("-period")
    )
    return [
        BillSummary(period=r["period"], total=r["total_amount"], paid=round_money(r["paid"] or ZERO),
                    balance=round_money(r["balance"] or ZERO), overdrawn=r["overdrawn"] > 0,
                    funds_applied=r["funds_applied"], settled_at=r["settled_at"],
                    statement_number=r["statement__number"] or "", emailed_at=r["statement__emailed_at"])
        for r in rows
    ]


@dataclass(frozen=True)
class PackCoverage:
    period: str  # the bill's period
    adjustment_for: str  # '' or the original period of late usage
    emails: int


@dataclass(frozen=True)
class PackSummary:
    """An email pack with what settled bills took from it (emails)."""

    reference: str
    region: str
    region_name: str
    quantity: int
    used: int
    valid_from: dt.date
    valid_until: dt.date  # exclusive
    coverage: list[PackCoverage]  # oldest bill first

    @property
    def left(self) -> int:
        return self.quantity - self.used

    @property
    def last_day(self) -> dt.date:
        return self.valid_until - dt.timedelta(days=1)


def pack_list(*, account: Account) -> list[PackSummary]:
    """Every email pack of ``account`` (soonest expiry first), with the
    emails settled bills took from it per bill period: two queries."""
    packs = list(
        EmailPack.objects.filter(account=account)
        .annotate(used=Coalesce(Sum("deductions__quantity"), 0))
        .values_list("id", "reference", "region_id", "region__name", "quantity", "used", "valid_from",
                     "valid_until")
        .order_by("valid_until", "valid_from", "reference")
    )
    coverage: dict[int, list[PackCoverage]] = defaultdict(list)
    for pack_id, period, adjustment_for, emails in (
        PackDeduction.objects.filter(pack__account=account)
        .values("pack_id", "line__bill__period", "line__adjustment_for")
        .annotate(emails=Sum("quantity"))
        .order_by("pack_id", "line__bill__period", "line__adjustment_for")
        .values_list("pack_id", "line__bill__period", "line__adjustment_for", "emails")
    ):
        coverage[pack_id].append(PackCoverage(period=period, adjustment_for=adjustment_for, emails=int(emails)))
    return [
        PackSummary(reference=reference, region=region, region_name=region_name, quantity=quantity,
                    used=int(used), valid_from=valid_from, valid_until=valid_until, coverage=coverage[pk])
        for pk, reference, region, region_name, quantity, used, valid_from, valid_until in packs
    ]


# Service items billed by the month (IP-months, certificate-months): a
# forecast takes their month-to-date quantity as it stands.
MONTHLY_SERVICES = frozenset({"dedicated_ip", "bimi_certification"})


@dataclass(frozen=True)
class Forecast:
    """The month-end projection of an open period (``billing_forecast``)."""

    period: Period
    days_elapsed: int  # complete UTC+8 days before today
    days_left: int  # today and the days after it, to the period's end
    calculation: Calculation  # the projected lines, priced and deducted as settlement would
    earlier_total: Decimal  # estimates of earlier periods not settled yet (settled first, take funds first)
    packs_out: dict[str, dt.date]  # region → last day packs cover emails, where they run out

    @property
    def total(self) -> Decimal:
        return self.calculation.total


def billing_forecast(*, account: Account, period: Period, today: dt.date,
                     inputs: UnbilledInputs | None = None) -> Forecast | None:
    """Month-end projection of open ``period`` at UTC+8 day ``today``: the
    usage of the complete days so far, plus each (service item, region,
    result)'s average per complete day for today and every day left (monthly
    items as they stand), run through the settlement calculation with the
    packs as they are (earlier unsettled periods first, as
    ``billing_estimate``). None before the first complete day. ``inputs`` as
    for ``billing_estimate``."""
    if not period.first_day < today < period.end_day:
        return None
    elapsed = (today - period.first_day).days
    left = (period.end_day - today).days
    inputs = inputs or unbilled_inputs(account=account, before=period.end_day)
    sums: dict[tuple[str, str, str], Decimal] = defaultdict(lambda: ZERO)
    kept: list[UsageRow] = []
    for row in inputs.rows_before(period.end_day):
        if row.day < period.first_day or row.service in MONTHLY_SERVICES:
            kept.append(row)
        elif row.day < today:
            kept.append(row)
            sums[(row.service, row.region, row.result)] += row.quantity
    days = [today + dt.timedelta(days=i) for i in range(left)]
    for (service, region, result), so_far in sorted(sums.items()):
        kept.extend(UsageRow(id=None, service=service, region=region, result=result, day=day, quantity=q)
                    for day, q in zip(days, _spread(so_far * left / elapsed, left, whole=service != "data_flow"),
                                      strict=True))
    kept.sort(key=_row_day)
    run = _dry_run(account=account, period=period, rows=kept, inputs=inputs)
    packs_out = {}
    for line in run.calculation.lines:
        if line.service != "email" or line.adjustment_for or line.billable_quantity <= 0 or not line.deductions:
            continue
        drained = [p for p in run.packs if p.region == line.region and run.packs_before[p.id] > 0 and p.remaining == 0]
        if drained:
            packs_out[line.region] = max(day for _, day, _ in line.deductions)
    return Forecast(period=period, days_elapsed=elapsed, days_left=left, calculation=run.calculation,
                    earlier_total=run.earlier_total, packs_out=packs_out)


def _row_day(row: UsageRow) -> dt.date:
    return row.day


def _spread(total: Decimal, days: int, *, whole: bool) -> list[Decimal]:
    """``total`` over ``days`` days: whole numbers (the first days take the
    remainder) or 6 decimal places (the last day takes the remainder)."""
    if whole:
        units = int(total.to_integral_value(rounding=ROUND_HALF_UP))
        base, extra = divmod(units, days)
        return [Decimal(base + (1 if i < extra else 0)) for i in range(days)]
    each = (total / days).quantize(Decimal("0.000001"), rounding=ROUND_DOWN)
    return [each] * (days - 1) + [total.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP) - each * (days - 1)]
