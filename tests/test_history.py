"""The console's history pages (issue #17): the bills list, the funds
ledger and the email packs, through HTTP with exact amounts, roles, and a
query count that does not grow with the data."""
from __future__ import annotations

import re
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from aurora_billing.console.history import bills_history
from aurora_billing.settlement import bill_settle
from core.periods import Period
from invoices.models import BillLine
from invoices.statements import statement_email_send, statement_issue
from payments.selectors import funds_balances, funds_ledger
from payments.services import FrozenLine, payment_confirm, repayment_create, topup_create, topup_record
from tests.support import add_pack, add_usage, utc

pytestmark = pytest.mark.django_db

OCT_SETTLED = utc(2026, 11, 1, 7)  # 2026-11-01 15:00 UTC+8
STATEMENT_SENT = utc(2026, 11, 5, 2)  # 2026-11-05 10:00 UTC+8
REPAID = utc(2026, 11, 3, 1)
NOV_SETTLED = utc(2026, 12, 1, 7)
IN_DECEMBER = utc(2026, 12, 20, 4)  # 2026-12-20 12:00 UTC+8


def text_of(response) -> str:
    assert response.status_code == 200, response.status_code
    html = response.content.decode()
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def get(client, path, now=IN_DECEMBER):
    """GET at ``now``, signed in as the user ``login`` chose (sessions expire)."""
    with time_machine.travel(now, tick=False):
        if getattr(client, "user_email", None):
            client.force_login(User.objects.get(email=client.user_email))
        return client.get(path)


def login(client, email="owner@acme.example"):
    client.user_email = email
    return client


def repay_all(account, key="r1", now=REPAID):
    lines = BillLine.objects.filter(bill__account=account, status="Overdrawn")
    owner = account.memberships.get(role="owner").user
    payment, _ = repayment_create(account=account, frozen=[FrozenLine(line_id=ln.pk, balance=ln.balance)
                                                          for ln in lines],
                                  method="sandbox", idempotency_key=key, user=owner, now=now)
    payment_confirm(payment=payment, transaction_id=f"tx-{key}", now=now)
    return payment


def history_seed(acme):
    """billing-rules §8's October settled (6.72: 5.00 from funds, 1.72
    overdrawn), its statement emailed, the overdraft repaid; 20.00 topped up
    by staff; 50,000 emails in November (packs used up: 15.00, paid from
    funds) settled; 10,000 emails so far in December (estimate 3.00)."""
    october, _ = bill_settle(account=acme, period=Period(2026, 10), now=OCT_SETTLED)
    statement = statement_issue(bill=october, now=STATEMENT_SENT)
    statement_email_send(statement=statement, now=STATEMENT_SENT)
    repay_all(acme)
    topup_record(account=acme, amount=Decimal("20.00"), reference="wire-002", at=utc(2026, 11, 10))
    add_usage(acme, "sg", "email", "2026-11-05", 50_000)
    bill_settle(account=acme, period=Period(2026, 11), now=NOV_SETTLED)
    add_usage(acme, "sg", "email", "2026-12-02", 10_000)
    return acme


@pytest.fixture
def history(worked_example, settings):
    settings.PAYMENTS_SANDBOX = True
    return history_seed(worked_example)


# --- 1. the bills list ------------------------------------------------------------

def test_bills_list_shows_every_period_newest_first_with_exact_figures(client, history):
    rows = bills_history(account=history, now=IN_DECEMBER)
    assert [(str(r.period), r.total, r.paid, r.balance, r.status) for r in rows] == [
        ("2026-12", Decimal("3.00"), None, None, "Pending"),
        ("2026-11", Decimal("15.00"), Decimal("15.00"), Decimal("0.00"), "Paid"),
        ("2026-10", Decimal("6.72"), Decimal("6.72"), Decimal("0.00"), "Paid"),
    ]
    page = text_of(get(login(client), "/billing/bills/"))
    assert "2026-12 3.00 (estimate) — — Pending" in page
    assert "2026-11 15.00 15.00 0.00 Paid not issued yet" in page
    number = history.bills.get(period="2026-10").statement.number
    assert f"2026-10 6.72 6.72 0.00 Paid {number} 2026-11-05 PDF CSV" in page


