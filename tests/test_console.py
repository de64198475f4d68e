"""The billing console page (/billing/?period=YYYY-MM): settled, Pending and
empty periods, statuses, figures above the table, links per role, bad
periods, access, and a constant number of queries for 2 and 20 regions."""
from __future__ import annotations

import re
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.middleware import SESSION_KEY
from accounts.models import Membership, User
from aurora_billing.console.page import (
    EMPTY,
    PENDING,
    SETTLED,
    EmailResults,
    billing_console,
    unit_price_text,
)
from aurora_billing.settlement import bill_settle
from core.periods import Period
from invoices.selectors import console_periods
from payments.services import topup_record
from tests.support import PASSWORD, add_pack, add_price, add_usage, utc

pytestmark = pytest.mark.django_db

SETTLED_AT = utc(2026, 11, 1, 7)  # 2026-11-01 15:00 UTC+8: bill time of 2026-10
IN_NOVEMBER = utc(2026, 11, 20, 4)  # 2026-11-20 12:00 UTC+8
BEFORE_BILL_TIME = utc(2026, 11, 1, 2)  # 2026-11-01 10:00 UTC+8
OCTOBER, NOVEMBER = Period(2026, 10), Period(2026, 11)




@pytest.fixture
def settled(worked_example):
    bill_settle(account=worked_example, period=OCTOBER, now=SETTLED_AT)
    return worked_example


def login(client, email="owner@acme.example"):
    client.force_login(User.objects.get(email=email))
    return client


def get(client, path, now=IN_NOVEMBER):
    with time_machine.travel(now, tick=False):
        return client.get(path)


def text_of(response) -> str:
    """The page's visible text, whitespace collapsed (for exact phrases)."""
    html = response.content.decode()
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


# --- the selector --------------------------------------------------------------


def test_settled_period_numbers(settled):
    console = billing_console(account=settled, period=OCTOBER, now=IN_NOVEMBER)
    assert console.state == SETTLED and console.pending_reason == ""
    email, data_flow = console.rows
    assert (email.service, email.usage_quantity, email.amount, email.status) == (
        "email", Decimal("78000"), Decimal("5.40"), "Overdrawn")
    (line,) = email.lines
    assert (line.region, line.deducted_quantity, line.billable_quantity, line.paid, line.balance) == (
        "sg", Decimal("60000"), Decimal("18000"), Decimal("5.00"), Decimal("0.40"))
    assert line.results == EmailResults(delivered=78_000)
    assert (data_flow.usage_quantity, data_flow.deducted_quantity, data_flow.amount, data_flow.status) == (
        Decimal("20"), Decimal("15.6"), Decimal("1.32"), "Overdrawn")
    assert data_flow.results is None
    assert console.total == Decimal("6.72")
    assert (console.period_paid, console.period_balance) == (Decimal("5.00"), Decimal("1.72"))
    assert console.total_due == Decimal("1.72")
    assert console.funds == Decimal("0.00")
    # Pack A expired on 2026-10-16; B holds 50,000 − 28,000 − 22,000 = 0.
    assert [(r.region, [(p.reference, p.remaining) for p in r.packs]) for r in console.packs] == [
        ("sg", [("B", 0)])]
    assert console.periods == [NOVEMBER, OCTOBER]
    assert console.late_usage is False


