"""Fund top-ups through the console (billing-rules §5): an amount the payer
chooses, paid through a provider, booked in the ledger once and applied at
the next settlement."""
from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.utils import timezone

from payments.models import LedgerEntry, Payment
from payments.selectors import funds_balances
from tests.support.payments import NOV_SETTLED, later_overdraft, ledger, line_states

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture(autouse=True)
def sandbox_on(settings):
    settings.PAYMENTS_SANDBOX = True
    settings.WIRE_BANK_DETAILS = "Beneficiary: Aurora SendCloud Pte. Ltd."


def topup_key(client) -> str:
    html = client.get("/billing/topup/").content.decode()
    return re.search(r'name="idempotency_key" value="([^"]+)"', html).group(1)


def test_topup_is_booked_once_and_applied_at_the_next_settlement(owner, acme):
    key = topup_key(owner)
    first = owner.post("/billing/topup/", {"idempotency_key": key, "amount": "10.00", "method": "sandbox"})
    again = owner.post("/billing/topup/", {"idempotency_key": key, "amount": "10.00", "method": "sandbox"})
    assert first["Location"] == again["Location"]
    assert owner.post(first["Location"], {"action": "approve"}).status_code == 302
    payment = Payment.objects.get()
    assert (payment.purpose, payment.status, payment.amount) == ("topup", "succeeded", D("10.00"))
    assert LedgerEntry.objects.filter(kind="topup", reference=f"payment:{payment.public_id}").count() == 1
    assert funds_balances(account_ids=[acme.pk])[acme.pk] == D("10.00")
    assert '<strong id="funds-balance">10.00 USD</strong>' in owner.get("/billing/topup/").content.decode()
    # Top-ups do not repay what is already overdrawn…
    assert [s[-1] for s in line_states(acme)] == ["Overdrawn", "Overdrawn"]
    # …they are applied at the next settlement (one that runs after the
    # top-up's instant): 2026-11's 3.00 line is paid from funds.
    later_overdraft(acme, now=max(NOV_SETTLED, timezone.now()))
    assert line_states(acme)[-1] == ("2026-11", "data_masking", "sg", D("3.00"), D("0.00"), "Paid")
    assert ledger(acme)[-1] == ("settlement", D("-3.00"))
    assert funds_balances(account_ids=[acme.pk])[acme.pk] == D("7.00")
    receipt = owner.get(f"/billing/payments/{payment.public_id}/").content.decode()
    assert "The funds will be applied at the next settlement." in receipt


@pytest.mark.parametrize(("amount", "message"), [
    ("", "This field is required."),
    ("abc", "Enter an amount such as 100.00."),
    ("0", "Choose an amount from 1.00 to 100,000.00 USD."),
    ("-5", "Choose an amount from 1.00 to 100,000.00 USD."),
    ("0.999", "Use at most 2 decimal places (cents)."),
    ("100000.01", "Choose an amount from 1.00 to 100,000.00 USD."),
    ("NaN", "Enter an amount such as 100.00."),
])
def test_bad_amounts_are_refused_and_nothing_stored(owner, amount, message):
    response = owner.post("/billing/topup/", {"idempotency_key": topup_key(owner), "amount": amount,
                                              "method": "sandbox"})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Payment.objects.exists()


def test_method_must_be_offered(owner, settings):
    settings.PAYPAL_CLIENT_ID = ""  # PayPal not configured
    response = owner.post("/billing/topup/", {"idempotency_key": topup_key(owner), "amount": "5.00",
                                              "method": "paypal"})
    assert response.status_code == 400
    assert "Choose one of the payment methods offered." in response.content.decode()
    assert not Payment.objects.exists()


def test_declined_topup_books_nothing(owner, acme):
    response = owner.post("/billing/topup/", {"idempotency_key": topup_key(owner), "amount": "25.00",
                                              "method": "sandbox"})
    owner.post(response["Location"], {"action": "decline"})
    assert Payment.objects.get().status == "declined"
    assert funds_balances(account_ids=[acme.pk])[acme.pk] == D("0.00")
    page = owner.get(f"/billing/payments/{Payment.objects.get().public_id}/").content.decode()
    assert 'id="try-again" href="/billing/topup/"' in page


def test_topup_by_wire_shows_bank_details_and_reference(owner):
    response = owner.post("/billing/topup/", {"idempotency_key": topup_key(owner), "amount": "250.00",
                                              "method": "wire"})
    payment = Payment.objects.get()
    assert response["Location"] == f"/billing/payments/{payment.public_id}/"
    html = owner.get(response["Location"]).content.decode()
    assert "Beneficiary: Aurora SendCloud Pte. Ltd." in html
    assert f'<span class="reference" id="wire-reference">{payment.reference}</span>' in html
    assert "Send exactly <strong>250.00 USD</strong>" in html
