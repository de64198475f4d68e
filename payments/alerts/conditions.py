"""What holds now: the alert conditions of an account at ``now`` (reads only).

Every figure is in the account's currency. A condition is keyed by (kind,
subject); the subject names what it is about, so each pack, period or
payment has its own crossings.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Sum
from django.db.models.functions import Coalesce

from accounts.models import Account
from core.money import ZERO_MONEY, round_money
from core.periods import Period, billing_day
from invoices.models import BillLine, LineStatus
from invoices.selectors import billing_estimate
from usage.models import EmailPack

from ..models import AlertKind, AlertSettings, BudgetBasis, Payment, PaymentMethod, PaymentPurpose, PaymentStatus
from ..selectors import funds_balances


@dataclass(frozen=True)
class Condition:
    kind: str
    subject: str
    # currency units: the figure that crossed, and the limit it crossed
    amount: Decimal | None = None
    threshold: Decimal | None = None
    detail: dict = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.subject)


def alert_settings_get(*, account: Account) -> AlertSettings:
    """The account's settings, or the defaults (an unsaved row)."""
    return AlertSettings.objects.filter(account=account).first() or AlertSettings(account=account)


def month_forecast(*, month_to_date: Decimal, period: Period, now: dt.datetime) -> Decimal:
    """The month-end forecast: the month to date spread evenly over the UTC+8
    days elapsed (today included), times the days of the month."""
    elapsed = (billing_day(now) - period.first_day).days + 1
    days = len(period.days())
    return round_money(month_to_date * days / min(max(elapsed, 1), days))


def funds_condition(*, account: Account, settings: AlertSettings, now: dt.datetime) -> list[Condition]:
    if not settings.funds_low_on or settings.funds_threshold is None:
        return []
    balance = funds_balances(account_ids=[account.pk], at=now)[account.pk]
    if balance >= settings.funds_threshold:
        return []
    return [Condition(AlertKind.FUNDS_LOW, "", balance, settings.funds_threshold)]


def budget_condition(*, account: Account, settings: AlertSettings, now: dt.datetime) -> list[Condition]:
    """The current month against the budget: the console's Pending estimate,
    or its month-end forecast. The subject is the period, so every month
    starts uncrossed."""
    if not settings.budget_on or settings.budget_amount is None:
        return []
    period = Period.current(now)
    month_to_date = round_money(billing_estimate(account=account, period=period).total)
    figure = month_to_date
    if settings.budget_basis == BudgetBasis.FORECAST:
        figure = month_forecast(month_to_date=month_to_date, period=period, now=now)
    if figure <= settings.budget_amount:
        return []
    return [Condition(AlertKind.BUDGET, str(period), figure, settings.budget_amount,
                      {"period": str(period), "basis": settings.budget_basis, "month_to_date": str(month_to_date)})]


def overdrawn_conditions(*, account: Account, settings: AlertSettings, now: dt.datetime) -> list[Condition]:
    """Every settled period with Overdrawn lines, with what is due on it."""
    if not settings.overdrawn_on:
        return []
    rows = (BillLine.objects.filter(bill__account=account, status=LineStatus.OVERDRAWN)
            .order_by().values_list("bill__period").annotate(due=Sum("balance")).order_by("bill__period"))
    return [Condition(AlertKind.OVERDRAWN, period, round_money(due), None, {"period": period})
            for period, due in rows if due and round_money(due) > ZERO_MONEY]


def pack_conditions(*, account: Account, settings: AlertSettings, now: dt.datetime) -> list[Condition]:
    """Packs valid today that hold less than the percentage left, or whose
    last valid day is within the days. What a pack holds is its quantity
    less the deductions of settled periods."""
    if not (settings.pack_low_on or settings.pack_expiring_on):
        return []
    today = billing_day(now)
    packs = (EmailPack.objects.filter(account=account, valid_from__lte=today, valid_until__gt=today)
             .annotate(used=Coalesce(Sum("deductions__quantity"), 0)).order_by("valid_until", "reference"))
    out = []
    for pack in packs:
        remaining = pack.quantity - pack.used
        detail = {"reference": pack.reference, "region": pack.region_id, "quantity": pack.quantity,
                  "remaining": remaining, "last_day": (pack.valid_until - dt.timedelta(days=1)).isoformat()}
        if (settings.pack_low_on and pack.quantity > 0
                and remaining * 100 < settings.pack_low_percent * pack.quantity):
            out.append(Condition(AlertKind.PACK_LOW, f"pack:{pack.pk}", None, None,
                                 {**detail, "percent": settings.pack_low_percent,
                                  "percent_left": remaining * 100 // pack.quantity}))
        days_left = (pack.valid_until - today).days  # 1 on its last valid day
        if settings.pack_expiring_on and remaining > 0 and days_left <= settings.pack_expiring_days:
            out.append(Condition(AlertKind.PACK_EXPIRING, f"pack:{pack.pk}", None, None,
                                 {**detail, "days": settings.pack_expiring_days, "days_left": days_left}))
    return out


def wire_conditions(*, account: Account, settings: AlertSettings, now: dt.datetime) -> list[Condition]:
    """Repayments by wire transfer still awaiting the money after the days."""
    if not settings.wire_waiting_on:
        return []
    since = now - dt.timedelta(days=settings.wire_waiting_days)
    waiting = Payment.objects.filter(account=account, purpose=PaymentPurpose.REPAYMENT, method=PaymentMethod.WIRE,
                                     status=PaymentStatus.PENDING, created_at__lte=since).order_by("created_at")
    return [Condition(AlertKind.WIRE_WAITING, f"payment:{p.public_id}", p.amount, None,
                      {"reference": p.reference, "public_id": str(p.public_id), "started": p.created_at.isoformat(),
                       "days": settings.wire_waiting_days})
            for p in waiting]


def alert_conditions(*, account: Account, now: dt.datetime,
                     settings: AlertSettings | None = None) -> dict[tuple[str, str], Condition]:
    """Every condition of the account that holds at ``now``, by (kind, subject)."""
    settings = settings or alert_settings_get(account=account)
    found: list[Condition] = []
    for read in (funds_condition, budget_condition, overdrawn_conditions, pack_conditions, wire_conditions):
        found.extend(read(account=account, settings=settings, now=now))
    return {c.key: c for c in found}
