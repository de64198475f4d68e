"""Writes for bills: turning unbilled usage into bills, a batch of accounts at a time.

Settlement of a batch is two steps inside one transaction that holds the
row locks of the batch's accounts (``aurora_billing.settlement`` takes them
and applies the funds between the two steps):

1. ``bills_prepare`` reads the batch's unbilled usage (locking the rows),
   bills, packs, prices and billing information with one query each, decides
   per account what to settle (``settlement_decision``) and computes the
   lines (``lines_compute``). Nothing is written.
2. ``bills_write`` writes the bills, their lines (with the funds applied),
   the pack deductions, and marks the usage rows read as billed, with a few
   bulk statements for the whole batch.

The unique constraint on (account, period) is the last guard against a
second bill.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple

from django.db import connection, transaction
from django.db.models import F

from accounts.models import Account, BillingInfo
from core.bulk import rows_insert
from core.periods import Period
from usage.models import EMAIL_RESULTS, DailyUsage

from .calculation import Calculation, lines_compute, plan_step, usage_periods
from .models import Bill, BillLine, LineStatus, PackDeduction
from .selectors import (
    billed_periods_by_account,
    latest_due_period,
    packs_state_by_account,
    price_lookup,
    prior_data_flow_by_account,
    usage_unbilled_by_account,
)

# Usage row ids per UPDATE statement (SQLite allows 32,766 parameters).
_UPDATE_CHUNK = 5000
_NO_RESULTS: dict[str, None] = dict.fromkeys(EMAIL_RESULTS)  # result columns of non-email lines


class SettlementError(Exception):
    """The account cannot be settled for the period; nothing was written."""


@dataclass
class BillDraft:
    """A bill computed and not written yet: its lines, and the usage rows
    (ids) it covers, which are marked billed when it is written."""

    account: Account
    period: Period
    calculation: Calculation
    usage_ids: list[int]


@dataclass
class SettlementPlan:
    drafts: list[BillDraft] = field(default_factory=list)
    already: list[tuple[Account, Period]] = field(default_factory=list)
    empty: list[tuple[Account, Period]] = field(default_factory=list)
    errors: list[tuple[Account, Period, str]] = field(default_factory=list)
    # accounts with unbilled usage after the drafted period (catch-up continues with them)
    more: list[int] = field(default_factory=list)


def bills_prepare(*, accounts: list[Account], now: dt.datetime, period: Period | None = None) -> SettlementPlan:
    """Decide and compute the bills of ``accounts``: for ``period``, or (no
    period) for each account's oldest due period (catch-up; see
    ``catch_up_period``). Must run inside the transaction holding the
    accounts' row locks; reads only."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("bills_prepare must run inside a transaction")
    limit = period or latest_due_period(now)
    ids = [a.pk for a in accounts]
    usage = usage_unbilled_by_account(account_ids=ids, before=limit.end_day, for_update=True)
    billed = billed_periods_by_account(account_ids=ids)
    plan = SettlementPlan()
    targets: list[tuple[Account, Period, list]] = []
    for account in accounts:
        step = plan_step(rows=usage.get(account.pk, []), billed=billed[account.pk], latest=limit, period=period)
        action, target = step.decision.action, step.decision.period
        if action == "already":
            plan.already.append((account, target))
        elif action == "empty":
            plan.empty.append((account, target))
        elif action == "blocked":
            plan.errors.append((account, target, step.decision.reason))
        else:
            targets.append((account, target, step.covered))
            if step.rest:
                plan.more.append(account.pk)
    if not targets:
        return plan

    target_ids = [a.pk for a, _, _ in targets]
    packs = packs_state_by_account(account_ids=target_ids)
    late = {a.pk: usage_periods(rows) & {Period.parse(p) for p in billed[a.pk]}
            for a, _, rows in targets if billed[a.pk]}
    prior = prior_data_flow_by_account(periods=late)
    prices = {}
    for account, target, rows in targets:
        if account.currency not in prices:
            prices[account.currency] = price_lookup(currency=account.currency)
        calc = lines_compute(period=target, usage=rows, packs=packs.get(account.pk, []),
                             price_for=prices[account.currency], currency=account.currency,
                             prior_data_flow=prior.get(account.pk))
        if calc.errors:
            plan.errors.append((account, target, "; ".join(calc.errors)))
        else:
            plan.drafts.append(BillDraft(account=account, period=target, calculation=calc,
                                         usage_ids=[r.id for r in rows]))
    return plan


