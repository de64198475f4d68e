"""Concurrency on PostgreSQL (select_for_update is a no-op on SQLite): two
simultaneous submissions or confirmations of one repayment end in one
payment and one set of ledger entries."""
from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client

from accounts.models import User
from payments.models import LedgerEntry, Payment
from payments.providers.sandbox import notification_sign
from tests.support import run_concurrently
from tests.support.payments import breakdown_token, line_states, overdrawn

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def sandbox_on(settings):
    settings.PAYMENTS_SANDBOX = True


def signed_in() -> Client:
    client = Client()
    client.force_login(User.objects.get(email="owner@acme.example"))
    return client


def test_two_concurrent_submissions_of_one_page_give_one_payment(postgres, acme):
    overdrawn(acme)
    clients = [signed_in(), signed_in()]
    token = breakdown_token(clients[0].get("/billing/repay/").content.decode())
    data = {"breakdown": token, "method": "sandbox"}
    responses = run_concurrently(*[lambda c=c: c.post("/billing/repay/", data) for c in clients])
    assert [r.status_code for r in responses] == [302, 302]
    assert responses[0]["Location"] == responses[1]["Location"]
    payment = Payment.objects.get()
    assert (payment.amount, payment.lines.count()) == (Decimal("1.72"), 2)


def test_two_concurrent_approvals_book_the_money_once(postgres, acme):
    overdrawn(acme)
    clients = [signed_in(), signed_in()]
    token = breakdown_token(clients[0].get("/billing/repay/").content.decode())
    checkout_url = clients[0].post("/billing/repay/", {"breakdown": token, "method": "sandbox"})["Location"]
    responses = run_concurrently(*[lambda c=c: c.post(checkout_url, {"action": "approve"}) for c in clients])
    assert [r.status_code for r in responses] == [302, 302]
    payment = Payment.objects.get()
    assert payment.status == "succeeded"
    assert LedgerEntry.objects.filter(kind="repayment").count() == 1
    assert LedgerEntry.objects.filter(kind="repayment_application").count() == 2
    assert [s[-1] for s in line_states(acme)] == ["Paid", "Paid"]


def test_the_same_callback_delivered_twice_at_once_is_booked_once(postgres, acme):
    overdrawn(acme)
    client = signed_in()
    token = breakdown_token(client.get("/billing/repay/").content.decode())
    client.post("/billing/repay/", {"breakdown": token, "method": "sandbox"})
    payment = Payment.objects.get()
    notification = notification_sign({"payment": str(payment.public_id), "outcome": "succeeded", "amount": "1.72",
                                      "currency": "USD", "transaction_id": "SBX-RACE"})
    responses = run_concurrently(*[lambda: Client().post("/payments/callback/sandbox/", notification)] * 3)
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert LedgerEntry.objects.filter(kind="repayment").count() == 1
    assert LedgerEntry.objects.filter(kind="repayment_application").count() == 2


def test_two_pages_paid_at_once_charge_each_line_once(postgres, acme):
    overdrawn(acme)
    clients = [signed_in(), signed_in()]
    tokens = [breakdown_token(c.get("/billing/repay/").content.decode()) for c in clients]

    def pay(client, token):
        url = client.post("/billing/repay/", {"breakdown": token, "method": "sandbox"})["Location"]
        return client.post(url, {"action": "approve"}) if url.startswith("http://testserver/pay/") else url

    results = run_concurrently(*[lambda c=c, t=t: pay(c, t) for c, t in zip(clients, tokens, strict=True)])
    assert not [r for r in results if isinstance(r, Exception)]
    assert LedgerEntry.objects.filter(kind="repayment_application").count() == 2
    assert [s[-1] for s in line_states(acme)] == ["Paid", "Paid"]
    # Whatever the interleaving, one page wins: the other was refused (the
    # due changed) or cancelled (replaced) before its checkout approved.
    assert sum(LedgerEntry.objects.filter(kind="repayment").values_list("amount", flat=True)) == Decimal("1.72")
    assert Payment.objects.filter(status="succeeded").count() == 1
    assert Payment.objects.filter(status="pending").count() == 0
