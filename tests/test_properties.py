"""Properties of settlement that must hold for any usage, packs, prices and
funds (hypothesis).

Two tiers: the pure calculation with many examples (no database), and whole
settlement histories on the database (several periods, late usage, skipped
settlement runs, top-ups) with fewer. ``HYPOTHESIS_EXAMPLES`` scales both
(default 40 histories / 300 calculations)."""
from __future__ import annotations

import datetime as dt
import os
from collections import defaultdict
from decimal import Decimal

import pytest
from django.db import transaction
from django.db.models import F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import Account
from aurora_billing.settlement import accounts_settle
from core.money import FREE_GB_PER_EMAIL, round_money
from core.periods import Period
from invoices.calculation import PackState, UsageRow, funds_allocate, lines_compute
from invoices.models import Bill, BillLine, PackDeduction
from invoices.selectors import billing_estimate
from payments.models import LedgerEntry
from payments.selectors import funds_balances
from payments.services import topup_record
from tests.support import add_pack, add_price, add_usage
from usage.models import CATALOG_ORDER, EMAIL_RESULTS, DailyUsage, EmailPack

EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", "40"))
HISTORY = settings(max_examples=EXAMPLES, deadline=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                          HealthCheck.data_too_large])
PURE = settings(max_examples=EXAMPLES * 8, deadline=None, suppress_health_check=[HealthCheck.too_slow])

REGIONS = ["hk", "sg"]
OCT, NOV, DEC = Period(2026, 10), Period(2026, 11), Period(2026, 12)
PERIODS = [OCT, NOV, DEC]
# Usage falls on a few days per period and packs start and end on the same
# days (or around them), so the boundaries — a pack's last valid day, the day
# it expires, a period's first and last day — come up in most examples.
USAGE_DAYS = {p: [p.first_day.replace(day=d) for d in (1, 2, 15, 16)] + [p.last_day] for p in PERIODS}
PACK_DAYS = sorted({d for days in USAGE_DAYS.values() for d in days}
                   | {dt.date(2026, 9, 1), dt.date(2027, 1, 1), dt.date(2028, 1, 1)})

cents = st.integers(0, 5_000).map(lambda c: Decimal(c) / 100)
unit_prices = st.integers(0, 2_000_000).map(lambda u: Decimal(u) / 1_000_000)  # 0 … 2.000000


def quantity_of(service: str, raw: int) -> Decimal:
    if service == "email":
        return Decimal(raw % 3_001)
    if service == "data_flow":
        return Decimal(raw) / 1_000_000  # 0 … 5 GB, 6 places
    return Decimal(raw % 6)


def usage_rows(days: list[dt.date], regions: list[str]):
    return st.tuples(st.sampled_from(days), st.sampled_from(CATALOG_ORDER), st.sampled_from(regions),
                     st.sampled_from(EMAIL_RESULTS), st.integers(0, 5_000_000)).map(
        lambda t: (t[0], t[1], t[2], t[3] if t[1] == "email" else "", quantity_of(t[1], t[4])))


packs = st.tuples(st.sampled_from(REGIONS), st.integers(0, 5_000),
                  st.lists(st.sampled_from(PACK_DAYS), min_size=2, max_size=2, unique=True).map(sorted))


# --- pure calculation --------------------------------------------------------

@st.composite
def calculations(draw):
    regions = draw(st.lists(st.sampled_from(REGIONS), min_size=1, max_size=2, unique=True))
    rows = draw(st.lists(usage_rows(USAGE_DAYS[OCT], regions), max_size=25))
    pack_list = [PackState(id=i, reference=f"p{i}", region=r, valid_from=valid_from, valid_until=valid_until,
                           remaining=quantity)
                 for i, (r, quantity, (valid_from, valid_until)) in enumerate(draw(st.lists(packs, max_size=5)))]
    prices = {(s, r): draw(unit_prices) for s in CATALOG_ORDER for r in regions}
    return regions, rows, pack_list, prices


