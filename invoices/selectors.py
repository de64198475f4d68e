"""Reads for settlement and the month-to-date estimate."""
from __future__ import annotations

import bisect
import copy
import datetime as dt
from collections import defaultdict
from decimal import Decimal

from django.db.models import F, Sum
from django.db.models.functions import Coalesce

from accounts.models import Account
from aurora_billing.money import ZERO
from aurora_billing.periods import Period
from usage.models import DailyUsage, EmailPack, Price

from .calculation import Calculation, PackState, PriceFn, UsageRow, lines_compute
from .models import Bill, BillLine


def usage_unbilled(*, account: Account, before: dt.date, for_update: bool = False) -> list[UsageRow]:
    """Daily usage of ``account`` on days before ``before`` not yet covered by a bill."""
    qs = DailyUsage.objects.filter(account=account, day__lt=before, quantity__gt=F("billed_quantity"))
    if for_update:
        qs = qs.select_for_update()
    return [
        UsageRow(id=r.id, service=r.service_id, region=r.region_id, result=r.result, day=r.day,
                 quantity=r.quantity - r.billed_quantity, row_quantity=r.quantity)
        for r in qs.order_by("day", "id")
    ]


def packs_state(*, account: Account) -> list[PackState]:
    """The account's email packs with what each still holds."""
    packs = EmailPack.objects.filter(account=account).annotate(
        used=Coalesce(Sum("deductions__quantity"), 0)
    )
    return [
        PackState(id=p.id, reference=p.reference, region=p.region_id, valid_from=p.valid_from,
                  valid_until=p.valid_until, remaining=p.quantity - p.used)
        for p in packs
    ]


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


def prior_data_flow(*, account: Account, periods: set[Period]) -> dict[tuple[Period, str], tuple]:
    """For billed periods: (traffic, emails, free GB deducted) their lines covered, per region."""
    if not periods:
        return {}
    names = {str(p) for p in periods}
    out: dict[tuple[Period, str], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO, ZERO])
    lines = BillLine.objects.filter(bill__account=account, service_id__in=["email", "data_flow"]).values_list(
        "bill__period", "adjustment_for", "service_id", "region_id", "usage_quantity", "deducted_quantity"
    )
    for bill_period, adjustment_for, service, region, quantity, deducted in lines:
        original = adjustment_for or bill_period
        if original not in names:
            continue
        acc = out[(Period.parse(original), region)]
        if service == "data_flow":
            acc[0] += quantity
            acc[2] += deducted
        else:
            acc[1] += quantity
    return {k: tuple(v) for k, v in out.items()}


def billed_periods(*, account: Account) -> set[str]:
    return set(Bill.objects.filter(account=account).values_list("period", flat=True))


def billing_estimate(*, account: Account, period: Period) -> Calculation:
    """Dry run of settlement for a period that has no bill yet (the
    Pending, month-to-date view). Earlier periods that are not settled yet
    are simulated first, in order, so packs are drawn down as settlement
    will draw them. Nothing is written."""
    rows = usage_unbilled(account=account, before=period.end_day)
    billed = billed_periods(account=account)
    packs = copy.deepcopy(packs_state(account=account))
    price_for = price_lookup(currency=account.currency)
    unsettled = sorted({Period.of_day(r.day) for r in rows} - {Period.parse(p) for p in billed} - {period})
    sequence = [p for p in unsettled if p < period] + [period]
    late_periods = {Period.of_day(r.day) for r in rows if str(Period.of_day(r.day)) in billed}
    prior = prior_data_flow(account=account, periods=late_periods)
    result = Calculation(lines=[], errors=[])
    for i, settling in enumerate(sequence):
        if i == 0:
            chunk = [r for r in rows if r.day < settling.end_day]
        else:
            chunk = [r for r in rows if settling.contains(r.day)]
        result = lines_compute(period=settling, usage=chunk, packs=packs, price_for=price_for,
                               currency=account.currency, prior_data_flow=prior if i == 0 else None)
    return result
