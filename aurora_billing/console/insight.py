"""The insight page of the console (``/billing/insight/?period=YYYY-MM``,
issue #17): cost by region, the 12-month cost trend, what invalid addresses
cost, the month-over-month explanation and the month-end forecast.

Every figure is made of bill lines (settled periods) or of the Pending
estimate's lines (``invoices.selectors.billing_estimate``), so each agrees
to the cent with the bills and the summary page. Rules (docs/history.md):

- **Invalid-address cost**: a line's amount is split over its six delivery
  results in proportion to their emails, in cents, by largest remainder
  (ties in result order), so the shares of a line add up to its amount
  exactly. All results take from packs alike (§4 deducts per day, not per
  result), so each result carries the line's own deductions pro rata.
- **Month over month**: per (service item, region) line, a waterfall from
  the previous amount to the new one, each step a whole line amount rounded
  as settlement rounds it: volume (delivered emails; other items: usage),
  delivery-result mix (Soft Bounce and Invalid results), deductions (pack
  coverage for email, the free allowance for data flow) and price. Lines
  only in one of the two periods are region mix (the item is billed in both
  periods) or new / dropped service items; adjustment lines are late usage.
  The steps telescope, so the causes add up to the difference exactly.
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.utils.translation import gettext_lazy as _

from accounts.models import Account
from core.money import CENT, FREE_GB_PER_EMAIL, ZERO, ZERO_MONEY, round_money
from core.periods import Period, billing_day
from invoices.models import BillLine
from invoices.selectors import (
    Forecast,
    UnbilledInputs,
    billing_estimate,
    billing_forecast,
    console_period_check,
    console_periods,
    pack_list,
    unbilled_inputs,
)
from payments.selectors import funds_balances
from usage.models import CATALOG_ORDER, EMAIL_RESULTS, Region, ServiceItem, service_item_label

TREND_PERIODS = 12
INVALID = ("format_error", "not_exist", "reject", "junk_mail")
AVOIDABLE = ("format_error", "not_exist")  # sends a clean address list would not make


@dataclass(frozen=True)
class LineFigures:
    service: str
    region: str
    adjustment_for: str
    usage_quantity: Decimal
    deducted_quantity: Decimal
    billable_quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    results: dict[str, int] | None  # email lines


@dataclass
class PeriodFigures:
    period: Period
    settled: bool
    lines: list[LineFigures]
    errors: list[str] = field(default_factory=list)

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), ZERO_MONEY)

    def by_service(self) -> dict[str, Decimal]:
        out: dict[str, Decimal] = defaultdict(lambda: ZERO_MONEY)
        for line in self.lines:
            out[line.service] += line.amount
        return out


def periods_figures(*, account: Account, periods: list[Period], now: dt.datetime,
                    inputs: UnbilledInputs | None = None) -> dict[Period, PeriodFigures]:
    """The lines of each of ``periods``: the bill's (one query for all), else
    the estimate of a period with usage no bill covers, else none.
    ``inputs``: the account's unbilled inputs read up to the current month's
    end (read here if not given), shared by every estimate."""
    wanted = {str(p) for p in periods}
    out: dict[str, PeriodFigures] = {}
    for period, *values in BillLine.objects.filter(bill__account=account, bill__period__in=wanted).order_by(
        "bill__period", "position"
    ).values_list("bill__period", "service_id", "region_id", "adjustment_for", "usage_quantity", "deducted_quantity",
                  "billable_quantity", "unit_price", "amount", *EMAIL_RESULTS):
        figures = out.get(period)
        if figures is None:
            figures = out[period] = PeriodFigures(period=Period.parse(period), settled=True, lines=[])
        service, region, adjustment_for, usage, deducted, billable, price, amount, *counts = values
        results = dict(zip(EMAIL_RESULTS, (int(c or 0) for c in counts), strict=True)) if service == "email" else None
        figures.lines.append(LineFigures(service, region, adjustment_for, usage, deducted, billable, price,
                                         round_money(amount), results))
    current = Period.current(now)
    inputs = inputs or unbilled_inputs(account=account, before=current.end_day)
    unbilled = inputs.periods() | {current}
    result: dict[Period, PeriodFigures] = {}
    for period in periods:
        if str(period) in out:
            result[period] = out[str(period)]
            continue
        figures = result[period] = PeriodFigures(period=period, settled=False, lines=[])
        if period in unbilled and period <= current:
            calc = billing_estimate(account=account, period=period, inputs=inputs)
            figures.errors = calc.errors
            figures.lines = [LineFigures(d.service, d.region, d.adjustment_for, d.usage_quantity, d.deducted_quantity,
                                         d.billable_quantity, d.unit_price, d.amount, d.results) for d in calc.lines]
    return result


# --- invalid addresses ------------------------------------------------------

def result_shares(line: LineFigures) -> dict[str, Decimal]:
    """The line's amount split over its results by emails, in cents, largest
    remainder first (ties in result order); the shares sum to the amount."""
    results = line.results or {}
    emails = sum(results.values())
    if not emails:
        return dict.fromkeys(EMAIL_RESULTS, ZERO_MONEY)
    cents = int(line.amount / CENT)
    exact = {r: Decimal(cents) * results.get(r, 0) / emails for r in EMAIL_RESULTS}
    floor = {r: int(v) for r, v in exact.items()}
    rest = cents - sum(floor.values())
    for r in sorted(EMAIL_RESULTS, key=lambda r: (-(exact[r] - floor[r]), EMAIL_RESULTS.index(r)))[:rest]:
        floor[r] += 1
    return {r: Decimal(floor[r]) * CENT for r in EMAIL_RESULTS}


@dataclass
class InvalidRegion:
    region: str
    region_name: str
    emails: int
    invalid_emails: int
    soft_bounce_emails: int
    by_result: dict[str, Decimal]

    @property
    def invalid(self) -> Decimal:
        return sum((self.by_result[r] for r in INVALID), ZERO_MONEY)

    @property
    def soft_bounce(self) -> Decimal:
        return self.by_result["soft_bounce"]


@dataclass
class InvalidCost:
    period: Period
    total: Decimal  # the period's bill (or estimate)
    regions: list[InvalidRegion]
    without_avoidable: Decimal  # the total had no Not Exist / Format Error emails been sent

    @property
    def invalid(self) -> Decimal:
        return sum((r.invalid for r in self.regions), ZERO_MONEY)

    @property
    def soft_bounce(self) -> Decimal:
        return sum((r.soft_bounce for r in self.regions), ZERO_MONEY)

    @property
    def invalid_share(self) -> Decimal | None:
        """Percent of the total, one decimal."""
        return (self.invalid * 100 / self.total).quantize(Decimal("0.1")) if self.total else None

    @property
    def soft_bounce_share(self) -> Decimal | None:
        return (self.soft_bounce * 100 / self.total).quantize(Decimal("0.1")) if self.total else None

    @property
    def avoidable_saving(self) -> Decimal:
        return self.total - self.without_avoidable


def invalid_cost(figures: PeriodFigures, region_names: dict[str, str]) -> InvalidCost:
    regions: dict[str, InvalidRegion] = {}
    for line in figures.lines:
        if line.service != "email":
            continue
        entry = regions.get(line.region)
        if entry is None:
            entry = regions[line.region] = InvalidRegion(line.region, region_names.get(line.region, line.region), 0,
                                                         0, 0, dict.fromkeys(EMAIL_RESULTS, ZERO_MONEY))
        results = line.results or {}
        entry.emails += sum(results.values())
        entry.invalid_emails += sum(results.get(r, 0) for r in INVALID)
        entry.soft_bounce_emails += results.get("soft_bounce", 0)
        for r, share in result_shares(line).items():
            entry.by_result[r] += share
    return InvalidCost(period=figures.period, total=figures.total,
                       regions=[regions[k] for k in sorted(regions)],
                       without_avoidable=_total_without_avoidable(figures))


def _total_without_avoidable(figures: PeriodFigures) -> Decimal:
    """The period's total had its Not Exist and Format Error emails not been
    sent: each email line keeps its pack deductions for the other emails
    (billable = max(0, emails left − deducted)); each regular data-flow line
    loses the free traffic those emails brought (0.0002 GB each)."""
    removed: dict[str, int] = defaultdict(int)
    total = ZERO_MONEY
    for line in figures.lines:
        if line.service == "email":
            drop = sum((line.results or {}).get(r, 0) for r in AVOIDABLE)
            if not line.adjustment_for:
                removed[line.region] += drop
            billable = max(ZERO, line.usage_quantity - drop - line.deducted_quantity)
            total += round_money(billable * line.unit_price)
    for line in figures.lines:
        if line.service == "email":
            continue
        if line.service == "data_flow" and not line.adjustment_for and removed[line.region]:
            emails = sum(x.usage_quantity for x in figures.lines
                         if x.service == "email" and x.region == line.region and not x.adjustment_for)
            allowance = FREE_GB_PER_EMAIL * (emails - removed[line.region])
            deducted = min(line.usage_quantity, max(ZERO, allowance))
            total += round_money((line.usage_quantity - deducted) * line.unit_price)
        else:
            total += line.amount
    return total


# --- cost by region ---------------------------------------------------------

@dataclass
class RegionCostRow:
    region: str
    region_name: str
    amounts: list[Decimal]  # one per column service, in column order

    @property
    def total(self) -> Decimal:
        return sum(self.amounts, ZERO_MONEY)


@dataclass
class RegionCost:
    services: list[tuple[str, str]]  # (code, name) of the columns: items with lines, catalog order
    rows: list[RegionCostRow]

    @property
    def column_totals(self) -> list[Decimal]:
        return [sum((r.amounts[i] for r in self.rows), ZERO_MONEY) for i in range(len(self.services))]

    @property
    def total(self) -> Decimal:
        return sum((r.total for r in self.rows), ZERO_MONEY)


def region_cost(figures: PeriodFigures, region_names: dict[str, str], service_names: dict[str, str]) -> RegionCost:
    """The period's amounts by region (rows) and service item (columns),
    adjustment lines included in their item."""
    cells: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO_MONEY)
    for line in figures.lines:
        cells[(line.region, line.service)] += line.amount
    services = [s for s in CATALOG_ORDER if any(k[1] == s for k in cells)]
    regions = sorted({k[0] for k in cells})
    return RegionCost(
        services=[(s, service_names.get(s, s)) for s in services],
        rows=[RegionCostRow(r, region_names.get(r, r), [cells.get((r, s), ZERO_MONEY) for s in services])
              for r in regions],
    )


# --- month over month -------------------------------------------------------

VOLUME = "volume"
RESULT_MIX = "result_mix"
PACK_COVERAGE = "pack_coverage"
ALLOWANCE = "allowance"
PRICE = "price"
REGION_MIX = "region_mix"
NEW_ITEMS = "new_items"
LATE_USAGE = "late_usage"
CAUSES = (VOLUME, RESULT_MIX, PRICE, PACK_COVERAGE, ALLOWANCE, REGION_MIX, NEW_ITEMS, LATE_USAGE)
CAUSE_LABELS = {
    VOLUME: _("Volume"),
    RESULT_MIX: _("Delivery-result mix"),
    PRICE: _("Price"),
    PACK_COVERAGE: _("Pack coverage"),
    ALLOWANCE: _("Free traffic allowance"),
    REGION_MIX: _("Region mix"),
    NEW_ITEMS: _("New or dropped service items"),
    LATE_USAGE: _("Late usage of earlier months"),
}
HEADLINE_CAUSES = 5  # named in the sentence; the rest are counted and summed, and listed in the table


@dataclass(frozen=True)
class Cause:
    kind: str  # one of CAUSES
    service: str
    region: str
    amount: Decimal  # change in currency units (cents exact)
    quantity: Decimal = ZERO  # the change in units behind it (emails, GB, …), if any
    price_from: Decimal | None = None
    price_to: Decimal | None = None
    packs: tuple[tuple[str, str, dt.date | None], ...] = ()  # (reference, "expired"/"exhausted", day)


@dataclass
class MonthOverMonth:
    period: Period
    previous: Period
    total: Decimal
    previous_total: Decimal
    causes: list[Cause]  # non-zero causes, largest change first

    @property
    def difference(self) -> Decimal:
        return self.total - self.previous_total

    @property
    def headline(self) -> list[Cause]:
        """The largest causes, named in the sentence."""
        return self.causes[:HEADLINE_CAUSES]

    @property
    def others(self) -> list[Cause]:
        """The causes after the headline; the sentence gives their count and sum."""
        return self.causes[HEADLINE_CAUSES:]

    @property
    def others_amount(self) -> Decimal:
        return sum((c.amount for c in self.others), ZERO_MONEY)

    def by_kind(self) -> list[tuple[str, int, Decimal]]:
        """(cause kind, lines changed, amount) per kind in ``CAUSES`` order,
        kinds without a change left out; the amounts add up to the difference."""
        out = []
        for kind in CAUSES:
            amounts = [c.amount for c in self.causes if c.kind == kind]
            if amounts:
                out.append((kind, len(amounts), sum(amounts, ZERO_MONEY)))
        return out


def _waterfall(old: LineFigures, new: LineFigures) -> list[Cause]:
    """Steps from ``old.amount`` to ``new.amount``, each a rounded line amount."""
    s, r = new.service, new.region
    p0, d0 = old.unit_price, old.deducted_quantity
    steps: list[Cause] = []
    start = old.amount
    if s == "email":
        old_res, new_res = old.results or {}, new.results or {}
        delivered = Decimal(new_res.get("delivered", 0) - old_res.get("delivered", 0))
        after_volume = round_money(max(ZERO, old.usage_quantity + delivered - d0) * p0)
        steps.append(Cause(VOLUME, s, r, after_volume - start, quantity=delivered))
        after_mix = round_money(max(ZERO, new.usage_quantity - d0) * p0)
        steps.append(Cause(RESULT_MIX, s, r, after_mix - after_volume,
                           quantity=new.usage_quantity - old.usage_quantity - delivered))
        start = after_mix
    else:
        after_volume = round_money(max(ZERO, new.usage_quantity - d0) * p0)
        steps.append(Cause(VOLUME, s, r, after_volume - start, quantity=new.usage_quantity - old.usage_quantity))
        start = after_volume
    after_deductions = round_money(new.billable_quantity * p0)
    steps.append(Cause(PACK_COVERAGE if s == "email" else ALLOWANCE, s, r, after_deductions - start,
                       quantity=new.deducted_quantity - d0))
    steps.append(Cause(PRICE, s, r, new.amount - after_deductions, price_from=p0, price_to=new.unit_price))
    return steps


def month_over_month(current: PeriodFigures, previous: PeriodFigures, packs=()) -> MonthOverMonth:
    """The change from ``previous`` to ``current`` split into causes whose
    amounts add up to the difference exactly (module docstring)."""
    old = {(x.service, x.region): x for x in previous.lines if not x.adjustment_for}
    new = {(x.service, x.region): x for x in current.lines if not x.adjustment_for}
    old_services = {k[0] for k in old}
    new_services = {k[0] for k in new}
    causes: list[Cause] = []
    for key in sorted(old.keys() | new.keys(), key=lambda k: (CATALOG_ORDER.index(k[0]), k[1])):
        service, region = key
        if key in old and key in new:
            causes += _waterfall(old[key], new[key])
        elif key in new:
            kind = REGION_MIX if service in old_services else NEW_ITEMS
            causes.append(Cause(kind, service, region, new[key].amount, quantity=new[key].usage_quantity))
        else:
            kind = REGION_MIX if service in new_services else NEW_ITEMS
            causes.append(Cause(kind, service, region, -old[key].amount, quantity=-old[key].usage_quantity))
    late = (sum((x.amount for x in current.lines if x.adjustment_for), ZERO_MONEY)
            - sum((x.amount for x in previous.lines if x.adjustment_for), ZERO_MONEY))
    if late:
        causes.append(Cause(LATE_USAGE, "", "", late))
    causes = [_with_packs(c, current.period, packs) for c in causes if c.amount]
    causes.sort(key=lambda c: -abs(c.amount))
    return MonthOverMonth(period=current.period, previous=previous.period, total=current.total,
                          previous_total=previous.total, causes=causes)


def _with_packs(cause: Cause, period: Period, packs) -> Cause:
    """Name the packs behind a change in pack coverage: packs of the region
    that expired from the previous period's start to this period's end, or
    that are used up and covered one of the two periods."""
    if cause.kind != PACK_COVERAGE:
        return cause
    previous = period.previous()
    named = []
    for pack in packs:
        if pack.region != cause.region:
            continue
        if previous.first_day < pack.valid_until <= period.end_day:
            named.append((pack.reference, "expired", pack.valid_until))
        elif pack.left == 0 and {c.period for c in pack.coverage} & {str(period), str(previous)}:
            named.append((pack.reference, "exhausted", None))
    return Cause(**{**cause.__dict__, "packs": tuple(named)})


# --- trend ------------------------------------------------------------------

BAR_WIDTH = 40
CHART_WIDTH = 720
CHART_HEIGHT = 240
PLOT_LEFT, PLOT_TOP, PLOT_BOTTOM = 70, 14, 212
SLOT = (CHART_WIDTH - 12 - PLOT_LEFT) // TREND_PERIODS


@dataclass(frozen=True)
class TrendBar:
    service: str
    x: int
    y: str
    height: str
    amount: Decimal


@dataclass
class TrendPeriod:
    period: Period
    settled: bool
    amounts: list[Decimal]  # per trend service, in column order
    bars: list[TrendBar]
    x: int  # centre of the slot
    invalid: Decimal = ZERO_MONEY
    soft_bounce: Decimal = ZERO_MONEY

    @property
    def total(self) -> Decimal:
        return sum(self.amounts, ZERO_MONEY)


@dataclass
class Trend:
    services: list[tuple[str, str]]
    periods: list[TrendPeriod]  # oldest first
    ticks: list[tuple[str, str]]  # (y position, label)
    plot_left: int = PLOT_LEFT
    plot_right: int = CHART_WIDTH - 12
    plot_bottom: int = PLOT_BOTTOM
    view_box: str = f"0 0 {CHART_WIDTH} {CHART_HEIGHT}"


def _nice_max(value: Decimal) -> Decimal:
    if value <= 0:
        return Decimal(1)
    magnitude = Decimal(10) ** (len(str(int(value))) - 1)
    for step in (1, 2, 5, 10):
        if value <= magnitude * step:
            return magnitude * step
    return magnitude * 10


def cost_trend(figures: list[PeriodFigures], service_names: dict[str, str],
               region_names: dict[str, str]) -> Trend:
    """Stacked bars per period by service item (catalog order bottom-up)."""
    per = [f.by_service() for f in figures]
    services = [s for s in CATALOG_ORDER if any(p.get(s) for p in per)]
    top = _nice_max(max((f.total for f in figures), default=ZERO))
    scale = Decimal(PLOT_BOTTOM - PLOT_TOP) / top
    out = []
    for i, (f, amounts) in enumerate(zip(figures, per, strict=True)):
        x = PLOT_LEFT + i * SLOT + SLOT // 2
        y = Decimal(PLOT_BOTTOM)
        bars = []
        for s in services:
            amount = amounts.get(s, ZERO_MONEY)
            if amount > 0:
                h = (amount * scale).quantize(Decimal("0.1"))
                y -= h
                bars.append(TrendBar(s, x - BAR_WIDTH // 2, str(y), str(h), amount))
        cost = invalid_cost(f, region_names)
        out.append(TrendPeriod(f.period, f.settled, [amounts.get(s, ZERO_MONEY) for s in services], bars, x,
                               cost.invalid, cost.soft_bounce))
    steps = [top * k / 4 for k in range(5)]
    places = 0 if all(v == v.to_integral_value() for v in steps) else 2  # 500 / 375 / … or 0.50 / 0.25 / …
    ticks = [(str((PLOT_BOTTOM - v * scale).quantize(Decimal("0.1"))), f"{v:,.{places}f}") for v in steps]
    return Trend(services=[(s, service_names.get(s, s)) for s in services], periods=out, ticks=ticks)


# --- forecast ---------------------------------------------------------------

@dataclass(frozen=True)
class ForecastView:
    forecast: Forecast
    funds: Decimal  # the funds balance now
    funds_for_period: Decimal  # what is left of them after earlier unsettled periods

    @property
    def overdraft(self) -> Decimal:
        return max(ZERO_MONEY, self.forecast.total - self.funds_for_period)


# --- the page ---------------------------------------------------------------

@dataclass
class Insight:
    account: Account
    period: Period
    periods: list[Period]  # offered, newest first
    figures: PeriodFigures
    region_cost: RegionCost
    invalid: InvalidCost
    trend: Trend
    month_over_month: MonthOverMonth
    forecast: ForecastView | None
    region_names: dict[str, str]
    service_names: dict[str, str]


def billing_insight(*, account: Account, period: Period, now: dt.datetime) -> Insight:
    """Everything the insight page shows for ``account`` and ``period``.
    Raises PeriodOutOfRange for a period the console does not offer."""
    offered = console_periods(account=account, now=now)
    console_period_check(account=account, period=period, periods=offered)
    current = Period.current(now)
    window = [current]
    while len(window) < TREND_PERIODS:
        window.append(window[-1].previous())
    window.reverse()
    wanted = sorted(set(window) | {period, period.previous()})
    inputs = unbilled_inputs(account=account, before=current.end_day)
    figures = periods_figures(account=account, periods=wanted, now=now, inputs=inputs)
    codes = {x.region for f in figures.values() for x in f.lines}
    region_names = dict(Region.objects.filter(code__in=codes).values_list("code", "name"))
    service_names = {code: service_item_label(code=code, name=name)
                     for code, name in ServiceItem.objects.values_list("code", "name")}
    selected = figures[period]
    forecast = None
    if period == current and not selected.settled:
        projection = billing_forecast(account=account, period=period, today=billing_day(now), inputs=inputs)
        if projection is not None:
            funds = funds_balances(account_ids=[account.pk], at=now)[account.pk]
            forecast = ForecastView(forecast=projection, funds=funds,
                                    funds_for_period=max(ZERO_MONEY, funds - projection.earlier_total))
    return Insight(
        account=account, period=period, periods=offered, figures=selected,
        region_cost=region_cost(selected, region_names, service_names),
        invalid=invalid_cost(selected, region_names),
        trend=cost_trend([figures[p] for p in window], service_names, region_names),
        month_over_month=month_over_month(selected, figures[period.previous()], pack_list(account=account)),
        forecast=forecast, region_names=region_names, service_names=service_names,
    )