@PURE
@given(calculations())
def test_calculation_invariants(case):
    regions, rows, pack_list, prices = case
    held = {p.id: p.remaining for p in pack_list}
    usage = [UsageRow(id=i, service=s, region=r, result=res, day=d, quantity=q)
             for i, (d, s, r, res, q) in enumerate(rows)]
    calc = lines_compute(period=OCT, usage=usage, packs=pack_list, price_for=lambda s, r, p: prices[(s, r)],
                         currency="USD")
    assert calc.errors == []
    totals = defaultdict(Decimal)
    for row in usage:
        totals[(row.service, row.region)] += row.quantity
    assert {(x.service, x.region): x.usage_quantity for x in calc.lines} == {k: v for k, v in totals.items() if v}
    taken = defaultdict(int)
    packs_by_id = {p.id: p for p in pack_list}
    for line in calc.lines:
        assert line.deducted_quantity + line.billable_quantity == line.usage_quantity
        assert line.deducted_quantity >= 0 and line.billable_quantity >= 0
        assert line.amount == round_money(line.billable_quantity * line.unit_price)
        assert line.adjustment_for == ""
        if line.service == "email":
            assert sum(q for _, _, q in line.deductions) == line.deducted_quantity
            assert sum(line.results.values()) == line.usage_quantity
            for pack_id, day, quantity in line.deductions:
                pack = packs_by_id[pack_id]
                assert quantity > 0 and pack.region == line.region and pack.valid_from <= day < pack.valid_until
                taken[pack_id] += quantity
        elif line.service == "data_flow":
            emails = totals[("email", line.region)]
            assert line.deducted_quantity == min(line.usage_quantity, FREE_GB_PER_EMAIL * emails)
        else:
            assert line.deducted_quantity == 0
    for pack in pack_list:
        assert taken[pack.id] <= held[pack.id] and pack.remaining == held[pack.id] - taken[pack.id]
    order = [(CATALOG_ORDER.index(x.service), x.region) for x in calc.lines]
    assert order == sorted(order) and [x.position for x in calc.lines] == list(range(len(calc.lines)))


@PURE
@given(st.lists(cents, max_size=12), cents)
def test_funds_allocation(amounts, available):
    applied = funds_allocate(amounts=amounts, available=available)
    assert sum(applied) == min(sum(amounts), available)
    assert all(0 <= a <= amount for a, amount in zip(applied, amounts, strict=True))
    short = [i for i, (a, amount) in enumerate(zip(applied, amounts, strict=True)) if a < amount]
    if short:  # funds ran out at the first short line: nothing after it is paid
        assert all(a == 0 for a in applied[short[0] + 1:])


# --- settlement histories on the database -------------------------------------

@st.composite
def histories(draw):
    regions = draw(st.lists(st.sampled_from(REGIONS), min_size=1, max_size=2, unique=True))
    change_days = [dt.date(2026, 10, 2), dt.date(2026, 11, 1), dt.date(2026, 11, 2), dt.date(2026, 12, 1)]
    prices = []
    for service in CATALOG_ORDER:
        for region in regions:
            prices.append((service, region, "2026-01-01", draw(unit_prices)))
            if draw(st.booleans()):
                prices.append((service, region, draw(st.sampled_from(change_days)).isoformat(), draw(unit_prices)))
    months = []
    for i, period in enumerate(PERIODS):
        earlier_days = [d for p in PERIODS[:i + 1] for d in USAGE_DAYS[p]]
        months.append({
            "rows": draw(st.lists(usage_rows(USAGE_DAYS[period], regions), max_size=8)),
            "late": draw(st.lists(usage_rows(earlier_days, regions), max_size=3)),
            "topup": draw(st.one_of(st.none(), cents)),
            "skip": draw(st.booleans()),  # the settlement run of this month does not happen
        })
    return regions, prices, draw(st.lists(packs, max_size=4)), draw(cents), months


def line_key(line):
    return (line.service_id if hasattr(line, "service_id") else line.service,
            line.region_id if hasattr(line, "region_id") else line.region,
            line.adjustment_for, line.usage_quantity, line.deducted_quantity, line.billable_quantity,
            line.unit_price, line.amount)


@pytest.mark.django_db
@HISTORY
@given(case=histories())
def test_settlement_history_invariants(case):
    with transaction.atomic():
        check_history(*case)
        transaction.set_rollback(True)


