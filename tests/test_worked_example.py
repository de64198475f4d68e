"""billing-rules §8, number for number."""
from decimal import Decimal

import pytest

from aurora_billing.settlement import bill_settle
from core.periods import Period
from invoices.models import PackDeduction
from payments.models import LedgerEntry
from payments.selectors import funds_balances
from tests.support import utc

pytestmark = pytest.mark.django_db




def test_worked_example_number_for_number(worked_example):
    bill, created = bill_settle(account=worked_example, period=Period(2026, 10), now=utc(2026, 11, 1, 7))
    assert created
    email, data_flow = bill.lines.order_by("position")
    assert (email.service_id, email.usage_quantity, email.deducted_quantity, email.billable_quantity) == (
        "email", Decimal("78000"), Decimal("60000"), Decimal("18000"))
    assert (email.amount, email.paid, email.balance, email.status) == (
        Decimal("5.40"), Decimal("5.00"), Decimal("0.40"), "Overdrawn")
    assert (data_flow.deducted_quantity, data_flow.billable_quantity) == (Decimal("15.6"), Decimal("4.4"))
    assert (data_flow.amount, data_flow.paid, data_flow.balance, data_flow.status) == (
        Decimal("1.32"), Decimal("0.00"), Decimal("1.32"), "Overdrawn")
    assert email.balance + data_flow.balance == Decimal("1.72")
    deductions = PackDeduction.objects.order_by("day", "pack__reference")
    by_day = [(d.pack.reference, d.day.isoformat(), d.quantity) for d in deductions]
    assert by_day == [("A", "2026-10-05", 8000), ("A", "2026-10-12", 2000), ("B", "2026-10-12", 28000),
                      ("B", "2026-10-20", 22000)]
    assert funds_balances(account_ids=[worked_example.pk])[worked_example.pk] == Decimal("0.00")
    assert LedgerEntry.objects.filter(kind="settlement").count() == 1


def test_settling_twice_changes_nothing(worked_example):
    now = utc(2026, 11, 1, 7)
    bill, _ = bill_settle(account=worked_example, period=Period(2026, 10), now=now)
    again, created = bill_settle(account=worked_example, period=Period(2026, 10), now=now)
    assert not created and again.pk == bill.pk
    assert PackDeduction.objects.count() == 4
