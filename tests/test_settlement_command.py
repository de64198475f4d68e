"""``python manage.py settle [--period YYYY-MM] [--account CODE]`` (interfaces.md)."""
from decimal import Decimal
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command

from invoices.models import Bill
from tests.support import add_price, add_usage, utc

pytestmark = pytest.mark.django_db

AFTER_OCT = utc(2026, 11, 1, 7)  # 2026-11-01 15:00 UTC+8


def settle(*args, at=AFTER_OCT):
    out, err = StringIO(), StringIO()
    with time_machine.travel(at, tick=False):
        call_command("settle", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def three(make_account):
    add_price("email", "sg", "0.01")
    accounts = [make_account(code=code, users=()) for code in ("alpha", "beta", "gamma")]
    for account in accounts:
        add_usage(account, "sg", "email", "2026-09-10", 100)
        add_usage(account, "sg", "email", "2026-10-10", 200)
    return accounts


def test_without_period_settles_every_due_period(three):
    out, err = settle()
    assert out == "Settled every due period: 6 bills created, 0 already settled, 0 without usage, 0 errors\n"
    assert err == ""
    assert sorted(Bill.objects.values_list("account__code", "period", "total_amount")) == [
        ("alpha", "2026-09", Decimal("1.00")), ("alpha", "2026-10", Decimal("2.00")),
        ("beta", "2026-09", Decimal("1.00")), ("beta", "2026-10", Decimal("2.00")),
        ("gamma", "2026-09", Decimal("1.00")), ("gamma", "2026-10", Decimal("2.00")),
    ]
    out, _ = settle()
    assert out == "Settled every due period: 0 bills created, 0 already settled, 0 without usage, 0 errors\n"


def test_period_and_account(three):
    out, _ = settle("--period", "2026-09", "--account", "beta")
    assert out == "Settled 2026-09: 1 bills created, 0 already settled, 0 without usage, 0 errors\n"
    out, _ = settle("--period", "2026-09", "--batch-size", "1")
    assert out == "Settled 2026-09: 2 bills created, 1 already settled, 0 without usage, 0 errors\n"
    assert Bill.objects.count() == 3


def test_period_with_an_earlier_unsettled_period_is_reported(three):
    with pytest.raises(CommandError, match=r"^3 account\(s\) left unsettled; see above$"):
        settle("--period", "2026-10")
    assert not Bill.objects.exists()


def test_before_bill_time_is_refused_with_one_line():
    with pytest.raises(CommandError) as info:
        settle("--period", "2026-10", at=utc(2026, 11, 1, 6, 59))
    assert str(info.value) == "--period 2026-10 cannot be settled before its bill time, 2026-11-01 15:00 UTC+8"


@pytest.mark.parametrize(("args", "message"), [
    (("--period", "2026-13"), "--period: month must be 01 to 12, got 13"),
    (("--period", "Oct"), "--period: 'Oct' is not a period; expected YYYY-MM, e.g. 2026-10"),
    (("--account", "nobody"), "--account: no account with code 'nobody'"),
    (("--batch-size", "0"), "--batch-size must be at least 1"),
])
def test_bad_input(args, message, three):
    with pytest.raises(CommandError) as info:
        settle(*args)
    assert str(info.value) == message
    assert not Bill.objects.exists()


def test_account_without_price_is_reported_while_the_others_settle(three, make_account):
    nowhere = make_account(code="nowhere", users=())
    add_usage(nowhere, "mars", "email", "2026-10-10", 100)  # no price in region mars
    out = StringIO()
    err = StringIO()
    with time_machine.travel(AFTER_OCT, tick=False), pytest.raises(CommandError, match="1 account"):
        call_command("settle", stdout=out, stderr=err)
    assert out.getvalue() == (
        "Settled every due period: 6 bills created, 0 already settled, 0 without usage, 1 errors\n")
    assert err.getvalue() == (
        "not settled: nowhere 2026-10: no USD price for email in region mars in effect on 2026-10-01\n")
    assert not Bill.objects.filter(account=nowhere).exists()


def test_progress_on_a_terminal(three, monkeypatch, capsys):
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    settle("--batch-size", "1")
    assert "\rsettling: 3/3 accounts, 6 bills\n" in capsys.readouterr().err
