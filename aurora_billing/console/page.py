"""The billing console page (``/billing/?period=YYYY-MM``), composed from
every app: the settled bill or the Pending estimate (``invoices``), the
funds balance (``payments``), email packs and daily usage (``usage``).

``billing_console`` reads a constant number of queries whatever the number
of regions, lines or days: each source is one query, grouped in Python.
It takes ``now``; only the view reads the clock.

States of a period on the page:

- ``settled``: the period has a bill; rows show Paid / Overdrawn.
- ``pending``: no bill yet and either the period is the current month,
  its bill time has not passed, or it has usage waiting for settlement;
  rows show the estimate of ``invoices.selectors.billing_estimate``.
- ``empty``: an ended period past its bill time with no bill and no usage.
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property

from django.db.models import Max, Sum

from accounts.models import Account
from core.money import ZERO, ZERO_MONEY
from core.periods import BILLING_TZ, Period, billing_day
from invoices.models import Bill, BillLine, LineStatus
from invoices.selectors import billing_estimate, console_period_check, console_periods, packs_state, unbilled_inputs
from payments.models import Payment
from payments.selectors import due_total, funds_balances, payment_pending_repayment
from usage.models import EMAIL_RESULTS, DailyUsage, Region, ServiceItem, service_item_label, unit_label

from .charts import DailyCharts, daily_charts

SETTLED = "settled"
PENDING = "pending"
EMPTY = "empty"
PENDING_STATUS = "Pending"
# Why a period without a bill is Pending.
MONTH_TO_DATE = "month_to_date"  # the current month
BEFORE_BILL_TIME = "before_bill_time"  # ended, bill time not reached
NOT_SETTLED = "not_settled"  # bill time passed, usage waiting for settlement

# A pack whose last valid day is this close is flagged as expiring soon.
PACK_EXPIRY_WARNING = dt.timedelta(days=30)


@dataclass(frozen=True)
class EmailResults:
    """Emails by delivery result (billing-rules §2)."""

    delivered: int = 0
    soft_bounce: int = 0
    format_error: int = 0
    not_exist: int = 0
    reject: int = 0
    junk_mail: int = 0

    @classmethod
    def of(cls, counts: dict[str, int] | None) -> EmailResults:
        counts = counts or {}
        return cls(**{r: int(counts.get(r) or 0) for r in EMAIL_RESULTS})

    @property
    def invalid(self) -> int:
        """The four Invalid Email results together."""
        return self.format_error + self.not_exist + self.reject + self.junk_mail

    @property
    def total(self) -> int:
        return self.delivered + self.soft_bounce + self.invalid

    def __add__(self, other: EmailResults) -> EmailResults:
        return EmailResults(**{r: getattr(self, r) + getattr(other, r) for r in EMAIL_RESULTS})


@dataclass(frozen=True)
class RegionLine:
    """One bill line (or estimated line) of a summary row."""

    region: str
    region_name: str
    usage_quantity: Decimal
    deducted_quantity: Decimal
    billable_quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    paid: Decimal | None  # None while Pending
    balance: Decimal | None
    status: str
    results: EmailResults | None  # email lines only

    @property
    def unit_price_label(self) -> str:
        return unit_price_text(self.unit_price)


@dataclass
class SummaryRow:
    """One service item over all regions (adjustment lines get their own row
    per original period, after the period's own rows)."""

    service: str
    name: str
    unit: str
    adjustment_for: str
    lines: list[RegionLine] = field(default_factory=list)

    @property
    def usage_quantity(self) -> Decimal:
        return sum((line.usage_quantity for line in self.lines), ZERO)

    @property
    def deducted_quantity(self) -> Decimal:
        return sum((line.deducted_quantity for line in self.lines), ZERO)

    @property
    def billable_quantity(self) -> Decimal:
        return sum((line.billable_quantity for line in self.lines), ZERO)

    @property
    def amount(self) -> Decimal:
        return sum((line.amount for line in self.lines), ZERO_MONEY)

    @property
    def paid(self) -> Decimal | None:
        if any(line.paid is None for line in self.lines):
            return None
        return sum((line.paid for line in self.lines), ZERO_MONEY)

    @property
    def balance(self) -> Decimal | None:
        if any(line.balance is None for line in self.lines):
            return None
        return sum((line.balance for line in self.lines), ZERO_MONEY)

    @property
    def status(self) -> str:
        """Overdrawn if any line is, Paid otherwise; Pending before settlement (§5)."""
        statuses = {line.status for line in self.lines}
        if PENDING_STATUS in statuses:
            return PENDING_STATUS
        return LineStatus.OVERDRAWN if LineStatus.OVERDRAWN in statuses else LineStatus.PAID

    @property
    def unit_label(self) -> str:
        return unit_plural(self.unit, self.usage_quantity)

    @property
    def unit_one(self) -> str:
        """The unit of the unit price (``per email``), in the active language."""
        return unit_label(unit=self.unit, quantity=1)

    @cached_property
    def results(self) -> EmailResults | None:
        if self.service != "email":
            return None
        return sum((line.results or EmailResults() for line in self.lines), EmailResults())

    @property
    def key(self) -> str:
        """A stable id for anchors: ``email`` or ``email-adj-2026-09``."""
        return f"{self.service}-adj-{self.adjustment_for}" if self.adjustment_for else self.service


@dataclass(frozen=True)
class PackBalance:
    reference: str
    remaining: int  # emails, after the deductions of settled bills
    valid_from: dt.date
    valid_until: dt.date  # exclusive

    @property
    def last_day(self) -> dt.date:
        return self.valid_until - dt.timedelta(days=1)


@dataclass
class RegionPacks:
    region: str
    region_name: str
    packs: list[PackBalance]
    expiring_soon: bool = False

    @property
    def remaining(self) -> int:
        return sum(p.remaining for p in self.packs)


@dataclass
class BillingConsole:
    account: Account
    period: Period
    current: Period
    today: dt.date  # UTC+8 day of ``now``
    periods: list[Period]  # newest first
    state: str
    pending_reason: str  # '' unless Pending: MONTH_TO_DATE, BEFORE_BILL_TIME or NOT_SETTLED
    rows: list[SummaryRow]
    bill: Bill | None
    total: Decimal  # the period's total (settled or estimated)
    total_due: Decimal  # all Overdrawn balances of all settled periods
    # The repayment awaiting payment (a wire transfer not yet received, an
    # online checkout not finished), if any.
    pending_repayment: Payment | None
    funds: Decimal
    packs: list[RegionPacks]
    charts: DailyCharts
    usage_updated_at: dt.datetime | None  # last change to the period's usage (UTC)
    late_usage: bool  # usage of a settled period not on its bill yet
    estimate_errors: list[str]

    @property
    def is_settled(self) -> bool:
        return self.state == SETTLED

    @property
    def is_pending(self) -> bool:
        return self.state == PENDING

    @property
    def is_current(self) -> bool:
        return self.period == self.current

    @property
    def period_paid(self) -> Decimal | None:
        return sum((row.paid for row in self.rows), ZERO_MONEY) if self.is_settled else None

    @property
    def period_balance(self) -> Decimal | None:
        return sum((row.balance for row in self.rows), ZERO_MONEY) if self.is_settled else None

    @property
    def previous(self) -> Period | None:
        p = self.period.previous()
        return p if p in self.periods else None

    @property
    def next(self) -> Period | None:
        p = self.period.next()
        return p if p in self.periods else None

    @property
    def usage_updated_label(self) -> str:
        if self.usage_updated_at is None:
            return ""
        return f"{self.usage_updated_at.astimezone(BILLING_TZ):%Y-%m-%d %H:%M} UTC+8"


def unit_plural(unit: str, quantity: Decimal) -> str:
    """``email`` → ``emails`` unless the quantity is exactly 1; ``GB`` stays
    (in the active language: usage.models.unit_label)."""
    return unit_label(unit=unit, quantity=quantity)


def unit_price_text(value: Decimal) -> str:
    """A unit price as stored, with at least 2 decimals: ``28.00``, ``0.00028``."""
    exponent = value.normalize().as_tuple().exponent
    places = max(2, -exponent if isinstance(exponent, int) else 0)
    return f"{value:,.{places}f}"


def billing_console(*, account: Account, period: Period, now: dt.datetime) -> BillingConsole:
    """Everything the console page shows for ``account`` and ``period``.
    Raises PeriodOutOfRange for a period outside ``console_periods``."""
    periods = console_periods(account=account, now=now)
    console_period_check(account=account, period=period, periods=periods)
    current = Period.current(now)
    today = billing_day(now)

    usage = _period_usage(account=account, period=period)
    bill = Bill.objects.filter(account=account, period=str(period)).first()
    services = {s.code: s for s in ServiceItem.objects.all()}
    estimate_errors: list[str] = []
    drafts: list[tuple[tuple[str, str, str], dict]] = []
    total = ZERO_MONEY
    pending_reason = ""
    if bill is not None:
        state = SETTLED
        drafts = [_line_key_and_values(line) for line in BillLine.objects.filter(bill=bill).order_by("position")]
        total = bill.total_amount
    else:
        if period == current:
            pending_reason = MONTH_TO_DATE
        elif not period.is_billable(now):
            pending_reason = BEFORE_BILL_TIME
        elif usage.has_usage:
            pending_reason = NOT_SETTLED
        state = PENDING if pending_reason else EMPTY
    inputs = None
    if state == PENDING:
        inputs = unbilled_inputs(account=account, before=period.end_day)
        calculation = billing_estimate(account=account, period=period, inputs=inputs)
        drafts = [_draft_key_and_values(draft) for draft in calculation.lines]
        estimate_errors = calculation.errors
        total = calculation.total

    packs = inputs.packs if inputs is not None else packs_state(account=account)  # the estimate read them
    pack_states = [p for p in packs if p.valid_until > today]
    region_codes = {key[2] for key, _ in drafts} | {p.region for p in pack_states}
    region_names = dict(Region.objects.filter(code__in=region_codes).values_list("code", "name"))

    rows: dict[tuple[str, str], SummaryRow] = {}
    for (adjustment_for, service, region), values in drafts:
        row = rows.get((adjustment_for, service))
        if row is None:
            item = services[service]
            row = rows[(adjustment_for, service)] = SummaryRow(
                service=service, name=service_item_label(code=item.code, name=item.name), unit=item.unit,
                adjustment_for=adjustment_for,
            )
        row.lines.append(RegionLine(region=region, region_name=region_names.get(region, region), **values))

    return BillingConsole(
        account=account,
        period=period,
        current=current,
        today=today,
        periods=periods,
        state=state,
        pending_reason=pending_reason,
        rows=list(rows.values()),
        bill=bill,
        total=total,
        total_due=due_total(account=account),
        pending_repayment=payment_pending_repayment(account=account),
        funds=funds_balances(account_ids=[account.pk], at=now)[account.pk],
        packs=_region_packs(pack_states, region_names, today),
        charts=daily_charts(period=period, today=today, emails=usage.emails, data_flow=usage.data_flow),
        usage_updated_at=usage.updated_at,
        late_usage=state == SETTLED and usage.has_unbilled,
        estimate_errors=estimate_errors,
    )


@dataclass
class _PeriodUsage:
    emails: dict[dt.date, dict[str, int]]  # day → result → emails
    data_flow: dict[dt.date, Decimal]  # day → GB
    has_usage: bool
    has_unbilled: bool
    updated_at: dt.datetime | None


def _period_usage(*, account: Account, period: Period) -> _PeriodUsage:
    """The period's daily usage in one grouped query."""
    grouped = (
        DailyUsage.objects.filter(account=account, day__gte=period.first_day, day__lt=period.end_day)
        .values("day", "service_id", "result")
        .annotate(quantity=Sum("quantity"), billed=Sum("billed_quantity"), updated_at=Max("updated_at"))
        .order_by()
    )
    emails: dict[dt.date, dict[str, int]] = defaultdict(lambda: dict.fromkeys(EMAIL_RESULTS, 0))
    data_flow: dict[dt.date, Decimal] = defaultdict(lambda: ZERO)
    has_usage = has_unbilled = False
    updated_at = None
    for row in grouped:
        quantity = row["quantity"] or ZERO
        if quantity > 0:
            has_usage = True
        if quantity > (row["billed"] or ZERO):
            has_unbilled = True
        if row["updated_at"] is not None and (updated_at is None or row["updated_at"] > updated_at):
            updated_at = row["updated_at"]
        if row["service_id"] == "email":
            emails[row["day"]][row["result"]] += int(quantity)
        elif row["service_id"] == "data_flow":
            data_flow[row["day"]] += quantity
    return _PeriodUsage(emails=dict(emails), data_flow=dict(data_flow), has_usage=has_usage,
                        has_unbilled=has_unbilled, updated_at=updated_at)


def _line_key_and_values(line: BillLine) -> tuple[tuple[str, str, str], dict]:
    results = None
    if line.service_id == "email":
        results = EmailResults.of({r: getattr(line, r) for r in EMAIL_RESULTS})
    return (line.adjustment_for, line.service_id, line.region_id), {
        "usage_quantity": line.usage_quantity, "deducted_quantity": line.deducted_quantity,
        "billable_quantity": line.billable_quantity, "unit_price": line.unit_price, "amount": line.amount,
        "paid": line.paid, "balance": line.balance, "status": line.status, "results": results,
    }


def _draft_key_and_values(draft) -> tuple[tuple[str, str, str], dict]:
    results = EmailResults.of(draft.results) if draft.service == "email" else None
    return (draft.adjustment_for, draft.service, draft.region), {
        "usage_quantity": draft.usage_quantity, "deducted_quantity": draft.deducted_quantity,
        "billable_quantity": draft.billable_quantity, "unit_price": draft.unit_price, "amount": draft.amount,
        "paid": None, "balance": None, "status": PENDING_STATUS, "results": results,
    }


def _region_packs(pack_states, region_names: dict[str, str], today: dt.date) -> list[RegionPacks]:
    by_region: dict[str, list[PackBalance]] = defaultdict(list)
    for p in sorted(pack_states, key=lambda p: (p.region, p.valid_until, p.valid_from, p.reference)):
        by_region[p.region].append(PackBalance(reference=p.reference, remaining=p.remaining,
                                               valid_from=p.valid_from, valid_until=p.valid_until))
    return [
        RegionPacks(
            region=region, region_name=region_names.get(region, region), packs=packs,
            expiring_soon=any(p.remaining > 0 and p.valid_until - today <= PACK_EXPIRY_WARNING for p in packs),
        )
        for region, packs in by_region.items()
    ]