def test_row_is_overdrawn_when_any_region_is_and_paid_when_none_is(acme):
    add_price("email", "sg", "0.001000")
    add_price("email", "hk", "0.001000")
    add_price("data_flow", "sg", "0.50")
    add_usage(acme, "hk", "email", "2026-10-03", 2_000)  # 2.00, paid first (hk < sg)
    add_usage(acme, "sg", "email", "2026-10-03", 3_000)  # 3.00, 1.00 paid
    add_usage(acme, "sg", "data_flow", "2026-10-03", "0")
    topup_record(account=acme, amount=Decimal("3.00"), reference="t1", at=utc(2026, 9, 1))
    bill_settle(account=acme, period=OCTOBER, now=SETTLED_AT)
    console = billing_console(account=acme, period=OCTOBER, now=IN_NOVEMBER)
    (email,) = console.rows  # the zero data-flow row is never billed: usage 0 makes no line
    assert [(line.region, line.status, line.balance) for line in email.lines] == [
        ("hk", "Paid", Decimal("0.00")), ("sg", "Overdrawn", Decimal("2.00"))]
    assert email.status == "Overdrawn"
    topup_record(account=acme, amount=Decimal("9.00"), reference="t2", at=utc(2026, 11, 2))
    add_usage(acme, "sg", "email", "2026-11-03", 1_000)
    # A fully funded bill: every line Paid, so the row is Paid.
    bill_settle(account=acme, period=NOVEMBER, now=utc(2026, 12, 2))
    (november,) = billing_console(account=acme, period=NOVEMBER, now=utc(2026, 12, 2)).rows
    assert (november.status, november.amount) == ("Paid", Decimal("1.00"))


def test_current_month_is_a_pending_estimate(worked_example):
    bill_settle(account=worked_example, period=OCTOBER, now=SETTLED_AT)
    add_usage(worked_example, "sg", "email", "2026-11-02", 1_000, result="delivered")
    add_usage(worked_example, "sg", "email", "2026-11-03", 500, result="junk_mail")
    add_usage(worked_example, "sg", "data_flow", "2026-11-03", "1.5")
    console = billing_console(account=worked_example, period=NOVEMBER, now=IN_NOVEMBER)
    assert (console.state, console.pending_reason, console.is_current) == (PENDING, "month_to_date", True)
    email, data_flow = console.rows
    # Pack B is empty after October, so all 1,500 emails are billable.
    assert (email.usage_quantity, email.deducted_quantity, email.amount, email.status) == (
        Decimal("1500"), Decimal("0"), Decimal("0.45"), "Pending")
    assert email.results == EmailResults(delivered=1_000, junk_mail=500)
    assert email.results.invalid == 500
    # 1.5 GB of traffic, 1,500 × 0.0002 = 0.3 GB free.
    assert (data_flow.billable_quantity, data_flow.amount) == (Decimal("1.2"), Decimal("0.36"))
    assert [line.paid for line in email.lines] == [None]
    assert console.total == Decimal("0.81")
    assert console.total_due == Decimal("1.72")  # October's overdraft, not the estimate
    assert console.charts.total.emails == 1_500
    assert console.usage_updated_at is not None


def test_previous_month_is_pending_until_bill_time(worked_example):
    before = billing_console(account=worked_example, period=OCTOBER, now=BEFORE_BILL_TIME)
    assert (before.state, before.pending_reason) == (PENDING, "before_bill_time")
    assert [(r.service, r.amount, r.status) for r in before.rows] == [
        ("email", Decimal("5.40"), "Pending"), ("data_flow", Decimal("1.32"), "Pending")]
    assert before.total_due == Decimal("0.00")
    bill_settle(account=worked_example, period=OCTOBER, now=SETTLED_AT)
    after = billing_console(account=worked_example, period=OCTOBER, now=SETTLED_AT)
    assert after.state == SETTLED
    assert [(r.service, r.amount, r.status) for r in after.rows] == [
        ("email", Decimal("5.40"), "Overdrawn"), ("data_flow", Decimal("1.32"), "Overdrawn")]


def test_ended_period_without_usage_or_bill_is_empty(acme):
    add_price("email", "sg", "0.000300")
    add_usage(acme, "sg", "email", "2026-08-10", 100)
    console = billing_console(account=acme, period=Period(2026, 9), now=IN_NOVEMBER)
    assert (console.state, console.rows, console.total) == (EMPTY, [], Decimal("0.00"))
    # August has usage but was never settled: Pending, "not issued yet".
    august = billing_console(account=acme, period=Period(2026, 8), now=IN_NOVEMBER)
    assert (august.state, august.pending_reason, august.total) == (PENDING, "not_settled", Decimal("0.03"))