class WrittenLine(NamedTuple):
    """A bill line as written (what the ledger needs of it)."""

    id: int
    service_id: str
    region_id: str
    adjustment_for: str
    paid: Decimal


def bills_write(*, drafts: list[BillDraft], funds_applied: list[list[Decimal]],
                now: dt.datetime) -> list[tuple[Bill, list[WrittenLine]]]:
    """Write the drafted bills. ``funds_applied[i][j]`` is what funds pay of
    line j of draft i (``calculation.funds_allocate``): the line starts with
    that ``paid``. Records the pack deductions and marks the usage rows read
    as billed. Runs in the transaction of ``bills_prepare``."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("bills_write must run inside a transaction")
    if not drafts:
        return []
    infos = {info.account_id: info.snapshot()
             for info in BillingInfo.objects.filter(account_id__in=[d.account.pk for d in drafts])}
    bills = Bill.objects.bulk_create([
        Bill(account=d.account, period=str(d.period), currency=d.account.currency, settled_at=now,
             total_amount=d.calculation.total, funds_applied=sum(paid, Decimal("0.00")),
             billing_info_snapshot=infos.get(d.account.pk, {}))
        for d, paid in zip(drafts, funds_applied, strict=True)
    ])
    if any(b.pk is None for b in bills):  # a backend without RETURNING
        by_key = {(b.account_id, b.period): b.pk for b in
                  Bill.objects.filter(account_id__in=[d.account.pk for d in drafts], settled_at=now)}
        for bill in bills:
            bill.pk = by_key[(bill.account_id, bill.period)]

    rows = []
    for bill, draft, paid in zip(bills, drafts, funds_applied, strict=True):
        for line, line_paid in zip(draft.calculation.lines, paid, strict=True):
            balance = line.amount - line_paid
            rows.append({
                "bill_id": bill.pk, "service_id": line.service, "region_id": line.region,
                "adjustment_for": line.adjustment_for, "position": line.position,
                "usage_quantity": line.usage_quantity, "deducted_quantity": line.deducted_quantity,
                "billable_quantity": line.billable_quantity, "unit_price": line.unit_price,
                "currency": line.currency, "amount": line.amount, "paid": line_paid, "balance": balance,
                "status": LineStatus.OVERDRAWN.value if balance > 0 else LineStatus.PAID.value,
                **(line.results or _NO_RESULTS),
            })
    line_ids = iter(rows_insert(BillLine, rows, ids=True))
    out: list[tuple[Bill, list[WrittenLine]]] = []
    deductions = []
    for bill, draft, paid in zip(bills, drafts, funds_applied, strict=True):
        written = []
        for line, line_paid in zip(draft.calculation.lines, paid, strict=True):
            line_id = next(line_ids)
            written.append(WrittenLine(line_id, line.service, line.region, line.adjustment_for, line_paid))
            deductions += [{"pack_id": pack_id, "line_id": line_id, "day": day, "quantity": quantity}
                           for pack_id, day, quantity in line.deductions]
        out.append((bill, written))
    rows_insert(PackDeduction, deductions)
    usage_billed_mark(usage_ids=[pk for d in drafts for pk in d.usage_ids])
    return out


def usage_billed_mark(*, usage_ids: list[int]) -> None:
    """Mark usage rows as billed up to their quantity. The rows were read
    with ``select_for_update`` in this transaction, so ``quantity`` is still
    what was read and billed; quantity added by a later import stays
    unbilled (late usage)."""
    if not connection.in_atomic_block:
        raise RuntimeError("usage_billed_mark must run in the transaction that read the rows")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # one array parameter instead of thousands of IN parameters
            cursor.execute("UPDATE usage_dailyusage SET billed_quantity = quantity WHERE id = ANY(%s)",
                           [usage_ids])
        return
    for start in range(0, len(usage_ids), _UPDATE_CHUNK):
        DailyUsage.objects.filter(id__in=usage_ids[start:start + _UPDATE_CHUNK]).update(
            billed_quantity=F("quantity"))
