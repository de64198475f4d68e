"""The PayPal adapter: order creation and capture behind ``PayPalAPI``
(replaced here: PayPal's network is not reachable from tests) and webhook
verification as PayPal documents it (CRC32 of the body, transmission
signature SHA256withRSA with the certificate at PAYPAL-CERT-URL), with a
key and certificate generated here."""
from __future__ import annotations

import datetime as dt
import json
import logging
import zlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from django.test import Client

from payments.models import LedgerEntry, Payment, PaymentEvent
from payments.providers import paypal
from payments.providers.base import ProviderUnavailable, rsa_sha256_sign
from tests.support.payments import breakdown_token, line_states

pytestmark = pytest.mark.django_db
WEBHOOK_ID = "8PT597110X687430LKGECATA"
CERT_URL = "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-test"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _certificate(key, *, days_valid: int = 30) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "messageverificationcerts.paypal.com")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=days_valid)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


CERT = _certificate(KEY)


class FakePayPal:
    """Stands in for PayPal's REST API (the only part that uses the network)."""

    def __init__(self):
        self.created: list[tuple[dict, str]] = []
        self.captured: list[tuple[str, str]] = []
        self.capture_amount = None
        self.fail_create = False

    def order_create(self, *, body, request_id):
        if self.fail_create:
            raise ProviderUnavailable("PayPal cannot be reached: timed out")
        self.created.append((body, request_id))
        return {"id": "5O190127TN364715T", "status": "PAYER_ACTION_REQUIRED", "links": [
            {"href": "https://api-m.paypal.com/v2/checkout/orders/5O190127TN364715T", "rel": "self"},
            {"href": "https://www.paypal.com/checkoutnow?token=5O190127TN364715T", "rel": "payer-action"}]}

    def order_capture(self, *, order_id, request_id):
        self.captured.append((order_id, request_id))
        unit = self.created[-1][0]["purchase_units"][0]
        amount = dict(unit["amount"])
        if self.capture_amount:
            amount["value"] = self.capture_amount
        return {"id": order_id, "status": "COMPLETED", "purchase_units": [{"reference_id": unit["reference_id"],
                "payments": {"captures": [{"id": "3C679366HH908993F", "status": "COMPLETED", "amount": amount,
                                           "custom_id": unit["custom_id"]}]}}]}


@pytest.fixture(autouse=True)
def paypal_on(settings, monkeypatch):
    settings.PAYMENTS_SANDBOX = False
    settings.PAYPAL_CLIENT_ID = "client-id"
    settings.PAYPAL_CLIENT_SECRET = "client-secret"
    settings.PAYPAL_WEBHOOK_ID = WEBHOOK_ID
    fake = FakePayPal()
    monkeypatch.setattr(paypal.PayPalAPI, "order_create", fake.order_create)
    monkeypatch.setattr(paypal.PayPalAPI, "order_capture", fake.order_capture)
    fetched = []

    def cert_fetch(url):
        fetched.append(url)
        return CERT

    monkeypatch.setattr(paypal, "cert_fetch", cert_fetch)
    fake.fetched = fetched
    return fake


def start(owner):
    html = owner.get("/billing/repay/").content.decode()
    assert 'value="paypal"' in html
    return owner.post("/billing/repay/", {"breakdown": breakdown_token(html), "method": "paypal"})


def capture_event(payment, *, event_type="PAYMENT.CAPTURE.COMPLETED", value=None, capture_id="3C679366HH908993F"):
    return {
        "id": "WH-58D329510W468432D-8HN650336L201105X", "event_version": "1.0", "resource_type": "capture",
        "event_type": event_type, "summary": "Payment completed",
        "create_time": "2026-12-01T02:00:05.000Z",
        "resource": {"id": capture_id, "status": event_type.rsplit(".", 1)[-1],
                     "amount": {"currency_code": payment.currency, "value": value or f"{payment.amount:.2f}"},
                     "custom_id": str(payment.public_id), "final_capture": True,
                     "supplementary_data": {"related_ids": {"order_id": "5O190127TN364715T"}}},
    }


