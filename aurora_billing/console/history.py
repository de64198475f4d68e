"""The history pages of the console (issue #17): the bills list
(``/billing/bills/``), the funds ledger (``/billing/funds/``) and the email
packs (``/billing/packs/``), composed from the apps' selectors.

Each reads a constant number of queries whatever the number of bills,
lines, ledger entries or packs; each takes ``now`` (only views read the
clock).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from accounts.models import Account
from core.periods import Period, billing_day
from invoices.selectors import BillSummary, PackSummary, bill_list, billing_estimate, pack_list, unbilled_inputs
from payments.selectors import FundsMovement, funds_balances, funds_ledger

PENDING_STATUS = "Pending"


@dataclass(frozen=True)
class BillRow:
    """One period of the bills list: a settled bill, or a Pending estimate."""

    period: Period
    total: Decimal
    paid: Decimal | None  # None while Pending
    balance: Decimal | None
    status: str  # Paid, Overdrawn or Pending
    bill: BillSummary | None  # None while Pending
    estimate_errors: tuple[str, ...] = ()

    @property
    def is_settled(self) -> bool:
        return self.bill is not None


def bills_history(*, account: Account, now: dt.datetime) -> list[BillRow]:
    """Every period with usage or a bill, newest first. A period without a
    bill shows the month-to-date (or not yet settled) estimate, as the
    summary page does; late usage of a settled period stays on the settled
    row (the next bill carries it as an adjustment)."""
    bills = bill_list(account=account)
    billed = {b.period for b in bills}
    rows = [
        BillRow(period=Period.parse(b.period), total=b.total, paid=b.paid, balance=b.balance,
                status="Overdrawn" if b.overdrawn else "Paid", bill=b)
        for b in bills
    ]
    current = Period.current(now)
    inputs = unbilled_inputs(account=account, before=current.end_day)
    for period in sorted(inputs.periods(), reverse=True):
        if str(period) in billed:
            continue
        estimate = billing_estimate(account=account, period=period, inputs=inputs)
        rows.append(BillRow(period=period, total=estimate.total, paid=None, balance=None, status=PENDING_STATUS,
                            bill=None, estimate_errors=tuple(estimate.errors)))
    rows.sort(key=lambda r: r.period, reverse=True)
    return rows


@dataclass(frozen=True)
class FundsHistory:
    movements: list[FundsMovement]  # oldest first
    balance: Decimal  # the funds now (movements dated after now excluded)
    scheduled: Decimal  # sum of movements dated after now (a top-up booked for later)


def funds_history(*, account: Account, now: dt.datetime) -> FundsHistory:
    movements = funds_ledger(account=account)
    balance = funds_balances(account_ids=[account.pk], at=now)[account.pk]
    scheduled = sum((m.amount for m in movements if m.at > now), Decimal("0.00"))
    return FundsHistory(movements=movements, balance=balance, scheduled=scheduled)


@dataclass(frozen=True)
class PackRow:
    pack: PackSummary
    state: str  # "upcoming", "valid", "expired"
    days_to_expiry: int | None  # days from today to the last valid day's end; None unless valid

    @property
    def forfeited(self) -> int:
        """Emails left at expiry (billing-rules §4: forfeited)."""
        return self.pack.left if self.state == "expired" else 0


def packs_history(*, account: Account, now: dt.datetime) -> list[PackRow]:
    """Every email pack: valid ones first (soonest expiry first), then
    upcoming, then expired (most recent first)."""
    today = billing_day(now)
    rows = []
    for pack in pack_list(account=account):
        if pack.valid_until <= today:
            rows.append(PackRow(pack=pack, state="expired", days_to_expiry=None))
        elif pack.valid_from > today:
            rows.append(PackRow(pack=pack, state="upcoming", days_to_expiry=(pack.valid_until - today).days))
        else:
            rows.append(PackRow(pack=pack, state="valid", days_to_expiry=(pack.valid_until - today).days))
    order = {"valid": 0, "upcoming": 1, "expired": 2}
    valid = [r for r in rows if r.state != "expired"]
    expired = [r for r in rows if r.state == "expired"][::-1]
    return sorted(valid, key=lambda r: order[r.state]) + expired