def test_late_usage_shows_on_the_settled_month_and_the_next_estimate(settled):
    add_usage(settled, "sg", "email", "2026-10-25", 1_000)
    october = billing_console(account=settled, period=OCTOBER, now=IN_NOVEMBER)
    assert october.late_usage is True
    assert october.total == Decimal("6.72")  # the settled bill never changes
    november = billing_console(account=settled, period=NOVEMBER, now=IN_NOVEMBER)
    assert [(r.service, r.adjustment_for, r.amount, r.key) for r in november.rows] == [
        ("email", "2026-10", Decimal("0.30"), "email-adj-2026-10")]


def test_unpriced_usage_is_reported_not_billed_at_zero(acme):
    add_usage(acme, "jp", "email", "2026-11-02", 100)
    console = billing_console(account=acme, period=NOVEMBER, now=IN_NOVEMBER)
    assert console.rows == []
    assert console.estimate_errors == ["no USD price for email in region jp in effect on 2026-11-01"]


def test_periods_run_from_first_usage_or_bill_to_the_current_month(acme):
    assert console_periods(account=acme, now=IN_NOVEMBER) == [NOVEMBER]
    add_usage(acme, "sg", "email", "2026-08-31", 1)
    assert console_periods(account=acme, now=IN_NOVEMBER) == [NOVEMBER, OCTOBER, Period(2026, 9), Period(2026, 8)]


def test_packs_hide_expired_ones_and_flag_those_expiring_soon(acme):
    add_pack(acme, "sg", "old", 100, "2025-01-01", "2026-11-01")
    add_pack(acme, "sg", "soon", 100, "2026-01-01", "2026-12-10")
    add_pack(acme, "sg", "later", 250, "2026-01-01", "2028-01-01")
    add_pack(acme, "hk", "next-year", 300, "2027-01-01", "2029-01-01")
    console = billing_console(account=acme, period=NOVEMBER, now=IN_NOVEMBER)
    assert [(r.region, r.remaining, r.expiring_soon, [p.reference for p in r.packs]) for r in console.packs] == [
        ("hk", 300, False, ["next-year"]), ("sg", 350, True, ["soon", "later"])]
    assert console.packs[1].packs[0].last_day.isoformat() == "2026-12-09"


@pytest.mark.parametrize(("value", "text"), [
    ("0.000300", "0.0003"), ("28.000000", "28.00"), ("0.300000", "0.30"), ("1234.5", "1,234.50"),
])
def test_unit_price_text(value, text):
    assert unit_price_text(Decimal(value)) == text


# --- the page ------------------------------------------------------------------


def test_settled_page(client, settled):
    response = get(login(client), "/billing/?period=2026-10")
    assert response.status_code == 200
    page = text_of(response)
    html = response.content.decode()
    assert "Total, October 2026 6.72 USD" in page
    assert "Paid 5.00 · outstanding 1.72" in page
    assert "Total due 1.72 USD" in page
    assert "Funds balance 0.00 USD" in page
    assert "Email 78,000 emails 5.40 Overdrawn" in page
    assert "Data Flow 20 GB 1.32 Overdrawn" in page
    assert "SG sg 78,000 60,000 18,000 0.0003 5.40 5.00 0.40 Overdrawn" in page
    assert "SG sg 78,000 0 0 0 0 0 0" in page  # by delivery result
    assert 'href="/billing/export.csv?period=2026-10"' in html
    assert 'href="/billing/statements/2026-10.pdf"' in html
    assert 'href="/billing/repay/"' in html and "Repay overdrawn" in page
    assert html.count("<details>") == 2  # one per summary row
    assert '<option value="2026-10" selected>October 2026</option>' in html
    assert "<svg" in html and 'role="img"' in html
    assert "Emails per day, Oct 1–31: 78,000 emails in total; busiest day 2026-10-20 with 40,000 emails." in page


