"""Settlement orchestration: bills from ``invoices``, funds from ``payments``.

A batch of accounts is settled in one transaction that first locks the
accounts' rows (in id order, so overlapping batches never deadlock), then

1. ``invoices.services.bills_prepare`` decides and computes each bill;
2. the funds balance of each account as of ``now``
   (``payments.selectors.funds_balances``) is applied to its lines in order
   (``invoices.calculation.funds_allocate``);
3. ``invoices.services.bills_write`` writes bills, lines, pack deductions
   and marks the usage billed; ``payments.services.ledger_settlement_record``
   appends the funds applied to the ledger as ``settlement`` entries and
   ``core.audit.audit_record_bulk`` each bill to the audit log.

Top-ups and repayments take the same account lock, so they are serialised
with settlement on PostgreSQL. Settlement is idempotent: a settled period is
never billed again (and the unique constraint on (account, period) is the
last guard); a failure rolls the batch back, and the batch is then retried
one account per transaction so one failing account never holds up the
others. An account that cannot be settled (no price in effect, an earlier
period not settled) is reported and left unsettled.
"""
from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import TruncMonth

from accounts.models import Account
from core.audit import audit_record_bulk
from core.periods import Period
from invoices.calculation import funds_allocate, plan_decision
from invoices.models import Bill
from invoices.selectors import latest_due_period
from invoices.services import SettlementError, bills_prepare, bills_write
from payments.selectors import funds_balances
from payments.services import ledger_settlement_record
from usage.models import DailyUsage

log = logging.getLogger("aurora.settlement")

__all__ = ["PeriodNotDue", "SettlementError", "SettlementReport", "accounts_due", "accounts_settle",
           "bill_settle", "latest_due_period"]


class PeriodNotDue(ValueError):
    """The period's bill time has not passed."""


@dataclass
class SettlementReport:
    settled: list[tuple[str, str]] = field(default_factory=list)  # (account code, period)
    already: list[tuple[str, str]] = field(default_factory=list)
    empty: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # "code period: reason"

    def merge(self, other: SettlementReport) -> None:
        self.settled += other.settled
        self.already += other.already
        self.empty += other.empty
        self.errors += other.errors

    def summary(self) -> str:
        return (f"{len(self.settled)} bills created, {len(self.already)} already settled, "
                f"{len(self.empty)} without usage, {len(self.errors)} errors")


def _settle_locked(*, accounts: list[Account], now: dt.datetime,
                   period: Period | None) -> tuple[SettlementReport, list[int]]:
    """Settle ``accounts`` (rows locked by the caller's transaction). Returns
    the report and the ids of accounts that got a bill and have unbilled
    usage after it (catch-up goes on with them)."""
    report = SettlementReport()
    plan = bills_prepare(accounts=accounts, now=now, period=period)
    report.already += [(a.code, str(p)) for a, p in plan.already]
    report.empty += [(a.code, str(p)) for a, p in plan.empty]
    for account, target, reason in plan.errors:
        log.warning("not settled account=%s period=%s: %s", account.code, target, reason)
        report.errors.append(f"{account.code} {target}: {reason}")
    if not plan.drafts:
        return report, []

    balances = funds_balances(account_ids=[d.account.pk for d in plan.drafts], at=now)
    applied = [funds_allocate(amounts=[line.amount for line in d.calculation.lines], available=balances[d.account.pk])
               for d in plan.drafts]
    written = bills_write(drafts=plan.drafts, funds_applied=applied, now=now)
    ledger_settlement_record(written=written, now=now)
    audit_record_bulk(at=now, events=[{
        "action": "bill.settled", "account_id": bill.account_id, "obj": bill,
        "summary": f"{bill.account.code} {bill.period}: {bill.total_amount} {bill.currency}, "
                   f"funds applied {bill.funds_applied}, {len(lines)} lines",
        "data": {"period": bill.period, "total_amount": str(bill.total_amount),
                 "funds_applied": str(bill.funds_applied), "currency": bill.currency, "lines": len(lines)},
    } for bill, lines in written])
    report.settled += [(bill.account.code, bill.period) for bill, _ in written]
    more = set(plan.more)
    return report, [bill.account_id for bill, _ in written if bill.account_id in more]