def check_history(regions, prices, pack_list, first_topup, months):
    account = Account.objects.create(code="prop", name="Property")
    for service, region, effective_from, unit_price in prices:
        add_price(service, region, str(unit_price), effective_from=effective_from)
    for i, (region, quantity, (valid_from, valid_until)) in enumerate(pack_list):
        add_pack(account, region, f"p{i}", quantity, valid_from.isoformat(), valid_until.isoformat())
    topups = [first_topup]
    if first_topup:
        topup_record(account=account, amount=first_topup, reference="t0", at=OCT.start)
    late_periods: set[tuple[Period, str]] = set()

    runs = [(p.bill_time, p, m) for p, m in zip(PERIODS, months, strict=True)]
    runs.append((Period(2027, 1).bill_time, Period(2027, 1), None))  # bills whatever is left
    for i, (now, due, month) in enumerate(runs):
        if month is not None:
            for day, service, region, result, quantity in month["rows"]:
                add_usage(account, region, service, day.isoformat(), quantity, result=result or "")
            if month["topup"]:
                topup_record(account=account, amount=month["topup"], reference=f"t{i + 1}", at=now)
                topups.append(month["topup"])
            if month["skip"]:
                continue
        estimate = billing_estimate(account=account, period=due)
        report = accounts_settle(account_ids=[account.pk], now=now)
        assert report.errors == []
        bill = Bill.objects.filter(account=account, period=str(due)).first()
        # The Pending estimate is the bill settlement then makes.
        assert [line_key(x) for x in estimate.lines] == (
            [line_key(x) for x in bill.lines.order_by("position")] if bill else [])
        if month is not None:
            for day, service, region, result, quantity in month["late"]:
                billed = Bill.objects.filter(account=account, period=str(Period.of_day(day))).exists()
                if billed and quantity:
                    late_periods.add((Period.of_day(day), region))
                add_usage(account, region, service, day.isoformat(), quantity, result=result or "")

    # Every usage unit billed exactly once, on its period's lines or its adjustments.
    assert not DailyUsage.objects.filter(account=account).exclude(billed_quantity=F("quantity")).exists()
    used = defaultdict(Decimal)
    for row in DailyUsage.objects.filter(account=account):
        if row.quantity:
            used[(str(Period.of_day(row.day)), row.service_id, row.region_id)] += row.quantity
    billed = defaultdict(Decimal)
    lines = list(BillLine.objects.filter(bill__account=account).select_related("bill").order_by("bill", "position"))
    for line in lines:
        billed[(line.adjustment_for or line.bill.period, line.service_id, line.region_id)] += line.usage_quantity
    assert billed == used

    for line in lines:
        assert line.amount == line.paid + line.balance
        assert line.usage_quantity == line.deducted_quantity + line.billable_quantity
        assert line.amount == round_money(line.billable_quantity * line.unit_price)
        assert line.status == ("Paid" if line.balance == 0 else "Overdrawn")
        assert line.paid >= 0 and line.balance >= 0
    # Funds go down the lines in order: after a line left unpaid, nothing is paid.
    for bill in Bill.objects.filter(account=account):
        bill_lines = list(bill.lines.order_by("position"))
        assert bill.total_amount == sum(x.amount for x in bill_lines)
        assert bill.funds_applied == sum(x.paid for x in bill_lines)
        short = [i for i, x in enumerate(bill_lines) if x.balance > 0]
        if short:
            assert all(x.paid == 0 for x in bill_lines[short[0] + 1:])
        adjustments = [x.adjustment_for != "" for x in bill_lines]
        assert adjustments == sorted(adjustments)

    # Packs: never more than they held, only on days they were valid, in their region.
    for pack in EmailPack.objects.filter(account=account):
        deductions = list(PackDeduction.objects.filter(pack=pack).select_related("line"))
        assert sum(d.quantity for d in deductions) <= pack.quantity
        assert all(pack.valid_from <= d.day < pack.valid_until and d.line.region_id == pack.region_id
                   for d in deductions)
    for line in lines:
        taken = sum(d.quantity for d in line.pack_deductions.all())
        assert taken == (line.deducted_quantity if line.service_id == "email" else 0)

    # Data-flow allowance, bill by bill: an original period and region get
    # min(traffic, 0.0002 × emails) free over all their lines; each line
    # deducts what that leaves after the lines of earlier bills (no credit
    # for traffic already billed).
    free, traffic, emails = defaultdict(Decimal), defaultdict(Decimal), defaultdict(Decimal)
    for bill in Bill.objects.filter(account=account).order_by("pk"):
        bill_lines = list(bill.lines.all())
        for line in bill_lines:
            if line.service_id == "email":
                emails[(line.adjustment_for or bill.period, line.region_id)] += line.usage_quantity
        for line in bill_lines:
            if line.service_id != "data_flow":
                continue
            key = (line.adjustment_for or bill.period, line.region_id)
            traffic[key] += line.usage_quantity
            left = max(Decimal(0), min(traffic[key], FREE_GB_PER_EMAIL * emails[key]) - free[key])
            assert line.deducted_quantity == min(line.usage_quantity, left)
            free[key] += line.deducted_quantity
    for key in traffic:
        if (Period.parse(key[0]), key[1]) not in late_periods:
            assert free[key] == min(traffic[key], FREE_GB_PER_EMAIL * emails[key])

    # Money is conserved: top-ups = funds left + funds applied to lines = ledger.
    paid = sum((x.paid for x in lines), Decimal("0.00"))
    settlement = sum(LedgerEntry.objects.filter(account=account, kind="settlement").values_list("amount", flat=True))
    assert settlement == -paid
    assert funds_balances(account_ids=[account.pk])[account.pk] == sum(topups) - paid >= 0
    ledger = sum(LedgerEntry.objects.filter(account=account).values_list("amount", flat=True))
    assert ledger == funds_balances(account_ids=[account.pk])[account.pk]
