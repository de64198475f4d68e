"""Repaying overdrawn lines through the console (billing-rules §6) with the
sandbox provider: exact amounts, the frozen breakdown, idempotency,
declines, replays, tampering, access."""
from __future__ import annotations

import logging
import re
from decimal import Decimal

import pytest
from django.core import mail
from django.test import Client

from accounts.models import Membership, User
from payments.models import LedgerEntry, Payment, PaymentEvent
from payments.providers.sandbox import notification_sign
from payments.selectors import funds_balances
from tests.support import PASSWORD
from tests.support.payments import breakdown_token, later_overdraft, ledger, line_states, overdrawn

pytestmark = pytest.mark.django_db

D = Decimal
OCT_DUE = [("2026-10", "email", "sg", D("5.00"), D("0.40"), "Overdrawn"),
           ("2026-10", "data_flow", "sg", D("0.00"), D("1.32"), "Overdrawn")]
OCT_PAID = [("2026-10", "email", "sg", D("5.40"), D("0.00"), "Paid"),
            ("2026-10", "data_flow", "sg", D("1.32"), D("0.00"), "Paid")]


@pytest.fixture(autouse=True)
def sandbox_on(settings):
    settings.PAYMENTS_SANDBOX = True
    settings.WIRE_BANK_DETAILS = "Beneficiary: Aurora SendCloud Pte. Ltd.\nAccount: 123-456789-0"


def open_repay(client) -> str:
    response = client.get("/billing/repay/")
    assert response.status_code == 200
    return breakdown_token(response.content.decode())


def submit(client, token: str, method: str = "sandbox"):
    return client.post("/billing/repay/", {"breakdown": token, "method": method})


def checkout(client, response, action: str):
    assert response.status_code == 302 and response["Location"].startswith("http://testserver/pay/sandbox/")
    return client.post(response["Location"], {"action": action})


def test_repay_page_shows_total_due_and_breakdown(owner):
    response = owner.get("/billing/repay/")
    html = response.content.decode()
    assert response.status_code == 200
    assert '<span class="figure-value" id="total-due">1.72</span>' in html
    assert html.index("Email") < html.index("Data Flow")
    assert '<td class="num">0.40</td>' in html and '<td class="num">1.32</td>' in html
    # PAYMENT_EMULATORS is on in the tests: Alipay and PayPal are offered too, in display order
    assert re.findall(r'name="method" value="(\w+)"', html) == ["alipay", "paypal", "wire", "sandbox"]


def test_providers_not_configured_are_not_offered(owner, settings):
    settings.ALIPAY_APP_ID = ""
    settings.PAYPAL_WEBHOOK_ID = ""
    html = owner.get("/billing/repay/").content.decode()
    assert re.findall(r'name="method" value="(\w+)"', html) == ["wire", "sandbox"]


