"""Settlement orchestration: bills from ``invoices``, funds from ``payments``.

``bill_settle`` is the one entry point that creates a bill. It locks the
account row, so settlements, repayments and top-ups of one account are
serialised on PostgreSQL; it is idempotent (a settled period is returned
unchanged) and atomic (a failure leaves no partial bill).
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.db.models import F

from accounts.models import Account
from aurora_billing.periods import Period
from invoices.models import Bill
from invoices.services import SettlementError, bill_create
from payments.services import funds_apply_to_bill
from usage.models import DailyUsage

log = logging.getLogger("aurora.settlement")


class PeriodNotDue(ValueError):
    """The period's bill time has not passed."""


@dataclass
class SettlementReport:
    settled: list[tuple[str, str]] = field(default_factory=list)  # (account code, period)
    already: list[tuple[str, str]] = field(default_factory=list)
    empty: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def merge(self, other: SettlementReport) -> None:
        self.settled += other.settled
        self.already += other.already
        self.empty += other.empty
        self.errors += other.errors

    def summary(self) -> str:
        return (f"{len(self.settled)} bills created, {len(self.already)} already settled, "
                f"{len(self.empty)} without usage, {len(self.errors)} errors")


def bill_settle(*, account: Account, period: Period, now: dt.datetime) -> tuple[Bill | None, bool]:
    """Settle ``account`` for ``period``. Returns (bill, created). A period
    without unbilled usage gets no bill: (None, False)."""
    if not period.is_billable(now):
        raise PeriodNotDue(f"{period} cannot be settled before {period.bill_time.isoformat()}")
    try:
        with transaction.atomic():
            account = Account.objects.select_for_update().get(pk=account.pk)
            existing = Bill.objects.filter(account=account, period=str(period)).first()
            if existing is not None:
                return existing, False
            has_usage = DailyUsage.objects.filter(
                account=account, day__lt=period.end_day, quantity__gt=F("billed_quantity")
            ).exists()
            if not has_usage:
                return None, False
            bill = bill_create(account=account, period=period, now=now)
            funds_apply_to_bill(bill=bill, now=now)
    except IntegrityError:
        # Another settlement of the same (account, period) won the race.
        existing = Bill.objects.filter(account=account, period=str(period)).first()
        if existing is None:
            raise
        return existing, False
    log.info("settled account=%s period=%s bill=%s total=%s", account.code, period, bill.pk, bill.total_amount)
    return bill, True


def latest_due_period(now: dt.datetime) -> Period:
    """The most recent period whose bill time has passed."""
    candidate = Period.current(now).previous()
    return candidate if candidate.is_billable(now) else candidate.previous()


def periods_due(*, account: Account, now: dt.datetime) -> list[Period]:
    """Periods ``account`` should be settled for now, oldest first: every
    ended, due period with unbilled usage and no bill; and, when only late
    usage waits, the latest due period (its next settlement)."""
    last = latest_due_period(now)
    days = (DailyUsage.objects.filter(account=account, day__lt=last.end_day, quantity__gt=F("billed_quantity"))
            .values_list("day", flat=True).distinct())
    periods = {Period.of_day(d) for d in days}
    if not periods:
        return []
    billed = set(Bill.objects.filter(account=account).values_list("period", flat=True))
    due = sorted(p for p in periods if str(p) not in billed)
    if not due and str(last) not in billed:
        due = [last]
    return due


def settle_account(*, account: Account, now: dt.datetime, period: Period | None = None) -> SettlementReport:
    """Settle one account: ``period`` only, or every period due (catch-up)."""
    report = SettlementReport()
    targets = [period] if period else periods_due(account=account, now=now)
    for target in targets:
        try:
            bill, created = bill_settle(account=account, period=target, now=now)
        except SettlementError as exc:
            log.warning("settlement failed account=%s period=%s: %s", account.code, target, exc)
            report.errors.append(str(exc))
            break  # later periods wait for this one
        key = (account.code, str(target))
        if bill is None:
            report.empty.append(key)
        elif created:
            report.settled.append(key)
        else:
            report.already.append(key)
    return report


def accounts_with_due_usage(*, now: dt.datetime) -> list[int]:
    """Ids of accounts that have unbilled usage before the latest due period's end."""
    last = latest_due_period(now)
    return list(
        DailyUsage.objects.filter(day__lt=last.end_day, quantity__gt=F("billed_quantity"))
        .values_list("account_id", flat=True).distinct().order_by("account_id")
    )