def _settle_batch(*, account_ids: list[int], now: dt.datetime,
                  period: Period | None) -> tuple[SettlementReport, list[int]]:
    with transaction.atomic():
        accounts = list(Account.objects.select_for_update().filter(pk__in=account_ids).order_by("pk"))
        return _settle_locked(accounts=accounts, now=now, period=period)


def _settle_isolated(*, account_id: int, now: dt.datetime,
                     period: Period | None) -> tuple[SettlementReport, list[int]]:
    """One account in its own transaction; a failure becomes an error in the
    report (the transaction rolled back: nothing of it was written)."""
    try:
        try:
            return _settle_batch(account_ids=[account_id], now=now, period=period)
        except IntegrityError:
            # A concurrent settlement won the unique constraint; this run sees its bill.
            return _settle_batch(account_ids=[account_id], now=now, period=period)
    except Exception as exc:  # noqa: BLE001 — reported, and the other accounts go on
        code = Account.objects.filter(pk=account_id).values_list("code", flat=True).first()
        log.exception("settlement failed account=%s period=%s", code, period or "due")
        report = SettlementReport(errors=[f"{code} {period or 'due periods'}: {type(exc).__name__}: {exc}"])
        return report, []


def accounts_settle(*, account_ids: list[int], now: dt.datetime, period: Period | None = None) -> SettlementReport:
    """Settle a batch of accounts for ``period``, or (no period) for every
    period due at ``now``, oldest first (catch-up). Per-account problems are
    in the report, never raised; a period before its bill time raises
    PeriodNotDue."""
    if period is not None and not period.is_billable(now):
        raise PeriodNotDue(f"{period} cannot be settled before its bill time, {period.bill_time_label()}")
    report = SettlementReport()
    pending = sorted(set(account_ids))
    while pending:
        if len(pending) == 1:
            batch_report, billed_ids = _settle_isolated(account_id=pending[0], now=now, period=period)
        else:
            try:
                batch_report, billed_ids = _settle_batch(account_ids=pending, now=now, period=period)
            except Exception as exc:  # noqa: BLE001 — rolled back; retried one account at a time
                log.warning("batch of %d accounts rolled back (%s: %s); settling them one by one",
                            len(pending), type(exc).__name__, exc)
                for pk in pending:
                    report.merge(accounts_settle(account_ids=[pk], now=now, period=period))
                return report
        report.merge(batch_report)
        # Catch-up: an account billed for one period may have a later one due.
        pending = billed_ids if period is None else []
    return report


def bill_settle(*, account: Account, period: Period, now: dt.datetime) -> tuple[Bill | None, bool]:
    """``accounts_settle`` for one account and period, as a bill: (bill,
    created); a period without anything to bill gets no bill: (None, False).
    Raises PeriodNotDue before the bill time, SettlementError when the
    account cannot be settled (nothing is written)."""
    report = accounts_settle(account_ids=[account.pk], now=now, period=period)
    if report.errors:
        raise SettlementError(report.errors[0])
    bill = Bill.objects.filter(account=account, period=str(period)).first()
    if bill is not None:
        log.info("settled account=%s period=%s bill=%s total=%s", account.code, period, bill.pk, bill.total_amount)
    return bill, bool(report.settled)


def accounts_due(*, now: dt.datetime) -> list[int]:
    """Ids of the accounts that settlement without a period would bill at
    ``now`` (ordered): an ended, due period with usage and no bill, or late
    usage waiting for the latest due period's bill."""
    latest = latest_due_period(now)
    usage: dict[int, set[Period]] = defaultdict(set)
    for account_id, month in (
        DailyUsage.objects.filter(day__lt=latest.end_day, quantity__gt=F("billed_quantity"))
        .annotate(month=TruncMonth("day")).order_by().values_list("account_id", "month").distinct()
    ):
        usage[account_id].add(Period.of_day(month))
    if not usage:
        return []
    names = {str(p) for ps in usage.values() for p in ps} | {str(latest)}
    billed: dict[int, set[str]] = defaultdict(set)
    for account_id, name in Bill.objects.filter(period__in=names).values_list("account_id", "period"):
        billed[account_id].add(name)
    due = []
    for account_id in sorted(usage):
        if plan_decision(usage_periods=usage[account_id], billed=billed[account_id], latest=latest).action == "settle":
            due.append(account_id)
    return due
