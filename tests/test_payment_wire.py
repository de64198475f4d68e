"""Wire transfer: bank details and a unique reference for the payer; staff
confirm receipt in Django admin, which completes the repayment."""
from __future__ import annotations

import logging
import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.core import mail
from django.test import Client

from accounts.models import User
from payments.models import LedgerEntry, Payment, PaymentEvent
from tests.support import PASSWORD
from tests.support.payments import breakdown_token, line_states

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture(autouse=True)
def wire_on(settings):
    settings.WIRE_BANK_DETAILS = "Beneficiary: Aurora SendCloud Pte. Ltd.\nSWIFT/BIC: EXAMPLESGXXX"


@pytest.fixture
def wire_payment(owner):
    token = breakdown_token(owner.get("/billing/repay/").content.decode())
    response = owner.post("/billing/repay/", {"breakdown": token, "method": "wire"})
    payment = Payment.objects.get()
    assert response["Location"] == f"/billing/payments/{payment.public_id}/"
    html = owner.get(response["Location"]).content.decode()
    assert "SWIFT/BIC: EXAMPLESGXXX" in html and f'id="wire-reference">{payment.reference}<' in html
    assert re.fullmatch(r"AUR-[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}", payment.reference)
    return payment


@pytest.fixture
def staff():
    User.objects.create_superuser("admin@aurora.example", PASSWORD)
    client = Client()
    client.force_login(User.objects.get(email="admin@aurora.example"))
    return client


def confirm_url(payment) -> str:
    return f"/admin/payments/payment/{payment.pk}/confirm-wire/"


def test_wire_stays_pending_until_staff_confirm_receipt(wire_payment, staff, acme, django_capture_on_commit_callbacks):
    assert wire_payment.status == "pending"
    assert [s[-1] for s in line_states(acme)] == ["Overdrawn", "Overdrawn"]
    change = staff.get(f"/admin/payments/payment/{wire_payment.pk}/change/").content.decode()
    assert confirm_url(wire_payment) in change
    form = staff.get(confirm_url(wire_payment))
    assert form.status_code == 200 and "expected <strong>1.72 USD</strong>" in form.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(confirm_url(wire_payment), {"amount": "1.72", "currency": "usd",
                                                          "bank_reference": "DBS-20261203-0042"})
    assert response.status_code == 302
    wire_payment.refresh_from_db()
    assert (wire_payment.status, wire_payment.provider_transaction_id) == ("succeeded", "DBS-20261203-0042")
    assert wire_payment.confirmed_by.email == "admin@aurora.example"
    assert line_states(acme) == [("2026-10", "email", "sg", D("5.40"), D("0.00"), "Paid"),
                                 ("2026-10", "data_flow", "sg", D("1.32"), D("0.00"), "Paid")]
    assert list(LedgerEntry.objects.filter(kind__startswith="repayment").values_list("kind", "amount")) == [
        ("repayment", D("1.72")), ("repayment_application", D("-0.40")), ("repayment_application", D("-1.32"))]
    assert [m.to for m in mail.outbox] == [["owner@acme.example"]]
    # Confirming again changes nothing.
    again = staff.post(confirm_url(wire_payment), {"amount": "1.72", "currency": "USD",
                                                   "bank_reference": "DBS-20261203-0042"}, follow=True)
    assert "is not a wire transfer awaiting confirmation" in again.content.decode()
    assert LedgerEntry.objects.filter(kind="repayment").count() == 1


def test_a_different_amount_is_refused_and_logged(wire_payment, staff, acme, caplog):
    with caplog.at_level(logging.WARNING, logger="aurora.payments"):
        response = staff.post(confirm_url(wire_payment), {"amount": "1.70", "currency": "USD",
                                                          "bank_reference": "DBS-1"})
    assert response.status_code == 200
    assert "The amount received (1.70 USD) is not the amount of this payment (1.72 USD)" in response.content.decode()
    assert "received 1.70 USD does not match" in caplog.text
    assert PaymentEvent.objects.filter(payment=wire_payment, kind="refused").count() == 1
    wire_payment.refresh_from_db()
    assert wire_payment.status == "pending"
    assert not LedgerEntry.objects.filter(kind="repayment").exists()


