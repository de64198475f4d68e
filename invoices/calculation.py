"""The billing calculation (billing-rules §3–§5), free of database access.

``lines_compute`` turns unbilled daily usage into bill lines for one
account and one settling period: it prices each line, deducts email packs
day by day, applies the data-flow free allowance and rounds each amount
once. Settlement (``invoices.services``) and the month-to-date estimate
(``invoices.selectors``) both call it, so a Pending estimate and the bill
later settled from the same data are the same numbers.

The returned lines are in the order funds are applied: catalog order, then
region code, with adjustment lines last (oldest original period first).
``funds_allocate`` is the rule that applies funds to them; the ledger that
holds the funds lives in ``payments``.

``settlement_decision`` says what settling a period for one account means
given its unbilled usage and its bills; settlement, the ``settle`` command
and the estimate all follow it.
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple

from core.money import (
    FREE_GB_PER_EMAIL,
    MONEY_DIGITS,
    MONEY_PLACES,
    QUANTITY_DIGITS,
    QUANTITY_PLACES,
    ZERO,
    ZERO_MONEY,
    round_money,
)
from core.periods import Period
from usage.models import CATALOG_ORDER, EMAIL_RESULTS


class UsageRow(NamedTuple):
    """Unbilled usage of one daily-usage row: ``quantity`` is what no bill
    has covered yet (for a row never billed, the whole quantity). A named
    tuple: settlement and every estimate build one per daily row, and a
    tuple is built about twice as fast as a frozen dataclass."""

    id: int | None
    service: str
    region: str
    result: str
    day: dt.date
    quantity: Decimal
    # total quantity of the row (billed + unbilled); settlement marks it billed
    row_quantity: Decimal | None = None


@dataclass
class PackState:
    """An email pack and what it still holds (emails)."""

    id: int
    reference: str
    region: str
    valid_from: dt.date
    valid_until: dt.date
    remaining: int

    def sort_key(self) -> tuple:
        return (self.valid_until, self.valid_from, self.reference)


@dataclass
class LineDraft:
    service: str
    region: str
    adjustment_for: str  # '' or the original YYYY-MM
    usage_quantity: Decimal
    deducted_quantity: Decimal
    billable_quantity: Decimal
    unit_price: Decimal
    currency: str
    amount: Decimal
    results: dict[str, int] | None  # email lines: usage by delivery result
    deductions: list[tuple[int, dt.date, int]] = field(default_factory=list)  # (pack id, day, emails)
    position: int = 0


@dataclass
class Calculation:
    lines: list[LineDraft]
    errors: list[str]

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal("0.00"))


PriceFn = Callable[[str, str, Period], Decimal | None]

# A line's key inside lines_compute: ((year, month) of the original period,
# service, region). Plain tuples hash fast, and settlement computes the lines
# of every account of a month.
_Key = tuple[tuple[int, int], str, str]

# Largest values the bill line columns hold (Decimal(14, 2), Decimal(20, 6)).
MAX_AMOUNT = Decimal(10) ** (MONEY_DIGITS - MONEY_PLACES) - Decimal("0.01")
MAX_QUANTITY = Decimal(10) ** (QUANTITY_DIGITS - QUANTITY_PLACES) - Decimal("0.000001")


def _whole(value: Decimal) -> int:
    return int(value)


def usage_periods(rows: Iterable[UsageRow]) -> set[Period]:
    """The periods the usage rows fall in."""
    return {Period(*ym) for ym in {(r.day.year, r.day.month) for r in rows}}


def lines_compute(
    *,
    period: Period,
    usage: Iterable[UsageRow],
    packs: list[PackState],
    price_for: PriceFn,
    currency: str,
    prior_data_flow: dict[tuple[Period, str], tuple[Decimal, Decimal, Decimal]] | None = None,
) -> Calculation:
    """Compute the lines of ``period`` from unbilled ``usage`` (days before
    the period's end; rows of earlier periods become adjustment lines).

    ``packs`` are mutated: their ``remaining`` drops by what is deducted
    (callers pass copies for a dry run). ``price_for(service, region,
    period)`` returns the unit price in effect on the period's first day.
    ``prior_data_flow[(original period, region)]`` gives, for an already
    billed period, the (traffic, emails, free GB deducted) its earlier lines
    covered, so late traffic gets exactly the allowance left.
    """
    prior_data_flow = prior_data_flow or {}
    period_ym = (period.year, period.month)
    periods: dict[tuple[int, int], Period] = {period_ym: period}
    quantities: dict[_Key, Decimal] = defaultdict(lambda: ZERO)
    results: dict[_Key, dict[str, int]] = {}
    emails_by_day: dict[tuple[dt.date, str], int] = defaultdict(int)  # (day, region) → emails
    emails_in: dict[tuple[tuple[int, int], str], Decimal] = defaultdict(lambda: ZERO)  # (period, region)

    for row in usage:
        if row.quantity <= 0:
            continue
        day = row.day
        ym = (day.year, day.month)
        if ym > period_ym:
            raise ValueError(f"usage of {day} is after period {period}")
        if ym not in periods:
            periods[ym] = Period(*ym)
        key = (ym, row.service, row.region)
        quantities[key] += row.quantity
        if row.service == "email":
            per_result = results.get(key)
            if per_result is None:
                per_result = results[key] = dict.fromkeys(EMAIL_RESULTS, 0)
            emails = _whole(row.quantity)
            per_result[row.result] += emails
            emails_by_day[(day, row.region)] += emails
            emails_in[(ym, row.region)] += row.quantity

    # Email packs: day by day in date order, packs ordered by valid_until,
    # valid_from, reference; an exhausted pack is skipped (§4).
    packs_by_region: dict[str, list[PackState]] = defaultdict(list)
    for pack in sorted(packs, key=PackState.sort_key):
        packs_by_region[pack.region].append(pack)
    deducted: dict[_Key, Decimal] = defaultdict(lambda: ZERO)
    deductions: dict[_Key, list[tuple[int, dt.date, int]]] = defaultdict(list)
    for (day, region), emails in sorted(emails_by_day.items()):
        key = ((day.year, day.month), "email", region)
        need = emails
        for pack in packs_by_region.get(region, ()):
            if need == 0:
                break
            if pack.remaining <= 0 or not (pack.valid_from <= day < pack.valid_until):
                continue
            take = min(need, pack.remaining)
            pack.remaining -= take
            need -= take
            deducted[key] += take
            deductions[key].append((pack.id, day, take))

    # Data flow: each billable email brings 0.0002 GB free in its region and
    # period; deducted = min(traffic, allowance) over the whole period, less
    # what earlier lines of that period already deducted.
    for key, traffic in quantities.items():
        ym, service, region = key
        if service != "data_flow":
            continue
        prior_traffic, prior_emails, prior_free = prior_data_flow.get((periods[ym], region), (ZERO, ZERO, ZERO))
        allowance = FREE_GB_PER_EMAIL * (prior_emails + emails_in[(ym, region)])
        total_free = min(prior_traffic + traffic, allowance)
        deducted[key] = max(ZERO, min(traffic, total_free - prior_free))

    lines: list[LineDraft] = []
    errors: list[str] = []
    for key in sorted(quantities, key=lambda k: (k[0] != period_ym, k[0], CATALOG_ORDER.index(k[1]), k[2])):
        ym, service, region = key
        original = periods[ym]
        unit_price = price_for(service, region, original)
        if unit_price is None:
            errors.append(
                f"no {currency} price for {service} in region {region} "
                f"in effect on {original.first_day.isoformat()}"
            )
            continue
        usage_quantity = quantities[key]
        deducted_quantity = deducted[key]
        billable = usage_quantity - deducted_quantity
        amount = round_money(billable * unit_price)
        if usage_quantity > MAX_QUANTITY or amount > MAX_AMOUNT:
            errors.append(f"{service} in region {region}: usage {usage_quantity} at {unit_price} "
                          f"exceeds what a bill line holds")
            continue
        lines.append(
            LineDraft(
                service=service,
                region=region,
                adjustment_for="" if ym == period_ym else str(original),
                usage_quantity=usage_quantity,
                deducted_quantity=deducted_quantity,
                billable_quantity=billable,
                unit_price=unit_price,
                currency=currency,
                amount=amount,
                results=results.get(key),
                deductions=deductions.get(key, []),
                position=len(lines),
            )
        )
    return Calculation(lines=lines, errors=errors)


def funds_allocate(*, amounts: list[Decimal], available: Decimal) -> list[Decimal]:
    """Funds applied to each line (billing-rules §5): in the given order
    (the order of ``lines_compute``), each line takes min(amount, funds left)."""
    left = max(available, ZERO_MONEY)
    applied = []
    for amount in amounts:
        take = min(amount, left)
        applied.append(take)
        left -= take
    return applied


@dataclass(frozen=True)
class Decision:
    """What settling a period means for one account.

    ``action``: ``settle`` (create the bill), ``already`` (the period has a
    bill), ``empty`` (nothing to bill on it: no bill is created), or
    ``blocked`` (an earlier period with usage has no bill; ``reason`` says
    which)."""

    action: str
    period: Period
    reason: str = ""


def settlement_decision(*, period: Period, usage_periods: set[Period], billed: set[str]) -> Decision:
    """Settling ``period`` for an account whose unbilled usage up to the
    period's end lies in ``usage_periods`` and whose bills are ``billed``:

    - a period with a bill is already settled (settled bills never change);
    - an earlier period with usage and no bill is settled first (oldest first);
    - a period with its own unbilled usage gets a bill, which also carries the
      late usage of earlier, billed periods as adjustment lines;
    - a period with only late usage of earlier periods gets a bill of
      adjustment lines only if it is after every billed period (it is the
      next settlement); otherwise nothing is billed on it;
    - a period without usage gets no bill.
    """
    if str(period) in billed:
        return Decision("already", period)
    unsettled = sorted(p for p in usage_periods if p < period and str(p) not in billed)
    if unsettled:
        return Decision("blocked", period, f"settle {unsettled[0]} first (it has usage and no bill)")
    if period in usage_periods:
        return Decision("settle", period)
    if usage_periods and all(Period.parse(b) < period for b in billed):
        return Decision("settle", period)
    return Decision("empty", period)


def catch_up_period(*, latest: Period, usage_periods: set[Period], billed: set[str]) -> Period:
    """The period settlement without an explicit period acts on: the oldest
    period with usage and no bill, else ``latest`` (the latest period whose
    bill time has passed, which takes any late usage)."""
    unsettled = sorted(p for p in usage_periods if p <= latest and str(p) not in billed)
    return unsettled[0] if unsettled else latest


def plan_decision(*, usage_periods: set[Period], billed: set[str], latest: Period,
                  period: Period | None = None) -> Decision:
    """What settling an account means now: ``period`` if given, else the
    catch-up period (``catch_up_period``), decided by ``settlement_decision``.
    The one planning step behind settlement (``bills_prepare``), the
    month-to-date estimate (``billing_estimate``) and ``accounts_due``."""
    target = period or catch_up_period(latest=latest, usage_periods=usage_periods, billed=billed)
    return settlement_decision(period=target, usage_periods={p for p in usage_periods if p <= target},
                               billed=billed)


@dataclass(frozen=True)
class PlanStep:
    decision: Decision
    covered: list[UsageRow]  # the rows the period's bill covers (none unless it settles)
    rest: list[UsageRow]  # the rows of later periods, left for the next step


def plan_step(*, rows: list[UsageRow], billed: set[str], latest: Period, period: Period | None = None) -> PlanStep:
    """``plan_decision`` for an account's unbilled usage ``rows``, and the rows
    its bill would cover."""
    decision = plan_decision(usage_periods=usage_periods(rows), billed=billed, latest=latest, period=period)
    end = decision.period.end_day
    covered = [r for r in rows if r.day < end] if decision.action == "settle" else []
    return PlanStep(decision, covered, [r for r in rows if r.day >= end])
