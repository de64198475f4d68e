"""Edge examples of the pure calculation that mutation testing showed no
example test pinned down (only a hypothesis run caught them)."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from core.periods import Period
from invoices.calculation import PackState, UsageRow, funds_allocate, lines_compute

OCT = Period(2026, 10)


def email_lines(day: dt.date, emails: int, pack: PackState):
    usage = [UsageRow(id=1, service="email", region="sg", result="delivered", day=day, quantity=Decimal(emails))]
    calc = lines_compute(period=OCT, usage=usage, packs=[pack], price_for=lambda s, r, p: Decimal("0.0010"),
                         currency="USD")
    assert not calc.errors
    return calc.lines


def a_pack() -> PackState:
    return PackState(id=7, reference="pack-7", region="sg", valid_from=dt.date(2026, 10, 1),
                     valid_until=dt.date(2026, 10, 16), remaining=1_000)


def test_usage_on_the_valid_until_day_does_not_draw_on_the_pack():
    """billing-rules §4: a pack covers valid_from <= day < valid_until."""
    pack = a_pack()
    [line] = email_lines(dt.date(2026, 10, 16), 100, pack)
    assert line.deducted_quantity == 0 and line.billable_quantity == 100
    assert line.amount == Decimal("0.10")
    assert pack.remaining == 1_000


def test_usage_on_the_day_before_valid_until_draws_on_the_pack():
    pack = a_pack()
    [line] = email_lines(dt.date(2026, 10, 15), 100, pack)
    assert line.deducted_quantity == 100 and line.billable_quantity == 0
    assert pack.remaining == 900


def test_usage_on_the_valid_from_day_draws_on_the_pack():
    pack = a_pack()
    [line] = email_lines(dt.date(2026, 10, 1), 100, pack)
    assert line.deducted_quantity == 100 and pack.remaining == 900


@pytest.mark.parametrize("available", [Decimal("-0.01"), Decimal("-500.00")])
def test_funds_allocate_never_allocates_from_a_negative_balance(available):
    """An overdrawn ledger has nothing to give: every line takes 0, none goes negative."""
    assert funds_allocate(amounts=[Decimal("10.00"), Decimal("0.50")], available=available) == [
        Decimal("0.00"), Decimal("0.00")]


def test_funds_allocate_in_order_until_the_funds_run_out():
    assert funds_allocate(amounts=[Decimal("10.00"), Decimal("5.00"), Decimal("1.00")],
                          available=Decimal("12.00")) == [Decimal("10.00"), Decimal("2.00"), Decimal("0.00")]