def test_bills_list_links_pdf_and_csv_and_hides_them_by_role(client, history, make_account):
    html = get(login(client), "/billing/bills/").content.decode()
    assert 'href="/billing/statements/2026-10.pdf"' in html
    assert 'href="/billing/export.csv?period=2026-12"' in html
    assert 'href="/billing/statements/2026-12.pdf"' not in html  # not settled
    viewer = User.objects.create_user("viewer@acme.example", "pass-12345-x")
    history.memberships.create(user=viewer, role="viewer")
    html = get(login(client, "viewer@acme.example"), "/billing/bills/").content.decode()
    assert "6.72" in html and ".pdf" not in html and "export.csv" not in html


def test_an_overdrawn_bill_says_so(client, worked_example):
    bill_settle(account=worked_example, period=Period(2026, 10), now=OCT_SETTLED)
    page = text_of(get(login(client), "/billing/bills/"))
    assert "2026-10 6.72 5.00 1.72 Overdrawn" in page


def test_bills_list_is_paginated(client, acme):
    from tests.support import add_price

    add_price("email", "sg", "0.000300", effective_from="2024-01-01")
    period = Period(2025, 1)
    while period < Period(2026, 3):  # 14 settled months
        add_usage(acme, "sg", "email", f"{period}-10", 1000)
        bill_settle(account=acme, period=period, now=period.bill_time)
        period = period.next()
    login(client)
    first = text_of(get(client, "/billing/bills/", now=utc(2026, 3, 10)))
    assert "Page 1 of 2" in first and "2026-02" in first and "2025-03" in first and "2025-02 " not in first
    second = text_of(get(client, "/billing/bills/?page=2", now=utc(2026, 3, 10)))
    assert "2025-02" in second and "2025-01" in second and "2026-02" not in second
    assert get(client, "/billing/bills/?page=zz", now=utc(2026, 3, 10)).status_code == 200


def test_bills_list_needs_sign_in_and_shows_nothing_of_other_accounts(client, history, make_account):
    assert client.get("/billing/bills/").status_code == 302
    make_account(code="bolt", name="Bolt", users=(("owner@bolt.example", "owner"),))
    page = text_of(get(login(client, "owner@bolt.example"), "/billing/bills/"))
    assert "6.72" not in page and "No bills yet" in page


# --- 7. the funds ledger ------------------------------------------------------------

def test_funds_ledger_lists_every_movement_with_running_balance(history):
    movements = funds_ledger(account=history)
    assert [(m.kind, m.amount, m.balance, m.period, m.lines) for m in movements] == [
        ("topup", Decimal("5.00"), Decimal("5.00"), "", 1),
        ("settlement", Decimal("-5.00"), Decimal("0.00"), "2026-10", 1),
        ("repayment", Decimal("1.72"), Decimal("1.72"), "", 1),
        ("repayment_application", Decimal("-1.72"), Decimal("0.00"), "2026-10", 2),
        ("topup", Decimal("20.00"), Decimal("20.00"), "", 1),
        ("settlement", Decimal("-15.00"), Decimal("5.00"), "2026-11", 1),
    ]
    assert movements[-1].balance == funds_balances(account_ids=[history.pk])[history.pk]
    assert movements[0].reference == "t1" and movements[0].staff_recorded
    assert movements[2].reference.startswith("AUR-") and movements[2].payment_method == "Sandbox (test payments)"