def deliver(event: dict, *, key=KEY, cert_url=CERT_URL, algo="SHA256withRSA", body: bytes | None = None,
            tamper: bytes | None = None):
    """POST ``event`` as PayPal delivers a webhook, signed with ``key``."""
    body = body if body is not None else json.dumps(event).encode()
    transmission_id, transmission_time = "69cd13f0-d67a-11e5-baa3-778b53f4ae55", "2026-12-01T02:00:06Z"
    text = f"{transmission_id}|{transmission_time}|{WEBHOOK_ID}|{zlib.crc32(body)}"
    headers = {
        "HTTP_PAYPAL_TRANSMISSION_ID": transmission_id, "HTTP_PAYPAL_TRANSMISSION_TIME": transmission_time,
        "HTTP_PAYPAL_TRANSMISSION_SIG": rsa_sha256_sign(key, text.encode()), "HTTP_PAYPAL_CERT_URL": cert_url,
        "HTTP_PAYPAL_AUTH_ALGO": algo,
    }
    return Client().post("/payments/callback/paypal/", tamper if tamper is not None else body,
                         content_type="application/json", **headers)


def test_checkout_creates_an_order_once_and_sends_the_payer_to_approve(owner, paypal_on):
    response = start(owner)
    payment = Payment.objects.get()
    assert response["Location"] == "https://www.paypal.com/checkoutnow?token=5O190127TN364715T"
    body, request_id = paypal_on.created[0]
    assert request_id == str(payment.public_id)
    unit = body["purchase_units"][0]
    assert (unit["custom_id"], unit["invoice_id"], unit["amount"]) == (
        str(payment.public_id), payment.reference, {"currency_code": "USD", "value": "1.72"})
    context = body["payment_source"]["paypal"]["experience_context"]
    assert context["return_url"] == "http://testserver/payments/paypal/return/"
    assert context["cancel_url"] == "http://testserver/payments/paypal/cancel/"
    assert payment.provider_order_id == "5O190127TN364715T"
    # Continuing the payment later reuses the order.
    again = owner.post(f"/billing/payments/{payment.public_id}/continue/")
    assert again["Location"] == response["Location"] and len(paypal_on.created) == 1


def test_return_captures_and_the_webhook_then_changes_nothing(owner, acme, paypal_on):
    start(owner)
    payment = Payment.objects.get()
    response = owner.get("/payments/paypal/return/", {"token": "5O190127TN364715T", "PayerID": "QYR5Z8XDVJNXQ"})
    assert response["Location"] == f"/billing/payments/{payment.public_id}/"
    assert paypal_on.captured == [("5O190127TN364715T", f"capture-{payment.public_id}")]
    payment.refresh_from_db()
    assert (payment.status, payment.provider_transaction_id) == ("succeeded", "3C679366HH908993F")
    assert [s[-1] for s in line_states(acme)] == ["Paid", "Paid"]
    webhook = deliver(capture_event(payment))
    assert webhook.status_code == 200
    assert paypal_on.fetched == [CERT_URL]
    assert LedgerEntry.objects.filter(kind="repayment").count() == 1
    assert PaymentEvent.objects.filter(payment=payment, kind="replay").count() == 1


def test_webhook_alone_confirms_the_payment(owner, acme):
    start(owner)
    payment = Payment.objects.get()
    assert deliver(capture_event(payment)).status_code == 200
    payment.refresh_from_db()
    assert payment.status == "succeeded"
    assert [s[-1] for s in line_states(acme)] == ["Paid", "Paid"]


def test_body_altered_after_signing_is_rejected(owner, acme):
    start(owner)
    payment = Payment.objects.get()
    event = capture_event(payment)
    signed = json.dumps(event).encode()
    tampered = signed.replace(b'"value": "1.72"', b'"value": "0.01"')
    assert tampered != signed
    response = deliver(event, body=signed, tamper=tampered)
    assert response.status_code == 400
    assert PaymentEvent.objects.get(kind="rejected").message == "PayPal webhook signature does not verify"
    assert [s[-1] for s in line_states(acme)] == ["Overdrawn", "Overdrawn"]