def test_a_bank_transfer_is_booked_once(wire_payment, staff, acme):
    staff.post(confirm_url(wire_payment), {"amount": "1.72", "currency": "USD", "bank_reference": "DBS-7"})
    other = Payment.objects.create(account=acme, purpose="topup", method="wire", amount=D("1.72"), currency="USD",
                                   idempotency_key="k-other")
    response = staff.post(confirm_url(other), {"amount": "1.72", "currency": "USD", "bank_reference": "DBS-7"})
    assert "transaction DBS-7 is already booked for another payment" in response.content.decode()
    other.refresh_from_db()
    assert other.status == "pending"
    assert not LedgerEntry.objects.filter(kind="topup", reference=f"payment:{other.public_id}").exists()


def test_only_staff_with_the_change_permission_confirm(wire_payment):
    assert Client().get(confirm_url(wire_payment)).status_code == 302  # admin login
    clerk = User.objects.create_user("clerk@aurora.example", PASSWORD, is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_payment"))
    client = Client()
    client.force_login(User.objects.get(email="clerk@aurora.example"))
    assert client.get(f"/admin/payments/payment/{wire_payment.pk}/change/").status_code == 200
    assert client.post(confirm_url(wire_payment), {"amount": "1.72", "currency": "USD",
                                                   "bank_reference": "X"}).status_code == 403
    wire_payment.refresh_from_db()
    assert wire_payment.status == "pending"


def test_staff_record_a_topup_in_admin_once(staff, acme):
    data = {"account": acme.pk, "amount": "40.00", "reference": "wire-2026-77", "at_0": "2026-11-20",
            "at_1": "10:00:00", "memo": ""}
    assert staff.post("/admin/payments/ledgerentry/add/", data).status_code == 302
    assert staff.post("/admin/payments/ledgerentry/add/", data).status_code == 302
    entry = LedgerEntry.objects.get(reference="wire-2026-77")
    assert (entry.kind, entry.amount, entry.created_by.email) == ("topup", D("40.00"), "admin@aurora.example")
    refused = staff.post("/admin/payments/ledgerentry/add/", {**data, "reference": "r2", "amount": "-1"})
    assert refused.status_code == 200 and "A top-up must be greater than 0." in refused.content.decode()


def test_summary_shows_the_repayment_awaiting_the_transfer_instead_of_the_repay_button(owner):
    before = owner.get("/billing/?period=2026-10").content.decode()
    assert '<a class="btn btn-danger" href="/billing/repay/">Repay overdrawn</a>' in before
    assert "awaiting the transfer" not in before

    token = breakdown_token(owner.get("/billing/repay/").content.decode())
    owner.post("/billing/repay/", {"breakdown": token, "method": "wire"})
    payment = Payment.objects.get()
    html = owner.get("/billing/?period=2026-10").content.decode()
    assert "Repay overdrawn" not in html and "btn-danger" not in html
    notice = re.search(r'<dd class="figure-note" id="pending-repayment">(.*?)</dd>', html, re.S)
    assert notice, html
    assert re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", notice.group(1))).strip() == (
        f"A repayment of 1.72 USD is awaiting the transfer (reference {payment.reference}). "
        "View the transfer details")
    assert f'href="/billing/payments/{payment.public_id}/"' in notice.group(1)


def test_summary_offers_repay_again_once_the_pending_transfer_is_cancelled(owner):
    token = breakdown_token(owner.get("/billing/repay/").content.decode())
    owner.post("/billing/repay/", {"breakdown": token, "method": "wire"})
    payment = Payment.objects.get()
    owner.post(f"/billing/payments/{payment.public_id}/cancel/")
    html = owner.get("/billing/?period=2026-10").content.decode()
    assert "awaiting the transfer" not in html
    assert '<a class="btn btn-danger" href="/billing/repay/">Repay overdrawn</a>' in html


def test_viewer_sees_the_pending_transfer_without_a_pay_link(owner, acme):
    token = breakdown_token(owner.get("/billing/repay/").content.decode())
    owner.post("/billing/repay/", {"breakdown": token, "method": "wire"})
    viewer = User.objects.create_user("viewer@acme.example", PASSWORD)
    acme.memberships.create(user=viewer, role="viewer")
    client = Client()
    client.force_login(viewer)
    html = client.get("/billing/?period=2026-10").content.decode()
    assert "is awaiting the transfer" in html and "Repay overdrawn" not in html