def test_sandbox_approval_pays_every_line_once_with_ledger_and_receipt(owner, acme, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = checkout(owner, submit(owner, open_repay(owner)), "approve")
    payment = Payment.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/billing/payments/{payment.public_id}/"
    assert (payment.status, payment.amount, payment.currency, payment.purpose) == ("succeeded", D("1.72"), "USD",
                                                                                     "repayment")
    assert payment.provider_transaction_id.startswith("SBX-")
    assert line_states(acme) == OCT_PAID
    assert ledger(acme) == [("topup", D("5.00")), ("settlement", D("-5.00")), ("repayment", D("1.72")),
                            ("repayment_application", D("-0.40")), ("repayment_application", D("-1.32"))]
    assert set(LedgerEntry.objects.filter(kind__startswith="repayment").values_list("reference", flat=True)) == {
        f"payment:{payment.public_id}"}
    assert funds_balances(account_ids=[acme.pk])[acme.pk] == D("0.00")
    receipt = owner.get(response["Location"]).content.decode()
    assert "Thank you: 1.72 USD received." in receipt and 'id="payment-status">Paid<' in receipt
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["owner@acme.example"]
    assert mail.outbox[0].subject == f"Aurora SendCloud receipt {payment.reference}: 1.72 USD received"
    assert "- 2026-10 Email, SG: 0.40" in mail.outbox[0].body
    page = owner.get("/billing/repay/").content.decode()
    assert 'id="nothing-due"' in page


def test_receipt_goes_to_the_paying_accountant_and_the_owners(acme, django_capture_on_commit_callbacks):
    overdrawn(acme)
    accountant = User.objects.create_user("acc@acme.example", PASSWORD)
    Membership.objects.create(user=accountant, account=acme, role="accountant")
    client = Client()
    client.force_login(User.objects.get(email="acc@acme.example"))
    with django_capture_on_commit_callbacks(execute=True):
        checkout(client, submit(client, open_repay(client)), "approve")
    assert mail.outbox[0].to == ["acc@acme.example", "owner@acme.example"]


def test_double_submit_of_one_page_is_one_payment(owner, acme):
    token = open_repay(owner)
    first = submit(owner, token)
    second = submit(owner, token)
    assert first["Location"] == second["Location"]
    payment = Payment.objects.get()
    assert payment.lines.count() == 2
    checkout(owner, first, "approve")
    # A browser resubmit after paying lands on the receipt, never a second charge.
    third = submit(owner, token)
    assert third.status_code == 302 and third["Location"] == f"/billing/payments/{payment.public_id}/"
    assert Payment.objects.count() == 1
    assert LedgerEntry.objects.filter(kind="repayment").count() == 1


def test_replayed_callback_changes_nothing(owner, acme):
    checkout(owner, submit(owner, open_repay(owner)), "approve")
    payment = Payment.objects.get()
    replay = notification_sign({"payment": str(payment.public_id), "outcome": "succeeded", "amount": "1.72",
                                "currency": "USD", "transaction_id": payment.provider_transaction_id})
    before = ledger(acme)
    for _ in range(2):
        response = Client().post("/payments/callback/sandbox/", replay)
        assert response.status_code == 200 and response.content == b"OK"
    assert ledger(acme) == before
    assert line_states(acme) == OCT_PAID
    assert PaymentEvent.objects.filter(payment=payment, kind="replay").count() == 2


def test_a_second_transaction_for_a_paid_payment_is_kept_as_funds(owner, acme, caplog):
    checkout(owner, submit(owner, open_repay(owner)), "approve")
    payment = Payment.objects.get()
    second = notification_sign({"payment": str(payment.public_id), "outcome": "succeeded", "amount": "1.72",
                                "currency": "USD", "transaction_id": "SBX-SECOND"})
    with caplog.at_level(logging.ERROR, logger="aurora.payments"):
        assert Client().post("/payments/callback/sandbox/", second).status_code == 200
        assert Client().post("/payments/callback/sandbox/", second).status_code == 200
    assert line_states(acme) == OCT_PAID
    # applied at the next settlement, never to a paid line
    assert funds_balances(account_ids=[acme.pk])[acme.pk] == D("1.72")
    assert LedgerEntry.objects.filter(kind="topup", reference=f"payment:{payment.public_id}:SBX-SECOND").count() == 1
    assert "paid twice" in caplog.text


def test_declined_payment_leaves_lines_overdrawn_and_can_be_retried(owner, acme):
    response = checkout(owner, submit(owner, open_repay(owner)), "decline")
    declined = Payment.objects.get()
    assert declined.status == "declined"
    assert line_states(acme) == OCT_DUE
    assert not LedgerEntry.objects.filter(kind__startswith="repayment").exists()
    page = owner.get(response["Location"]).content.decode()
    assert "The payment was declined." in page and 'id="try-again" href="/billing/repay/"' in page
    checkout(owner, submit(owner, open_repay(owner)), "approve")
    retry = Payment.objects.exclude(pk=declined.pk).get()
    assert (retry.status, retry.amount) == ("succeeded", D("1.72"))
    assert line_states(acme) == OCT_PAID
    declined.refresh_from_db()
    assert declined.status == "declined"


def test_abandoned_checkout_cancels_and_nothing_changes(owner, acme):
    checkout(owner, submit(owner, open_repay(owner)), "abandon")
    assert Payment.objects.get().status == "cancelled"
    assert line_states(acme) == OCT_DUE


def test_payer_can_cancel_a_pending_payment(owner, acme):
    submit(owner, open_repay(owner))
    payment = Payment.objects.get()
    response = owner.post(f"/billing/payments/{payment.public_id}/cancel/")
    assert response.status_code == 302
    payment.refresh_from_db()
    assert payment.status == "cancelled"
    assert line_states(acme) == OCT_DUE


def test_tampered_callback_amount_is_refused_and_logged(owner, acme, caplog):
    submit(owner, open_repay(owner))
    payment = Payment.objects.get()
    # Correctly signed but for 0.01: the amount must be the payment's.
    cheap = notification_sign({"payment": str(payment.public_id), "outcome": "succeeded", "amount": "0.01",
                               "currency": "USD", "transaction_id": "SBX-CHEAP"})
    with caplog.at_level(logging.WARNING, logger="aurora.payments"):
        response = Client().post("/payments/callback/sandbox/", cheap)
    assert response.status_code == 400
    assert "amount 0.01 USD does not match the payment's 1.72 USD" in caplog.text
    refused = PaymentEvent.objects.get(payment=payment, kind="refused")
    assert refused.message == "amount 0.01 USD does not match the payment's 1.72 USD"
    assert refused.payload["amount"] == "0.01"
    # Another currency is refused the same way.
    other = notification_sign({"payment": str(payment.public_id), "outcome": "succeeded", "amount": "1.72",
                               "currency": "CNY", "transaction_id": "SBX-CNY"})
    assert Client().post("/payments/callback/sandbox/", other).status_code == 400
    # Altered after signing: the signature fails.
    forged = notification_sign({"payment": str(payment.public_id), "outcome": "succeeded", "amount": "1.72",
                                "currency": "USD", "transaction_id": "SBX-X"}) | {"amount": "0.01"}
    assert Client().post("/payments/callback/sandbox/", forged).status_code == 400
    assert PaymentEvent.objects.filter(kind="rejected", message="sandbox notification signature does not verify"
                                       ).count() == 1
    payment.refresh_from_db()
    assert payment.status == "pending"
    assert line_states(acme) == OCT_DUE
    assert not LedgerEntry.objects.filter(kind__startswith="repayment").exists()


def test_overdraft_appearing_while_the_page_is_open_is_not_charged(owner, acme):
    token = open_repay(owner)  # shows 1.72
    later_overdraft(acme)  # 2026-11 data masking 3.00 becomes Overdrawn
    checkout(owner, submit(owner, token), "approve")
    payment = Payment.objects.get()
    assert payment.amount == D("1.72")
    assert line_states(acme) == OCT_PAID + [("2026-11", "data_masking", "sg", D("0.00"), D("3.00"), "Overdrawn")]
    page = owner.get("/billing/repay/").content.decode()
    assert '<span class="figure-value" id="total-due">3.00</span>' in page


def test_a_line_paid_meanwhile_refuses_the_older_page(owner, acme):
    first_tab = open_repay(owner)
    second_tab = open_repay(owner)
    checkout(owner, submit(owner, second_tab), "approve")
    response = submit(owner, first_tab)
    assert response.status_code == 302 and response["Location"] == "/billing/repay/"
    assert Payment.objects.count() == 1
    page = owner.get("/billing/repay/").content.decode()
    assert "The amount due changed since the page was opened" in page
    assert line_states(acme) == OCT_PAID


def test_late_success_of_a_replaced_payment_is_kept_as_funds(owner, acme):
    submit(owner, open_repay(owner))
    replaced = Payment.objects.get()
    checkout(owner, submit(owner, open_repay(owner)), "approve")
    replaced.refresh_from_db()
    assert replaced.status == "cancelled" and replaced.status_reason == "replaced by a newer repayment"
    # The payer had paid the first one at the provider anyway.
    late = notification_sign({"payment": str(replaced.public_id), "outcome": "succeeded", "amount": "1.72",
                              "currency": "USD", "transaction_id": "SBX-LATE"})
    assert Client().post("/payments/callback/sandbox/", late).status_code == 200
    replaced.refresh_from_db()
    assert (replaced.status, replaced.credited_to_funds) == ("succeeded", True)
    assert line_states(acme) == OCT_PAID
    assert LedgerEntry.objects.filter(kind="repayment_application").count() == 2  # each line repaid once
    assert funds_balances(account_ids=[acme.pk])[acme.pk] == D("1.72")


def test_a_new_repayment_replaces_the_pending_one(owner, acme):
    submit(owner, open_repay(owner))
    page = owner.get("/billing/repay/").content.decode()
    assert 'id="pending-payment"' in page
    submit(owner, breakdown_token(page))
    assert sorted(Payment.objects.values_list("status", flat=True)) == ["cancelled", "pending"]


def test_method_not_offered_is_refused_and_nothing_stored(owner, settings):
    settings.ALIPAY_APP_ID = ""  # Alipay not configured
    response = submit(owner, open_repay(owner), method="alipay")
    assert response.status_code == 400
    assert "Choose one of the payment methods offered." in response.content.decode()
    assert not Payment.objects.exists()


def test_tampered_or_foreign_breakdown_is_refused(owner, make_account):
    response = submit(owner, open_repay(owner)[:-3] + "abc")
    assert response.status_code == 400
    assert "The breakdown could not be read. Reload the page." in response.content.decode()
    other = make_account(code="other", name="Other", users=(("owner@other.example", "owner"),))
    overdrawn_other = Client()
    overdrawn_other.force_login(User.objects.get(email="owner@other.example"))
    assert 'id="nothing-due"' in overdrawn_other.get("/billing/repay/").content.decode()
    # acme's breakdown posted by another account's owner
    response = submit(overdrawn_other, open_repay(owner))
    assert response.status_code == 400
    assert "This breakdown belongs to another account." in response.content.decode()
    assert not Payment.objects.filter(account=other).exists()


def test_viewer_may_not_pay(acme):
    overdrawn(acme)
    viewer = User.objects.create_user("viewer@acme.example", PASSWORD)
    Membership.objects.create(user=viewer, account=acme, role="viewer")
    client = Client()
    client.force_login(User.objects.get(email="viewer@acme.example"))
    assert client.get("/billing/repay/").status_code == 403
    assert client.post("/billing/repay/", {"breakdown": "x", "method": "sandbox"}).status_code == 403
    assert client.get("/billing/topup/").status_code == 403
    assert not Payment.objects.exists()


def test_anonymous_is_sent_to_sign_in(acme):
    response = Client().get("/billing/repay/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_another_accounts_payment_is_404(owner, acme, make_account):
    submit(owner, open_repay(owner))
    payment = Payment.objects.get()
    make_account(code="other", name="Other", users=(("owner@other.example", "owner"),))
    stranger = Client()
    stranger.force_login(User.objects.get(email="owner@other.example"))
    assert stranger.get(f"/billing/payments/{payment.public_id}/").status_code == 404
    assert stranger.post(f"/billing/payments/{payment.public_id}/cancel/").status_code == 404
    assert stranger.get(f"/pay/sandbox/{payment.public_id}/").status_code == 404
    assert stranger.post(f"/pay/sandbox/{payment.public_id}/", {"action": "approve"}).status_code == 404
    payment.refresh_from_db()
    assert payment.status == "pending"


def test_forms_need_csrf(acme):
    overdrawn(acme)
    client = Client(enforce_csrf_checks=True)
    client.force_login(User.objects.get(email="owner@acme.example"))
    html = client.get("/billing/repay/").content.decode()
    assert 'name="csrfmiddlewaretoken"' in html
    assert client.post("/billing/repay/", {"breakdown": breakdown_token(html), "method": "sandbox"}
                       ).status_code == 403
    assert not Payment.objects.exists()


def test_sandbox_is_off_unless_enabled(owner, settings):
    settings.PAYMENTS_SANDBOX = False
    html = owner.get("/billing/repay/").content.decode()
    assert 'value="sandbox"' not in html and 'value="wire"' in html
    assert Client().post("/payments/callback/sandbox/", {"payment": "x"}).status_code == 404
    assert Client().post("/payments/callback/nope/", {}).status_code == 404


def test_payment_history_lists_the_accounts_payments(owner, acme):
    checkout(owner, submit(owner, open_repay(owner)), "decline")
    checkout(owner, submit(owner, open_repay(owner)), "approve")
    html = owner.get("/billing/payments/").content.decode()
    references = list(Payment.objects.order_by("-created_at", "-id").values_list("reference", flat=True))
    assert html.index(references[0]) < html.index(references[1])
    assert html.count('<span class="pay-state pay-state-succeeded">Paid</span>') == 1
    assert html.count('<span class="pay-state pay-state-declined">Declined</span>') == 1
