"""CSV export: exact bytes for the worked example (billing-rules §8), Pending
estimates, ranges, formula neutralisation, access and bad input."""
from __future__ import annotations

import io
from decimal import Decimal

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.urls import reverse

from accounts.models import Membership, User
from aurora_billing.settlement import bill_settle
from core.periods import Period
from invoices.export import CSV_COLUMNS, csv_text, line_row
from tests.support import PASSWORD, add_price, add_usage, utc

pytestmark = pytest.mark.django_db

HEADER = ("period,service_item,region,usage_quantity,deducted_quantity,billable_quantity,unit_price,currency,"
          "amount,paid,balance,status,delivered,soft_bounce,format_error,not_exist,reject,junk_mail,"
          "adjustment_for\n")
WORKED_EXAMPLE_LINES = (
    "2026-10,email,sg,78000,60000,18000,0.000300,USD,5.40,5.00,0.40,Overdrawn,78000,0,0,0,0,0,\n"
    "2026-10,data_flow,sg,20,15.6,4.4,0.300000,USD,1.32,0.00,1.32,Overdrawn,,,,,,,\n"
)
SETTLED_AT = utc(2026, 11, 1, 7)  # 2026-11-01 15:00 UTC+8
IN_NOVEMBER = utc(2026, 11, 20, 4)


@pytest.fixture
def worked_example(worked_example):
    """The shared §8 example, settled at its bill time."""
    bill_settle(account=worked_example, period=Period(2026, 10), now=SETTLED_AT)
    return worked_example



@pytest.fixture
def owner_client(client, worked_example):
    client.force_login(User.objects.get(email="owner@acme.example"))
    return client


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_header_is_the_contract():
    assert ",".join(CSV_COLUMNS) + "\n" == HEADER