def test_pending_pages_say_when_the_bill_is_available(client, worked_example):
    login(client)
    previous = text_of(get(client, "/billing/?period=2026-10", now=BEFORE_BILL_TIME))
    assert "October 2026 has ended but is not billed yet. The bill is available on 1 November 2026 after 15:00 UTC+8." \
        in previous
    assert "Email 78,000 emails 5.40 Pending" in previous
    assert "statements/2026-10.pdf" not in previous
    current = get(client, "/billing/", now=BEFORE_BILL_TIME)
    assert current.status_code == 200
    page = text_of(current)
    assert "Month to date. November 2026 is in progress." in page
    assert "The bill for November 2026 is available on 1 December 2026 after 15:00 UTC+8." in page
    assert "No usage recorded for November 2026 yet." in page


def test_empty_period_page_says_so(client, acme):
    add_usage(acme, "sg", "email", "2026-08-10", 100)
    page = text_of(get(login(client), "/billing/?period=2026-09"))
    assert "No usage in September 2026 , so there is no bill for this month." in page


def test_repay_and_downloads_follow_the_role(client, settled, make_account):
    viewer = User.objects.create_user("viewer@acme.example", PASSWORD)
    Membership.objects.create(user=viewer, account=settled, role="viewer")
    accountant = User.objects.create_user("accountant@acme.example", PASSWORD)
    Membership.objects.create(user=accountant, account=settled, role="accountant")
    html = get(login(client, "viewer@acme.example"), "/billing/?period=2026-10").content.decode()
    assert "Total due" in html and "1.72" in html
    assert 'href="/billing/repay/"' not in html and "Repay overdrawn" not in html  # not even in the nav
    assert "export.csv" not in html and "statements/2026-10.pdf" not in html
    client.logout()
    html = get(login(client, "accountant@acme.example"), "/billing/?period=2026-10").content.decode()
    assert "Repay overdrawn" in html and "export.csv?period=2026-10" in html and "statements/2026-10.pdf" in html


def test_no_repay_button_when_nothing_is_due(client, acme):
    add_price("email", "sg", "0.001000")
    add_usage(acme, "sg", "email", "2026-10-03", 1_000)
    topup_record(account=acme, amount=Decimal("5.00"), reference="t1", at=utc(2026, 9, 1))
    bill_settle(account=acme, period=OCTOBER, now=SETTLED_AT)
    page = text_of(get(login(client), "/billing/?period=2026-10"))
    assert "Email 1,000 emails 1.00 Paid" in page
    assert "Total due 0.00 USD Nothing overdrawn" in page
    assert "Repay overdrawn" not in page


@pytest.mark.parametrize(("query", "message"), [
    ("2026-13", "month must be 01 to 12, got 13"),
    ("abc", "&#x27;abc&#x27; is not a period; expected YYYY-MM, e.g. 2026-10"),
    ("2026-1", "&#x27;2026-1&#x27; is not a period"),
    ("2026-12", "2026-12 has not started yet. Periods available for Acme Ltd: 2026-10 to 2026-11 "
                "(2026-11 is the current month)."),
    ("2026-09", "Acme Ltd has no usage or bills before 2026-10, so 2026-09 has nothing to show. "
                "Periods available: 2026-10 to 2026-11."),
])
def test_bad_period_is_a_readable_400(client, worked_example, query, message):
    response = get(login(client), f"/billing/?period={query}")
    assert response.status_code == 400
    html = response.content.decode()
    assert f"You asked for period <code>{query}</code>: " in html
    assert message in html
    assert '<option value="2026-10">October 2026</option>' in html  # a way back


def test_another_accounts_data_is_not_shown(client, settled, make_account):
    other = make_account(code="globex", name="Globex", users=(("owner@globex.example", "owner"),))
    add_price("email", "hk", "0.010000")
    add_usage(other, "hk", "email", "2026-10-02", 777_000)
    bill_settle(account=other, period=OCTOBER, now=SETTLED_AT)
    login(client)
    session = client.session
    session[SESSION_KEY] = other.pk  # not a membership of this user: ignored
    session.save()
    page = text_of(get(client, "/billing/?period=2026-10"))
    assert "Acme Ltd" in page and "777,000" not in page and "Globex" not in page
    stranger = User.objects.create_user("nobody@example.com", PASSWORD)
    client.force_login(stranger)
    assert get(client, "/billing/").status_code == 404


