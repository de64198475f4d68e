"""Writes to the funds ledger."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db import transaction
from django.db.models import Sum

from accounts.models import Account
from aurora_billing.money import ZERO_MONEY
from invoices.models import Bill, BillLine, LineStatus

from .models import EntryKind, LedgerEntry


def funds_balance(*, account: Account) -> Decimal:
    """The account's prepaid funds: the sum of its ledger entries."""
    total = LedgerEntry.objects.filter(account=account).aggregate(total=Sum("amount"))["total"]
    return total if total is not None else ZERO_MONEY


def funds_apply_to_bill(*, bill: Bill, now: dt.datetime) -> Decimal:
    """Apply the funds available now to the bill's lines in order (catalog,
    region, adjustments last); each line takes min(balance, funds left).
    Runs inside the settlement transaction that holds the account lock.
    Returns the amount applied."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("funds_apply_to_bill must run inside a transaction")
    available = funds_balance(account=bill.account)
    applied_total = ZERO_MONEY
    entries: list[LedgerEntry] = []
    changed: list[BillLine] = []
    for line in bill.lines.order_by("position"):
        if available <= 0:
            break
        take = min(line.balance, available)
        if take <= 0:
            continue
        available -= take
        applied_total += take
        line.paid += take
        line.balance -= take
        line.status = LineStatus.PAID if line.balance == 0 else LineStatus.OVERDRAWN
        changed.append(line)
        entries.append(LedgerEntry(
            account=bill.account, kind=EntryKind.SETTLEMENT, amount=-take, currency=bill.currency,
            at=now, reference=f"bill:{bill.pk}", line=line,
            memo=f"{bill.period} {line.service_id}/{line.region_id}"
                 + (f" (adjustment for {line.adjustment_for})" if line.adjustment_for else ""),
        ))
    BillLine.objects.bulk_update(changed, ["paid", "balance", "status"])
    LedgerEntry.objects.bulk_create(entries)
    if applied_total:
        Bill.objects.filter(pk=bill.pk).update(funds_applied=applied_total)
        bill.funds_applied = applied_total
    return applied_total


def topup_record(*, account: Account, amount: Decimal, reference: str, at: dt.datetime,
                 created_by=None, memo: str = "") -> tuple[LedgerEntry, bool]:
    """Book a top-up once per reference; returns (entry, created)."""
    if amount <= 0:
        raise ValueError("a top-up amount must be greater than 0")
    with transaction.atomic():
        Account.objects.select_for_update().filter(pk=account.pk).first()
        existing = LedgerEntry.objects.filter(account=account, kind=EntryKind.TOPUP, reference=reference).first()
        if existing:
            return existing, False
        entry = LedgerEntry.objects.create(
            account=account, kind=EntryKind.TOPUP, amount=amount, currency=account.currency, at=at,
            reference=reference, created_by=created_by, memo=memo,
        )
        return entry, True
