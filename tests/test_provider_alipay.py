"""The Alipay adapter: RSA2 request signing and notification verification,
with keys generated here (Alipay's network is not reachable from tests)."""
from __future__ import annotations

import base64
import json
import logging
from urllib.parse import parse_qsl, urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.test import Client

from payments.models import LedgerEntry, Payment, PaymentEvent
from payments.providers.alipay import signing_string
from payments.providers.base import rsa_private_key_load, rsa_public_key_load, rsa_sha256_sign, rsa_sha256_verify
from tests.support.payments import breakdown_token, line_states

pytestmark = pytest.mark.django_db
APP_ID = "2021000000000001"


def _pem_private(key) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _pem_public(key) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


MERCHANT = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ALIPAY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(autouse=True)
def alipay_on(settings):
    settings.PAYMENTS_SANDBOX = False
    settings.ALIPAY_APP_ID = APP_ID
    settings.ALIPAY_PRIVATE_KEY = _pem_private(MERCHANT)
    # As Alipay's console shows it: the bare base64 body, no PEM armour.
    settings.ALIPAY_PUBLIC_KEY = "".join(_pem_public(ALIPAY).splitlines()[1:-1])
    settings.ALIPAY_GATEWAY = "https://openapi.alipay.example/gateway.do"


def start(owner):
    html = owner.get("/billing/repay/").content.decode()
    assert 'value="alipay"' in html
    response = owner.post("/billing/repay/", {"breakdown": breakdown_token(html), "method": "alipay"})
    assert response.status_code == 302
    return Payment.objects.get(), response["Location"]


def notify(payment, key=ALIPAY, **overrides) -> dict[str, str]:
    """A notification as Alipay posts it, signed with ``key``."""
    params = {
        "app_id": APP_ID, "charset": "utf-8", "version": "1.0", "notify_type": "trade_status_sync",
        "notify_id": "2026120100222150001", "notify_time": "2026-12-01 10:00:05",
        "out_trade_no": payment.public_id.hex, "trade_no": "2026120122001400001000000001",
        "trade_status": "TRADE_SUCCESS", "total_amount": f"{payment.amount:.2f}", "trans_currency": "USD",
        "subject": f"Aurora SendCloud {payment.reference}", "buyer_id": "2088102116773037",
        "gmt_payment": "2026-12-01 10:00:04", "seller_id": "2088102119685838",
    }
    params.update(overrides)
    params["sign"] = rsa_sha256_sign(key, signing_string(params, exclude=("sign", "sign_type")).encode())
    params["sign_type"] = "RSA2"
    return params


def test_checkout_redirects_to_the_gateway_with_a_valid_rsa2_signature(owner):
    payment, location = start(owner)
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://openapi.alipay.example/gateway.do"
    params = dict(parse_qsl(parts.query))
    assert (params["app_id"], params["method"], params["sign_type"]) == (APP_ID, "alipay.trade.page.pay", "RSA2")
    assert params["notify_url"] == "http://testserver/payments/callback/alipay/"
    assert params["return_url"] == "http://testserver/payments/alipay/return/"
    assert json.loads(params["biz_content"]) == {
        "out_trade_no": payment.public_id.hex, "product_code": "FAST_INSTANT_TRADE_PAY", "total_amount": "1.72",
        "subject": f"Aurora SendCloud {payment.reference}", "trans_currency": "USD"}
    text = signing_string(params, exclude=("sign",)).encode()
    assert rsa_sha256_verify(MERCHANT.public_key(), text, params["sign"])
    assert not rsa_sha256_verify(MERCHANT.public_key(), text + b"x", params["sign"])


def test_verified_notification_pays_the_lines_once(owner, acme):
    payment, _ = start(owner)
    params = notify(payment)
    for _ in range(2):  # Alipay resends until it reads "success"
        response = Client().post("/payments/callback/alipay/", params)
        assert response.status_code == 200 and response.content == b"success"
    payment.refresh_from_db()
    assert (payment.status, payment.provider_transaction_id) == ("succeeded", "2026120122001400001000000001")
    assert [s[-1] for s in line_states(acme)] == ["Paid", "Paid"]
    assert LedgerEntry.objects.filter(kind="repayment").count() == 1
    assert PaymentEvent.objects.filter(payment=payment, kind="replay").count() == 1