def test_signed_out_visitor_is_sent_to_sign_in(client):
    response = client.get("/billing/?period=2026-10")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/billing/%3Fperiod%3D2026-10"


def test_help_page(client):
    response = get(client, "/help/billing/")
    assert response.status_code == 200
    page = text_of(response)
    assert "the bill for November 2026 is available on 2026-12-01 15:00 UTC+8" in page
    assert "Invalid: Junk Mail Invalid Email junk_mail" in page
    assert "Frequently asked questions" in page
    assert "BIMI Certification certificate-month" in page


# --- queries -------------------------------------------------------------------


def _many_regions(account, regions: int, period: Period) -> None:
    """A full month of daily usage in ``regions`` regions: all six email
    results, data flow and data masking every day, a pack per region."""
    from usage.models import DailyUsage, Price, Region

    codes = [f"r{i:02d}" for i in range(regions)]
    Region.objects.bulk_create([Region(code=c, name=f"Region {c}") for c in codes], ignore_conflicts=True)
    for code in codes:
        for service, unit_price in (("email", "0.000300"), ("data_flow", "0.30"), ("data_masking", "0.002000")):
            if not Price.objects.filter(service_id=service, region_id=code).exists():
                add_price(service, code, unit_price)
        add_pack(account, code, f"pack-{code}", 100_000, "2026-01-01", "2028-01-01")
    rows = []
    for day in period.days():
        for code in codes:
            for i, result in enumerate(("delivered", "soft_bounce", "format_error", "not_exist", "reject",
                                        "junk_mail")):
                rows.append(DailyUsage(account=account, region_id=code, service_id="email", result=result,
                                       day=day, quantity=1000 // (i + 1)))
            rows.append(DailyUsage(account=account, region_id=code, service_id="data_flow", day=day,
                                   quantity=Decimal("1.25")))
            rows.append(DailyUsage(account=account, region_id=code, service_id="data_masking", day=day,
                                   quantity=40))
    DailyUsage.objects.bulk_create(rows, batch_size=2000)
    topup_record(account=account, amount=Decimal("100.00"), reference="t", at=utc(2026, 9, 1))


def _page_queries(client, email: str, query: str) -> int:
    client.force_login(User.objects.get(email=email))
    with time_machine.travel(IN_NOVEMBER, tick=False), CaptureQueriesContext(connection) as ctx:
        response = client.get(f"/billing/{query}")
    assert response.status_code == 200
    return len(ctx)


def test_queries_do_not_grow_with_regions(client, make_account, django_assert_num_queries):
    small = make_account(code="small", name="Small", users=(("owner@small.example", "owner"),))
    large = make_account(code="large", name="Large", users=(("owner@large.example", "owner"),))
    _many_regions(small, 2, OCTOBER)
    _many_regions(large, 20, OCTOBER)
    for account in (small, large):
        bill_settle(account=account, period=OCTOBER, now=SETTLED_AT)
    for account in (small, large):
        add_usage(account, "r00", "email", "2026-11-05", 10)
        add_usage(account, "r01", "data_flow", "2026-11-05", "1")

    assert len(billing_console(account=large, period=OCTOBER, now=IN_NOVEMBER).rows[0].lines) == 20
    # The selector itself: a settled month and a month-to-date estimate.
    with django_assert_num_queries(10):  # including the pending repayment
        billing_console(account=large, period=OCTOBER, now=IN_NOVEMBER)
    with django_assert_num_queries(12):  # the estimate's packs serve the pack balances too
        billing_console(account=large, period=NOVEMBER, now=IN_NOVEMBER)

    # The whole page (session, user, membership, selector, template).
    for query in ("?period=2026-10", "?period=2026-11"):
        small_count = _page_queries(client, "owner@small.example", query)
        large_count = _page_queries(client, "owner@large.example", query)
        assert small_count == large_count, query
