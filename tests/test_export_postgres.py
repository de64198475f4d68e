"""On PostgreSQL the staff export is one COPY whose SQL formats the cells;
it must give the very bytes of the Python formatter (the console's)."""
from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.models import Account
from core.periods import Period
from invoices.export import STAFF_CSV_COLUMNS, csv_chunks, staff_export_csv, staff_export_rows
from invoices.models import Bill, BillLine
from usage.models import Region

pytestmark = pytest.mark.postgres

D = Decimal


def line(bill, position, service, region, usage, deducted, price, amount, paid, results=None, adjustment_for=""):
    region_obj = Region.objects.get_or_create(code=region, defaults={"name": region})[0]
    balance = amount - paid
    return BillLine.objects.create(
        bill=bill, position=position, service_id=service, region=region_obj, adjustment_for=adjustment_for,
        usage_quantity=usage, deducted_quantity=deducted, billable_quantity=usage - deducted, unit_price=price,
        currency=bill.currency, amount=amount, paid=paid, balance=balance,
        status="Paid" if balance == 0 else "Overdrawn", **(results or {}))


@pytest.fixture
def awkward_lines(postgres):
    """Values that stress formatting: zeros, 6-decimal quantities, big numbers,
    adjustment lines, codes that start like a formula."""
    acme = Account.objects.create(code="acme", name="Acme")
    minus = Account.objects.create(code="-minus", name="Minus")  # not a valid slug, but storable
    for account, period in ((acme, "2026-09"), (acme, "2026-10"), (minus, "2026-10"), (acme, "2026-11")):
        bill = Bill.objects.create(account=account, period=period, currency="USD")
        results = dict(delivered=77000, soft_bounce=600, format_error=0, not_exist=400, reject=0, junk_mail=0)
        line(bill, 0, "email", "sg", D("78000"), D("60000"), D("0.000300"), D("5.40"), D("5.00"), results)
        line(bill, 1, "data_flow", "sg", D("20"), D("15.6"), D("0.30"), D("1.32"), D("0"))
        line(bill, 2, "data_flow", "=cmd", D("0.000001"), D("0"), D("0.000001"), D("0.00"), D("0"))
        line(bill, 3, "dedicated_ip", "@hk", D("2"), D("0"), D("25"), D("50.00"), D("50.00"))
        line(bill, 4, "data_masking", "us-east", D("123456789012.5"), D("0.000001"), D("0.001500"),
             D("185185183.52"), D("0.01"))
        line(bill, 5, "email", "sg", D("10"), D("0"), D("0.000300"), D("0.00"), D("0"),
             dict(delivered=10, soft_bounce=0, format_error=0, not_exist=0, reject=0, junk_mail=0), "2026-08")


def python_bytes(first: Period, last: Period) -> bytes:
    return "".join(csv_chunks(STAFF_CSV_COLUMNS, staff_export_rows(first=first, last=last))).encode()


def test_copy_gives_the_python_formatters_bytes(awkward_lines):
    first, last = Period(2026, 9), Period(2026, 10)
    copied = b"".join(staff_export_csv(first=first, last=last))
    assert copied == python_bytes(first, last)
    rows = copied.decode().splitlines()
    assert len(rows) == 1 + 3 * 6
    for expected in (
        "'-minus,2026-10,email,sg,78000,60000,18000,0.000300,USD,5.40,5.00,0.40,Overdrawn,77000,600,0,400,0,0,",
        "'-minus,2026-10,data_flow,sg,20,15.6,4.4,0.300000,USD,1.32,0.00,1.32,Overdrawn,,,,,,,",
        "'-minus,2026-10,data_flow,'=cmd,0.000001,0,0.000001,0.000001,USD,0.00,0.00,0.00,Paid,,,,,,,",
        "'-minus,2026-10,dedicated_ip,'@hk,2,0,2,25.000000,USD,50.00,50.00,0.00,Paid,,,,,,,",
        "'-minus,2026-10,data_masking,us-east,123456789012.5,0.000001,123456789012.499999,0.001500,USD,"
        "185185183.52,0.01,185185183.51,Overdrawn,,,,,,,",
        "'-minus,2026-10,email,sg,10,0,10,0.000300,USD,0.00,0.00,0.00,Paid,10,0,0,0,0,0,2026-08",
    ):
        assert expected in rows, expected
    acme = [r for r in rows if r.startswith("acme,")]
    assert [r.split(",")[1] for r in acme] == ["2026-09"] * 6 + ["2026-10"] * 6
    assert [r.split(",")[2] for r in acme[:6]] == ["email", "data_flow", "data_flow", "dedicated_ip",
                                                  "data_masking", "email"]


def test_an_abandoned_download_leaves_the_connection_usable(awkward_lines, postgres):
    chunks = staff_export_csv(first=Period(2026, 9), last=Period(2026, 11))
    next(chunks)
    next(chunks)
    chunks.close()  # the client went away mid-stream
    assert Bill.objects.count() == 4
    assert len(b"".join(staff_export_csv(first=Period(2026, 11), last=Period(2026, 11))).splitlines()) == 7