def test_signed_webhook_with_another_amount_is_refused_and_logged(owner, acme, caplog):
    start(owner)
    payment = Payment.objects.get()
    with caplog.at_level(logging.WARNING, logger="aurora.payments"):
        response = deliver(capture_event(payment, value="0.01"))
    assert response.status_code == 400
    assert "amount 0.01 USD does not match the payment's 1.72 USD" in caplog.text
    payment.refresh_from_db()
    assert payment.status == "pending"
    assert not LedgerEntry.objects.filter(kind="repayment").exists()


@pytest.mark.parametrize(("kwargs", "reason"), [
    ({"key": rsa.generate_private_key(public_exponent=65537, key_size=2048)},
     "PayPal webhook signature does not verify"),
    ({"cert_url": "https://evil.example/cert.pem"}, "certificate URL 'https://evil.example/cert.pem' is not PayPal's"),
    ({"cert_url": "http://api.paypal.com/c.pem"}, "certificate URL 'http://api.paypal.com/c.pem' is not PayPal's"),
    ({"algo": "SHA1withRSA"}, "unsupported PayPal auth algorithm 'SHA1withRSA'"),
])
def test_unauthentic_webhooks_are_rejected(owner, kwargs, reason):
    start(owner)
    payment = Payment.objects.get()
    assert deliver(capture_event(payment), **kwargs).status_code == 400
    assert PaymentEvent.objects.get(kind="rejected").message == reason
    payment.refresh_from_db()
    assert payment.status == "pending"


def test_expired_certificate_is_rejected(owner, monkeypatch):
    start(owner)
    payment = Payment.objects.get()
    monkeypatch.setattr(paypal, "cert_fetch", lambda url: _certificate(KEY, days_valid=-1))
    assert deliver(capture_event(payment)).status_code == 400
    assert PaymentEvent.objects.get(kind="rejected").message == "PayPal certificate is not valid now"


def test_denied_capture_declines_and_other_events_are_acknowledged(owner, acme):
    start(owner)
    payment = Payment.objects.get()
    other = {"id": "WH-1", "event_type": "CHECKOUT.ORDER.APPROVED", "resource": {"id": "5O190127TN364715T"}}
    assert deliver(other).status_code == 200
    payment.refresh_from_db()
    assert payment.status == "pending"
    assert deliver(capture_event(payment, event_type="PAYMENT.CAPTURE.DENIED")).status_code == 200
    payment.refresh_from_db()
    assert payment.status == "declined"
    assert [s[-1] for s in line_states(acme)] == ["Overdrawn", "Overdrawn"]


def test_capture_with_another_amount_books_nothing(owner, acme, paypal_on):
    start(owner)
    paypal_on.capture_amount = "1.00"
    payment = Payment.objects.get()
    response = owner.get("/payments/paypal/return/", {"token": "5O190127TN364715T"}, follow=True)
    assert "PayPal&#x27;s answer did not match this payment." in response.content.decode()
    payment.refresh_from_db()
    assert payment.status == "pending"
    assert not LedgerEntry.objects.filter(kind="repayment").exists()


def test_paypal_unreachable_charges_nothing(owner, paypal_on):
    paypal_on.fail_create = True
    response = start(owner)
    payment = Payment.objects.get()
    assert response["Location"] == f"/billing/payments/{payment.public_id}/"
    page = owner.get(response["Location"]).content.decode()
    assert "PayPal is not reachable right now. Nothing was charged" in page
    assert payment.status == "pending" and payment.checkout_url == ""


def test_cancel_at_paypal_cancels_the_payment(owner, acme):
    start(owner)
    response = owner.get("/payments/paypal/cancel/", {"token": "5O190127TN364715T"})
    payment = Payment.objects.get()
    assert response["Location"] == f"/billing/payments/{payment.public_id}/"
    assert payment.status == "cancelled"


def test_api_refuses_plain_http():
    api = paypal.PayPalAPI(base_url="http://api-m.paypal.com", client_id="a", secret="b")
    with pytest.raises(ProviderUnavailable, match="https"):
        api._token()