def test_worked_example_exact_bytes(owner_client):
    with time_machine.travel(IN_NOVEMBER, tick=False):
        response = owner_client.get(reverse("billing:export_csv"), {"period": "2026-10"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="aurora-billing-acme-2026-10.csv"'
    assert body(response) == (HEADER + WORKED_EXAMPLE_LINES).encode()


def test_unsettled_period_shows_pending_estimate(owner_client, worked_example):
    add_usage(worked_example, "sg", "email", "2026-11-02", 1_500, result="delivered")
    add_usage(worked_example, "sg", "email", "2026-11-03", 25, result="junk_mail")
    add_usage(worked_example, "sg", "data_flow", "2026-11-03", "0.5")
    add_usage(worked_example, "sg", "dedicated_ip", "2026-11-01", 2)
    add_price("dedicated_ip", "sg", "25.00")
    with time_machine.travel(IN_NOVEMBER, tick=False):
        response = owner_client.get(reverse("billing:export_csv"), {"period": "2026-11"})
    assert response.status_code == 200
    # Pack B still holds 0 after October: November's emails are billable.
    assert body(response).decode() == HEADER + (
        "2026-11,email,sg,1525,0,1525,0.000300,USD,0.46,0.00,0.46,Pending,1500,0,0,0,0,25,\n"
        "2026-11,data_flow,sg,0.5,0.305,0.195,0.300000,USD,0.06,0.00,0.06,Pending,,,,,,,\n"
        "2026-11,dedicated_ip,sg,2,0,2,25.000000,USD,50.00,0.00,50.00,Pending,,,,,,,\n"
    )


def test_range_settled_then_pending_and_default_is_current_period(owner_client, worked_example):
    add_usage(worked_example, "sg", "email", "2026-11-02", 100)
    with time_machine.travel(IN_NOVEMBER, tick=False):
        ranged = body(owner_client.get(reverse("billing:export_csv"), {"from": "2026-09", "to": "2026-11"}))
        default = body(owner_client.get(reverse("billing:export_csv")))
    november = "2026-11,email,sg,100,0,100,0.000300,USD,0.03,0.00,0.03,Pending,100,0,0,0,0,0,\n"
    assert ranged.decode() == HEADER + WORKED_EXAMPLE_LINES + november
    assert default.decode() == HEADER + november


def test_late_usage_shows_once_as_an_adjustment_of_the_next_settlement(client, make_account):
    add_price("email", "sg", "0.000300")
    globex = make_account(code="globex", name="Globex", users=(("cfo@globex.example", "accountant"),))
    add_usage(globex, "sg", "email", "2026-08-10", 100)
    bill_settle(account=globex, period=Period(2026, 8), now=utc(2026, 9, 1, 7))
    add_usage(globex, "sg", "email", "2026-10-05", 200)  # September had no usage: no bill
    bill_settle(account=globex, period=Period(2026, 10), now=SETTLED_AT)
    add_usage(globex, "sg", "email", "2026-08-20", 7)  # late usage of August
    client.force_login(User.objects.get(email="cfo@globex.example"))
    with time_machine.travel(IN_NOVEMBER, tick=False):
        text = body(client.get(reverse("billing:export_csv"), {"from": "2026-08", "to": "2026-11"})).decode()
    assert text == HEADER + (
        "2026-08,email,sg,100,0,100,0.000300,USD,0.03,0.00,0.03,Overdrawn,100,0,0,0,0,0,\n"
        "2026-10,email,sg,200,0,200,0.000300,USD,0.06,0.00,0.06,Overdrawn,200,0,0,0,0,0,\n"
        "2026-11,email,sg,7,0,7,0.000300,USD,0.00,0.00,0.00,Pending,7,0,0,0,0,0,2026-08\n"
    )


def test_repayment_changes_paid_balance_and_status(owner_client, worked_example):
    from invoices.models import BillLine

    BillLine.objects.filter(service_id="data_flow").update(paid=Decimal("1.32"), balance=0, status="Paid")
    with time_machine.travel(IN_NOVEMBER, tick=False):
        text = body(owner_client.get(reverse("billing:export_csv"), {"period": "2026-10"})).decode()
    assert text.splitlines()[2] == "2026-10,data_flow,sg,20,15.6,4.4,0.300000,USD,1.32,1.32,0.00,Paid,,,,,,,"


def test_only_the_current_accounts_lines(client, worked_example, make_account):
    other = make_account(code="globex", name="Globex", users=(("cfo@globex.example", "accountant"),))
    add_usage(other, "sg", "email", "2026-10-03", 999)
    bill_settle(account=other, period=Period(2026, 10), now=SETTLED_AT)
    client.force_login(User.objects.get(email="cfo@globex.example"))
    with time_machine.travel(IN_NOVEMBER, tick=False):
        text = body(client.get(reverse("billing:export_csv"), {"period": "2026-10"})).decode()
    assert text == HEADER + "2026-10,email,sg,999,0,999,0.000300,USD,0.30,0.00,0.30,Overdrawn,999,0,0,0,0,0,\n"


@pytest.mark.parametrize("query, message", [
    ({"period": "2026-13"}, "month must be 01 to 12"),
    ({"period": "oct"}, "is not a period"),
    ({"period": "0202-10"}, "year must be"),
    ({"period": "2026-12"}, "2026-12 has not started yet"),
    ({"from": "2026-10", "to": "2026-09"}, "ends (2026-09) before it starts (2026-10)"),
    ({"from": "2026-10"}, "give both from and to"),
    ({"period": "2026-10", "from": "2026-09", "to": "2026-10"}, "either period, or from and to"),
    ({"from": "2010-01", "to": "2026-11"}, "at most 120 periods"),
])
def test_bad_periods_answer_400_with_a_reason(owner_client, query, message):
    with time_machine.travel(IN_NOVEMBER, tick=False):
        response = owner_client.get(reverse("billing:export_csv"), query)
    assert response.status_code == 400
    assert message in response.content.decode()


def test_viewer_may_not_export_and_anonymous_signs_in(client, worked_example):
    viewer = User.objects.create_user("viewer@acme.example", PASSWORD)
    Membership.objects.create(user=viewer, account=worked_example, role="viewer")
    url = reverse("billing:export_csv")
    assert client.get(url, {"period": "2026-10"}).status_code == 302
    client.force_login(viewer)
    assert client.get(url, {"period": "2026-10"}).status_code == 403


def test_formula_cells_are_neutralised():
    assert [csv_text(v) for v in ("=1+1", "+cmd", "-2", "@SUM(A1)", "\tx", "\rx", "sg", "")] == [
        "'=1+1", "'+cmd", "'-2", "'@SUM(A1)", "'\tx", "'\rx", "sg", ""]


def test_formula_region_code_through_the_export(owner_client, worked_example):
    add_price("email", "=HYPERLINK(evil)", "0.000300")
    add_usage(worked_example, "=HYPERLINK(evil)", "email", "2026-11-02", 10)
    with time_machine.travel(IN_NOVEMBER, tick=False):
        text = body(owner_client.get(reverse("billing:export_csv"), {"period": "2026-11"})).decode()
    assert text.splitlines()[1].startswith("2026-11,email,'=HYPERLINK(evil),10,0,10,")


def test_numbers_are_plain_decimals():
    row = line_row("2026-10", "data_flow", "sg", Decimal("1234567.500000"), Decimal("0E-6"), Decimal("1234567.5"),
                   Decimal("0.30"), "USD", Decimal("370370.25"), Decimal("0"), Decimal("370370.25"), "Overdrawn",
                   None, None, None, None, None, None, "2026-09")
    assert row == ["2026-10", "data_flow", "sg", "1234567.5", "0", "1234567.5", "0.300000", "USD", "370370.25",
                   "0.00", "370370.25", "Overdrawn", "", "", "", "", "", "", "2026-09"]


# --- staff export -------------------------------------------------------------

STAFF_HEADER = "account," + HEADER


def staff_export(*args) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("export_billing", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_staff_export_every_account_account_first(worked_example, make_account):
    other = make_account(code="globex", name="Globex", users=())
    add_usage(other, "sg", "email", "2026-10-03", 999)
    bill_settle(account=other, period=Period(2026, 10), now=SETTLED_AT)
    with time_machine.travel(IN_NOVEMBER, tick=False):
        out, err = staff_export("--period", "2026-10")
    assert out == STAFF_HEADER + "".join("acme," + line for line in WORKED_EXAMPLE_LINES.splitlines(True)) + (
        "globex,2026-10,email,sg,999,0,999,0.000300,USD,0.30,0.00,0.30,Overdrawn,999,0,0,0,0,0,\n")
    assert err.strip() == "Exported 3 lines of 2 accounts for 2026-10"


def test_staff_export_to_file_and_range(worked_example, tmp_path):
    target = tmp_path / "all.csv"
    with time_machine.travel(IN_NOVEMBER, tick=False):
        out, err = staff_export("--period", "2026-09", "--to", "2026-11", "--output", str(target))
    assert target.read_bytes() == (STAFF_HEADER + "".join(
        "acme," + line for line in WORKED_EXAMPLE_LINES.splitlines(True))).encode()
    assert "Exported 2 lines of 1 accounts for 2026-09 to 2026-11 to" in out
    assert "2026-11 not settled yet" in out
    assert [p.name for p in tmp_path.iterdir()] == ["all.csv"]  # no temporary file left


@pytest.mark.parametrize("args, message", [
    (["--period", "2026-13"], "month must be 01 to 12"),
    (["--period", "2026-10", "--to", "2026-09"], "before it starts"),
    (["--period", "2027-01"], "has not started yet"),
    (["--period", "2026-10", "--output", "/nonexistent/dir/x.csv"], "does not exist"),
])
def test_staff_export_bad_input(worked_example, args, message):
    with time_machine.travel(IN_NOVEMBER, tick=False), pytest.raises(CommandError, match=message):
        staff_export(*args)


def test_staff_export_from_admin(client, worked_example):
    staff = User.objects.create_superuser("admin@aurora.example", PASSWORD)
    client.force_login(staff)
    url = reverse("admin:invoices_bill_export")
    with time_machine.travel(IN_NOVEMBER, tick=False):
        changelist = client.get(reverse("admin:invoices_bill_changelist"))
        response = client.get(url, {"period": "2026-10", "to": ""})
        bad = client.get(url, {"period": "2026-99"})
    assert url.encode() in changelist.content
    assert response.status_code == 200
    assert body(response).decode() == STAFF_HEADER + "".join(
        "acme," + line for line in WORKED_EXAMPLE_LINES.splitlines(True))
    assert bad.status_code == 302


def test_admin_export_needs_staff(owner_client):
    response = owner_client.get(reverse("admin:invoices_bill_export"), {"period": "2026-10"})
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


@pytest.mark.parametrize("period", ["2026-05", "2026-12", "2026-13", "abc"])
def test_a_period_gets_the_same_answer_on_the_page_and_in_the_export(owner_client, worked_example, period):
    """interfaces.md: one rule for every page and export (a period before
    the first usage is 400 on both, with the same words)."""
    with time_machine.travel(IN_NOVEMBER, tick=False):
        page = owner_client.get("/billing/", {"period": period})
        export = owner_client.get(reverse("billing:export_csv"), {"period": period})
    assert page.status_code == export.status_code == 400
    message = page.content.decode().split(f"You asked for period <code>{period}</code>: ")[1].split("</p>")[0]
    assert message and f"You asked for period <code>{period}</code>: {message}</p>" in export.content.decode()