def test_notification_altered_after_signing_is_rejected(owner, acme):
    payment, _ = start(owner)
    params = notify(payment) | {"total_amount": "0.01"}
    response = Client().post("/payments/callback/alipay/", params)
    assert response.status_code == 400
    assert PaymentEvent.objects.get(kind="rejected").message == "Alipay signature does not verify"
    assert [s[-1] for s in line_states(acme)] == ["Overdrawn", "Overdrawn"]


def test_signed_notification_with_another_amount_is_refused_and_logged(owner, acme, caplog):
    payment, _ = start(owner)
    with caplog.at_level(logging.WARNING, logger="aurora.payments"):
        response = Client().post("/payments/callback/alipay/", notify(payment, total_amount="1.00"))
    assert response.status_code == 400
    assert "amount 1.00 USD does not match the payment's 1.72 USD" in caplog.text
    payment.refresh_from_db()
    assert payment.status == "pending"
    assert not LedgerEntry.objects.filter(kind="repayment").exists()


@pytest.mark.parametrize(("key", "overrides", "reason"), [
    (MERCHANT, {}, "Alipay signature does not verify"),  # signed by someone else
    (ALIPAY, {"app_id": "2021999999999999"}, "notification for another app id '2021999999999999'"),
    (ALIPAY, {"trade_status": "TRADE_WHATEVER"}, "unknown trade_status 'TRADE_WHATEVER'"),
    (ALIPAY, {"out_trade_no": "ORDER-1"}, "out_trade_no 'ORDER-1' is not ours"),
])
def test_unauthentic_or_foreign_notifications_are_rejected(owner, key, overrides, reason):
    payment, _ = start(owner)
    assert Client().post("/payments/callback/alipay/", notify(payment, key=key, **overrides)).status_code == 400
    assert PaymentEvent.objects.get(kind="rejected").message == reason
    payment.refresh_from_db()
    assert payment.status == "pending"


def test_closed_trade_cancels_and_waiting_changes_nothing(owner, acme):
    payment, _ = start(owner)
    waiting = Client().post("/payments/callback/alipay/", notify(payment, trade_status="WAIT_BUYER_PAY"))
    assert waiting.status_code == 200
    payment.refresh_from_db()
    assert payment.status == "pending"
    closed = Client().post("/payments/callback/alipay/", notify(payment, trade_status="TRADE_CLOSED"))
    assert closed.status_code == 200
    payment.refresh_from_db()
    assert payment.status == "cancelled"
    assert [s[-1] for s in line_states(acme)] == ["Overdrawn", "Overdrawn"]


def test_signed_return_leads_to_the_payment_page(owner):
    payment, _ = start(owner)
    params = {"app_id": APP_ID, "out_trade_no": payment.public_id.hex, "trade_no": "2026120122001400001000000001",
              "total_amount": "1.72", "timestamp": "2026-12-01 10:00:06", "method": "alipay.trade.page.pay.return",
              "charset": "utf-8", "seller_id": "2088102119685838", "version": "1.0"}
    params["sign"] = rsa_sha256_sign(ALIPAY, signing_string(params, exclude=("sign", "sign_type")).encode())
    params["sign_type"] = "RSA2"
    response = owner.get("/payments/alipay/return/", params)
    assert response["Location"] == f"/billing/payments/{payment.public_id}/"
    forged = owner.get("/payments/alipay/return/", params | {"total_amount": "9.99"})
    assert forged["Location"] == "/billing/payments/"


def test_not_offered_without_configuration(owner, settings):
    settings.ALIPAY_PUBLIC_KEY = ""
    assert 'value="alipay"' not in owner.get("/billing/repay/").content.decode()
    assert Client().post("/payments/callback/alipay/", {"x": "1"}).status_code == 404


def test_keys_load_as_pem_or_bare_base64():
    pem = _pem_public(ALIPAY)
    bare = "".join(pem.splitlines()[1:-1])
    assert rsa_public_key_load(pem).public_numbers() == rsa_public_key_load(bare).public_numbers()
    der = MERCHANT.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    assert rsa_private_key_load(base64.b64encode(der).decode()).private_numbers() == MERCHANT.private_numbers()
    with pytest.raises(ValueError):
        rsa_public_key_load("not a key")
