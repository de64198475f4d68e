"""Writes for bills: creating a period's bill from unbilled usage.

``bill_create`` must run inside a transaction that holds the account's row
lock (``aurora_billing.settlement.bill_settle`` takes it); the unique
constraint on (account, period) is the last guard against a second bill.
"""
from __future__ import annotations

import datetime as dt

from django.db import transaction

from accounts.models import Account, BillingInfo
from aurora_billing.periods import Period
from usage.models import DailyUsage

from .calculation import lines_compute
from .models import Bill, BillLine, LineStatus, PackDeduction
from .selectors import billed_periods, packs_state, price_lookup, prior_data_flow, usage_unbilled


class SettlementError(Exception):
    """The account cannot be settled for the period; nothing was written."""


def bill_create(*, account: Account, period: Period, now: dt.datetime) -> Bill:
    """Create the bill of ``period`` for ``account`` from its unbilled usage:
    the period's own usage on regular lines, late usage of earlier settled
    periods on adjustment lines. Pack deductions are recorded and the usage
    rows are marked billed. Lines start unpaid (funds are applied by the
    caller). Raises SettlementError and writes nothing if a price is missing
    or an earlier period with usage is not settled yet."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("bill_create must run inside a transaction")
    rows = usage_unbilled(account=account, before=period.end_day, for_update=True)
    billed = billed_periods(account=account)
    if str(period) in billed:
        raise SettlementError(f"{account.code} {period} is already settled")
    unsettled = sorted({Period.of_day(r.day) for r in rows if str(Period.of_day(r.day)) not in billed}
                       - {period})
    if unsettled:
        raise SettlementError(
            f"{account.code}: settle {unsettled[0]} first (it has usage and no bill)"
        )
    late = {Period.of_day(r.day) for r in rows} - {period}
    calc = lines_compute(
        period=period,
        usage=rows,
        packs=packs_state(account=account),
        price_for=price_lookup(currency=account.currency),
        currency=account.currency,
        prior_data_flow=prior_data_flow(account=account, periods=late),
    )
    if calc.errors:
        raise SettlementError(f"{account.code} {period}: " + "; ".join(calc.errors))

    info = BillingInfo.objects.filter(account=account).first()
    bill = Bill.objects.create(
        account=account, period=str(period), currency=account.currency, settled_at=now,
        total_amount=calc.total, billing_info_snapshot=info.snapshot() if info else {},
    )
    lines = BillLine.objects.bulk_create([
        BillLine(
            bill=bill, service_id=d.service, region_id=d.region, adjustment_for=d.adjustment_for,
            position=d.position, usage_quantity=d.usage_quantity, deducted_quantity=d.deducted_quantity,
            billable_quantity=d.billable_quantity, unit_price=d.unit_price, currency=d.currency,
            amount=d.amount, paid=0, balance=d.amount,
            status=LineStatus.OVERDRAWN if d.amount > 0 else LineStatus.PAID,
            **(d.results or {}),
        )
        for d in calc.lines
    ])
    if any(line.pk is None for line in lines):  # backends without RETURNING
        lines = list(bill.lines.order_by("position"))
    PackDeduction.objects.bulk_create([
        PackDeduction(pack_id=pack_id, line=line, day=day, quantity=quantity)
        for line, draft in zip(lines, calc.lines, strict=True)
        for pack_id, day, quantity in draft.deductions
    ])
    # Mark exactly what was read as billed; an import that adds to a row
    # afterwards leaves the difference unbilled (late usage).
    marked = [DailyUsage(id=r.id, billed_quantity=r.row_quantity) for r in rows]
    DailyUsage.objects.bulk_update(marked, ["billed_quantity"], batch_size=1000)
    return bill