def test_funds_page_shows_references_and_console_top_ups(client, history):
    owner = history.memberships.get().user
    payment, _ = topup_create(account=history, amount=Decimal("12.34"), method="sandbox", idempotency_key="t-c",
                              user=owner, now=utc(2026, 12, 3))
    payment_confirm(payment=payment, transaction_id="tx-c", now=utc(2026, 12, 3))
    page = text_of(get(login(client), "/billing/funds/"))
    assert "Funds balance 17.34 USD" in page
    assert f"Top-up paid in the console (Sandbox (test payments)) {payment.reference} +12.34 17.34" in page
    assert "Applied to the bill of 2026-11 2026-11 -15.00 5.00" in page
    assert "Top-up recorded by staff wire-002 +20.00 20.00" in page
    repayment = history.payments.get(purpose="repayment").reference
    assert f"Repayment received (Sandbox (test payments)) {repayment} +1.72 1.72" in page
    assert f"Repayment applied to the bill of 2026-10 · 2 lines {repayment} -1.72 0.00" in page
    # newest first
    assert page.index("+12.34") < page.index("-15.00") < page.index("+20.00")


def test_funds_top_up_dated_later_counts_from_its_date(client, history):
    topup_record(account=history, amount=Decimal("9.00"), reference="later", at=utc(2027, 1, 5))
    page = text_of(get(login(client), "/billing/funds/"))
    assert "Funds balance 5.00 USD" in page and "9.00 more is dated later" in page


# --- 8. email packs ---------------------------------------------------------------

def test_packs_page_shows_quantity_used_left_validity_and_periods(client, history):
    add_pack(history, "sg", "C", 30_000, "2027-01-10", "2029-01-10")
    page = text_of(get(login(client), "/billing/packs/"))
    # B: valid, used up by October (28,000 + 22,000); A: expired with nothing left
    assert ("B SG (sg) 50,000 50,000 0 2026-10-10 2028-10-09 expires in 660 days 2026-10 50,000") in page
    assert "C SG (sg) 30,000 0 30,000 2027-01-10 2029-01-09 Not valid yet expires in 752 days none yet" in page
    assert "A SG (sg) 10,000 10,000 0 2026-09-01 2026-10-15 Expired 2026-10 10,000" in page
    assert page.index("B SG") < page.index("C SG") < page.index("A SG")


def test_expired_pack_shows_what_was_forfeited(client, acme):
    add_pack(acme, "sg", "old", 1_000, "2026-01-01", "2026-06-01")
    page = text_of(get(login(client), "/billing/packs/"))
    assert "Expired 1,000 forfeited" in page


# --- queries stay constant ------------------------------------------------------------

def _queries(client, path, now=IN_DECEMBER) -> int:
    with time_machine.travel(now, tick=False):
        client.force_login(User.objects.get(email=client.user_email))
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(path).status_code == 200
    return len(ctx)


@pytest.mark.parametrize("path", ["/billing/bills/", "/billing/funds/", "/billing/packs/"])
def test_history_pages_read_a_constant_number_of_queries(client, history, path):
    login(client)
    before = _queries(client, path)
    # more of everything: months, regions, packs, top-ups, repayments
    from tests.support import add_price

    add_price("email", "hk", "0.000400")
    add_price("data_flow", "hk", "0.30")
    for i, month in enumerate(("2026-12",)):
        add_pack(history, "hk", f"hk-{i}", 1_000, "2026-11-01", "2027-11-01")
        add_usage(history, "hk", "email", f"{month}-03", 5_000, result="not_exist")
        add_usage(history, "hk", "data_flow", f"{month}-03", "3")
    for i in range(5):
        topup_record(account=history, amount=Decimal("1.00"), reference=f"x{i}", at=utc(2026, 12, 2))
    bill_settle(account=history, period=Period(2026, 12), now=utc(2027, 1, 1, 7))
    add_usage(history, "sg", "email", "2027-01-03", 7_000)
    after = _queries(client, path, now=utc(2027, 1, 20))
    assert before == after



def test_history_strings_have_simplified_chinese_translations():
    from django.utils import translation

    with translation.override("zh-hans"):
        assert translation.gettext("Bills") == "账单"
        assert translation.gettext("Overdrawn") == "欠费"
        assert "资源包" in translation.gettext("Email packs")  # the glossary term (docs/i18n.md)
