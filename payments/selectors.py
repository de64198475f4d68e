"""Reads: the funds balance, the total due and its breakdown, payments."""
from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Max, Min, QuerySet, Sum

from accounts.models import Account
from core.money import ZERO_MONEY, round_money
from invoices.models import BillLine, LineStatus

from .models import EntryKind, LedgerEntry, Payment, PaymentLine, PaymentMethod, PaymentPurpose, PaymentStatus


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


# --- the funds ledger page (issue #17) -------------------------------------

@dataclass(frozen=True)
class FundsMovement:
    """One movement of the prepaid funds, as the funds ledger shows it.
    Settlement entries are one per bill (its lines summed), repayment
    applications one per (payment, bill); money in the account's currency."""

    at: dt.datetime
    kind: str  # EntryKind value
    amount: Decimal  # > 0 adds to the funds, < 0 takes from them
    balance: Decimal  # the funds after this movement (running balance)
    reference: str  # the top-up reference, or the payment's human reference
    period: str  # the bill's period for settlement and repayment applications, else ''
    lines: int  # ledger entries summed into this row
    memo: str
    recorded_by: str  # email of whoever booked it ('' for the system)
    payment_id: str  # the payment's public id, for console top-ups and repayments
    payment_method: str  # its method label, '' for staff-recorded movements

    @property
    def staff_recorded(self) -> bool:
        return self.kind == EntryKind.TOPUP and not self.payment_id


_KIND_ORDER = {EntryKind.TOPUP: 0, EntryKind.REPAYMENT: 1, EntryKind.SETTLEMENT: 2,
               EntryKind.REPAYMENT_APPLICATION: 3}


def funds_ledger(*, account: Account) -> list[FundsMovement]:
    """Every movement of ``account``'s funds, oldest first, with the
    running balance: three queries whatever the number of entries. The last
    balance equals ``funds_balances`` without ``at``."""
    single = LedgerEntry.objects.filter(account=account, kind__in=[EntryKind.TOPUP, EntryKind.REPAYMENT]).values(
        "id", "at", "kind", "amount", "reference", "memo", "created_by__email")
    grouped = (
        LedgerEntry.objects.filter(account=account,
                                   kind__in=[EntryKind.SETTLEMENT, EntryKind.REPAYMENT_APPLICATION])
        .values("kind", "reference", "line__bill__period")
        .annotate(first_id=Min("id"), at=Max("at"), amount=Sum("amount"), lines=Count("id"),
                  created_by__email=Max("created_by__email"))
        .order_by()
    )
    rows = [{**r, "lines": 1, "line__bill__period": ""} for r in single]
    rows += [{**r, "id": r.pop("first_id"), "memo": ""} for r in grouped]
    public_ids = {r["reference"].split(":")[1] for r in rows if r["reference"].startswith("payment:")}
    payments = {
        str(public_id): (reference, PaymentMethod(method).label)
        for public_id, reference, method in Payment.objects.filter(
            account=account, public_id__in=[p for p in public_ids if _is_uuid(p)]
        ).values_list("public_id", "reference", "method")
    }
    rows.sort(key=lambda r: (r["at"], _KIND_ORDER[r["kind"]], r["line__bill__period"], r["id"]))
    out: list[FundsMovement] = []
    balance = ZERO_MONEY
    for r in rows:
        amount = round_money(r["amount"])
        balance += amount
        payment_id = r["reference"].split(":")[1] if r["reference"].startswith("payment:") else ""
        reference, method = payments.get(payment_id, ("", ""))
        if not reference:
            payment_id = ""
            reference = "" if r["reference"].startswith("bill:") else r["reference"]
        out.append(FundsMovement(
            at=r["at"], kind=r["kind"], amount=amount, balance=balance, reference=reference,
            period=r["line__bill__period"] or "", lines=r["lines"], memo=r["memo"],
            recorded_by=r["created_by__email"] or "", payment_id=payment_id, payment_method=method,
        ))
    return out


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True
