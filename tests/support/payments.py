"""Shared set-up for the payment tests.

``overdrawn(acme)`` settles billing-rules §8's worked example: account acme
has two Overdrawn lines of 2026-10, email/sg 0.40 and data_flow/sg 1.32,
total due 1.72 USD. ``later_overdraft(acme)`` settles 2026-11 with one more
Overdrawn line (data_masking/sg 3.00).
"""
from __future__ import annotations

import re
from decimal import Decimal

from aurora_billing.settlement import bill_settle
from core.periods import Period
from invoices.models import BillLine
from payments.models import LedgerEntry

from .data import add_price, add_usage, worked_example_prices, worked_example_seed
from .services import utc

OCT_SETTLED = utc(2026, 11, 1, 7)
NOV_SETTLED = utc(2026, 12, 1, 7)


def overdrawn(account):
    worked_example_prices()
    add_price("data_masking", "sg", "0.002000")
    worked_example_seed(account)
    bill, _ = bill_settle(account=account, period=Period(2026, 10), now=OCT_SETTLED)
    return bill


def later_overdraft(account, now=NOV_SETTLED):
    add_usage(account, "sg", "data_masking", "2026-11-03", 1500)
    bill, _ = bill_settle(account=account, period=Period(2026, 11), now=now)
    return bill


def line_states(account) -> list[tuple[str, str, str, Decimal, Decimal, str]]:
    return [
        (ln.bill.period, ln.service_id, ln.region_id, ln.paid, ln.balance, ln.status)
        for ln in BillLine.objects.filter(bill__account=account).select_related("bill").order_by("bill__period",
                                                                                                  "position")
    ]


def ledger(account) -> list[tuple[str, Decimal]]:
    return list(LedgerEntry.objects.filter(account=account).order_by("id").values_list("kind", "amount"))


def breakdown_token(html: str) -> str:
    match = re.search(r'name="breakdown" value="([^"]+)"', html)
    assert match, "the repay page carries no breakdown"
    return match.group(1)
