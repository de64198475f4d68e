"""Reads: the funds balance, the total due and its breakdown, payments."""
from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import QuerySet, Sum

from accounts.models import Account
from core.money import ZERO_MONEY, round_money
from invoices.models import BillLine, LineStatus

from .models import LedgerEntry, Payment, PaymentLine, PaymentPurpose, PaymentStatus


def funds_balances(*, account_ids: Iterable[int], at: dt.datetime | None = None) -> defaultdict[int, Decimal]:
    """Each account's prepaid funds: the sum of its ledger entries, or with
    ``at`` only of those dated at or before it (a top-up booked for a later
    instant is not available yet, billing-rules §5). An account without
    entries has 0.00. The one funds-balance read: the console, the top-up
    page and settlement (for a batch) use it."""
    entries = LedgerEntry.objects.filter(account_id__in=list(account_ids))
    if at is not None:
        entries = entries.filter(at__lte=at)
    rows = entries.order_by().values("account_id").annotate(total=Sum("amount")).values_list("account_id", "total")
    balances: defaultdict[int, Decimal] = defaultdict(lambda: ZERO_MONEY)
    for account_id, total in rows:
        # round_money: SQLite sums decimals as binary floats (0.1 + 0.2 ≠ 0.3);
        # on PostgreSQL the sum is exact and this changes nothing.
        balance = round_money(total)
        balances[account_id] = balance if balance else ZERO_MONEY  # never -0.00
    return balances


@dataclass(frozen=True)
class DueLine:
    line_id: int
    period: str
    service_code: str
    service_name: str
    region_code: str
    region_name: str
    adjustment_for: str
    # currency units: the balance due (or, for a payment, the balance it covers)
    balance: Decimal
    status: str = LineStatus.OVERDRAWN


@dataclass(frozen=True)
class Due:
    """Total due (billing-rules §6): the balances of every Overdrawn line of
    the account, over every region and settled period."""

    lines: list[DueLine]
    total: Decimal
    currency: str


def due_total(*, account: Account) -> Decimal:
    """The total due alone, in one aggregate query (the console's figure)."""
    due = (BillLine.objects.filter(bill__account=account, status=LineStatus.OVERDRAWN)
           .aggregate(due=Sum("balance"))["due"])
    return round_money(due) if due is not None else ZERO_MONEY


def repayment_due(*, account: Account) -> Due:
    """The account's overdrawn lines, oldest period first, in bill order."""
    lines = (
        BillLine.objects.filter(bill__account=account, status=LineStatus.OVERDRAWN)
        .select_related("bill", "service", "region")
        .order_by("bill__period", "position", "id")
    )
    due = [
        DueLine(line_id=ln.pk, period=ln.bill.period, service_code=ln.service_id, service_name=ln.service.name,
                region_code=ln.region_id, region_name=ln.region.name, adjustment_for=ln.adjustment_for,
                balance=ln.balance)
        for ln in lines
    ]
    return Due(lines=due, total=sum((d.balance for d in due), ZERO_MONEY), currency=account.currency)


def payment_list(*, account: Account) -> QuerySet[Payment]:
    """The account's payments, newest first."""
    return Payment.objects.filter(account=account).select_related("created_by").order_by("-created_at", "-id")


def payment_get(*, account: Account, public_id) -> Payment | None:
    """The account's payment with ``public_id`` (None for another account's)."""
    return payment_list(account=account).filter(public_id=public_id).first()


def payment_pending_repayment(*, account: Account) -> Payment | None:
    return Payment.objects.filter(account=account, purpose=PaymentPurpose.REPAYMENT,
                                  status=PaymentStatus.PENDING).first()


def payment_lines(*, payment: Payment) -> list[DueLine]:
    """The lines a repayment covers, with their frozen balances and current status."""
    covered: list[PaymentLine] = list(payment.lines.select_related("line__bill", "line__service", "line__region"))
    return [
        DueLine(line_id=c.line_id, period=c.line.bill.period, service_code=c.line.service_id,
                service_name=c.line.service.name, region_code=c.line.region_id, region_name=c.line.region.name,
                adjustment_for=c.line.adjustment_for, balance=c.balance, status=c.line.status)
        for c in covered
    ]
