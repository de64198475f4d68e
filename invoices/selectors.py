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
from decimal import Decimal

from django.db.models import F, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce

from accounts.models import Account
from core.money import ZERO
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
from .models import Bill, BillLine


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


def billing_estimate(*, account: Account, period: Period) -> Calculation:
    """Dry run of settlement for a period that has no bill yet (the Pending,
    month-to-date view): the lines its bill would have if the data stayed as
    it is. Earlier periods that would be settled first (they have usage and
    no bill) are simulated first, in order, so packs are drawn down as
    settlement will draw them. Nothing is written."""
    rows = usage_unbilled(account=account, before=period.end_day)
    billed = billed_periods(account=account)
    packs = copy.deepcopy(packs_state(account=account))
    price_for = price_lookup(currency=account.currency)
    late = {p for p in usage_periods(rows) if str(p) in billed}
    prior = prior_data_flow(account=account, periods=late)
    while True:
        step = plan_step(rows=rows, billed=billed, latest=period)
        settling = step.decision.period
        result = lines_compute(period=settling, usage=step.covered, packs=packs, price_for=price_for,
                               currency=account.currency, prior_data_flow=prior)
        if settling == period:
            return result
        rows = step.rest
        billed = billed | {str(settling)}


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
